"""The method interface and its registry.

A Method turns the model's output into named loss terms, and may act after backward
(gradient scaling) or at the end of an epoch (validation-driven changes). It is an nn.Module
so it can own parameters (e.g. MCR's CEB decoder) and state that is checkpointed with the run.
The trainer uses only what the Method class declares (its hooks, `param_groups` and the
per-step `diagnostics` it logs) and nn.Module's own parameters, buffers and train/eval mode;
it knows nothing of a particular method, nor of a particular fusion head.
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable, Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from mcrlib.config import ConfigError, from_dict

@functools.lru_cache(maxsize=1)
def _modules() -> dict[str, str]:
    """name -> the module that defines it, found by reading (not importing) this package's
    modules: every `@register("name")`. Importing `mcrlib.methods` imports no method, and a run's
    code key (mcrlib.code_closure) covers its own method's module, not every method's."""
    found = {}
    for path in sorted(Path(__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            for deco in getattr(node, "decorator_list", []):
                if (isinstance(deco, ast.Call) and getattr(deco.func, "id", None) == "register"
                        and deco.args and isinstance(deco.args[0], ast.Constant)):
                    if deco.args[0].value in found:
                        raise TypeError(f"method {deco.args[0].value!r} is registered twice")
                    found[deco.args[0].value] = f"mcrlib.methods.{path.stem}"
    return found


_REGISTERED: dict[str, type["Method"]] = {}


class _Registry(Mapping):
    """name -> Method class, importing the method's module on first use."""

    def __getitem__(self, name):
        if name not in _modules():
            raise ConfigError(f"method.name={name!r} is unknown: expected one of {sorted(_modules())}")
        if name not in _REGISTERED:
            importlib.import_module(self.module_name(name))
        return _REGISTERED[name]

    def __iter__(self):
        return iter(_modules())

    def __len__(self):
        return len(_modules())

    @staticmethod
    def module_name(name: str) -> str:
        return _modules()[name]


METHODS = _Registry()


def register(name: str):
    def wrap(cls):
        if name not in _modules():
            raise TypeError(f"method {name!r}: register methods in a module of mcrlib.methods, "
                            "with a literal name (the registry reads them from the source)")
        cls.name = name
        _REGISTERED[name] = cls
        return cls
    return wrap


def method_params(name: str, params: Mapping | None):
    return from_dict(METHODS[name].Params, params or {}, f"method.params ({name})")


def unimodal_configs(config, modalities) -> dict:
    """The unimodal runs that match `config` (same data, model, training budget and seed), one per
    modality; ensembles and pre-trained initialisations share them through the run cache."""
    from mcrlib.config import MethodConfig, ModelConfig
    # the unimodal runs' model: this run's, with the default fusion head (a method's own head,
    # e.g. ReconBoost's, must not make separate unimodal runs)
    default = ModelConfig()
    model = dataclasses.replace(config.model, fusion=default.fusion, fusion_params=default.fusion_params)
    return {m: dataclasses.replace(config, model=model, method=MethodConfig(name="unimodal", params={"modality": m}))
            for m in modalities}


def task_loss(pred: torch.Tensor, target: torch.Tensor, task: str) -> torch.Tensor:
    """Cross-entropy for classification, L1 for regression (CMU-MOSI/MOSEI)."""
    if task == "regression":
        return F.l1_loss(pred.reshape(-1), target.float().reshape(-1))
    return F.cross_entropy(pred, target)


@dataclass
class EpochState:
    """What a method sees at an epoch's start and end (instead of the trainer)."""
    epoch: int
    model: nn.Module
    param_groups: list[dict]          # the optimizer's groups; a method may set a group's lr_scale
    device: torch.device
    batch_size: int
    seed: int
    loader: Callable[[str], Iterable[dict]]   # loader(split): that split's batches, on the device
    record: dict | None = None        # at the epoch's end: its record (train losses, val metrics)


class Method(nn.Module):
    """A training method: loss terms and optional hooks. The trainer calls, per step,
    `loss` -> `backward` -> `after_backward`, and `on_epoch_start` / `on_epoch_end` with an
    EpochState. The run layer asks the class which runs it is built from (`required_runs`),
    hands their results to `initialise` (or, for a method that trains nothing, to `compose`), and
    builds the model with the method's `model_overrides`. Nothing outside a method's own file
    names it: its place in the tables is `rank`, its label `display`, and whether the paper's
    claims count it among the earlier methods `earlier_method`."""
    name = "base"
    display = "base"   # the name in tables and figures
    rank = 1000        # the place in tables and figures (low first)
    trains = True      # False: the run combines other runs (`compose`) instead of training
    # Whether the claims count it among the earlier methods MCR is compared with ("most earlier
    # methods are below the Ensemble", mcrlib.analysis.report): every published training method,
    # so a method added later is counted without editing any list. False for MCR itself and for
    # what the comparison is made against or built from (the Ensemble, the unimodal models).
    earlier_method = True

    @dataclass(frozen=True)
    class Params:
        pass

    def __init__(self, params, *, model: nn.Module, task: str = "classification"):
        super().__init__()
        self.params = params
        self.task = task
        # What the last step (or epoch start) measured, by name: the trainer adds it to the step's
        # logs and averages it over the epoch. Floats or detached device tensors (no sync per
        # step); a method replaces the dict when it has something to report.
        self.diagnostics: dict[str, float | torch.Tensor] = {}

    # ---- what a run of this method is ----------------------------------------------------
    @classmethod
    def modalities(cls, params, available: tuple[str, ...]) -> tuple[str, ...]:
        """The modalities this method's model is built with."""
        return available

    @classmethod
    def unsupported(cls, params, task: str, modalities: tuple[str, ...]) -> str | None:
        """Why this method cannot run on a dataset of this task and these modalities (None: it
        can). A run of an unsupported pair is a ConfigError; a study skips the pair and says so."""
        return None

    @classmethod
    def model_overrides(cls, params) -> dict:
        """ModelConfig fields this method needs (e.g. its fusion head): part of the run's config,
        so a saved model rebuilds from the config alone."""
        return {}

    @classmethod
    def required_runs(cls, config, modalities) -> dict:
        """{role: RunConfig} of the runs this run is built from: the run layer trains or loads
        them first, passes them to `initialise` / `compose`, and their keys enter this run's key."""
        return {}

    @classmethod
    def initialise(cls, model: nn.Module, runs: dict) -> None:
        """Set up `model` from the required runs' results before training (pre-trained encoders)."""

    @classmethod
    def compose(cls, config, runs: dict, data) -> tuple[dict, dict]:
        """(predictions, metrics) of a method that trains nothing (`trains = False`)."""
        raise NotImplementedError(f"{cls.name} trains; it composes nothing")

    # ---- training ------------------------------------------------------------------------
    def loss(self, model, batch, output) -> dict[str, torch.Tensor]:
        """Named loss terms (logged per epoch)."""
        return {"task": task_loss(output.logits, batch["label"], self.task)}

    def backward(self, terms: dict[str, torch.Tensor], model) -> None:
        """Gradients of the step into the parameters' .grad (zeroed before). Default: the sum of
        the terms, back-propagated; a method may combine each term's gradient itself (MMPareto)."""
        sum(terms.values()).backward()

    def after_backward(self, model, batch, output) -> None:
        """Hook between backward and the optimizer step (gradient modulation)."""

    def param_groups(self, model) -> list[dict]:
        """Optimizer parameter groups (a method may give each modality its own learning rate)."""
        return [{"params": [p for p in [*model.parameters(), *self.parameters()] if p.requires_grad]}]

    epoch = 0  # the current training epoch, kept by on_epoch_start

    def on_epoch_start(self, state: EpochState) -> None:
        """Before each training epoch (epoch windows, prototypes, stages). Overrides call super()
        so `self.epoch` stays current."""
        self.epoch = state.epoch

    def in_window(self, start: int, end: int | None) -> bool:
        """Whether the current epoch lies in [start, end] (end None: no end)."""
        return start <= self.epoch and (end is None or self.epoch <= end)

    def on_epoch_end(self, state: EpochState) -> None:
        """After the epoch's validation (`state.record`): validation-driven changes."""


def encoder_runs(config, modalities) -> dict:
    """Required runs of a method whose encoders start from the unimodal runs' (Uni-Pre, MCR's
    init_from_unimodal): {"encoder:<modality>": RunConfig}."""
    return {f"encoder:{m}": c for m, c in unimodal_configs(config, modalities).items()}


def load_encoders(model: nn.Module, runs: dict) -> None:
    """Each `encoder:<modality>` run's encoder weights into `model`'s encoder of that modality."""
    for role, result in runs.items():
        if role.startswith("encoder:"):
            modality = role.split(":", 1)[1]
            prefix = f"encoders.{modality}."
            state = result.model_state()
            model.encoders[modality].load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})


def in_table_order(names) -> list[str]:
    """Method names sorted by their place in the tables (then by name)."""
    return sorted(names, key=lambda n: (METHODS[n].rank, n))
