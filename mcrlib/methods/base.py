"""The method interface and its registry.

A Method turns the model's output into named loss terms, and may act after backward
(gradient scaling) or at the end of an epoch (validation-driven changes). It is an nn.Module
so it can own parameters (e.g. MCR's CEB decoder) and state that is checkpointed with the run.
The trainer knows nothing else about any method.
"""
from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Mapping

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
    from mcrlib.config import MethodConfig
    return {m: dataclasses.replace(config, method=MethodConfig(name="unimodal", params={"modality": m}))
            for m in modalities}


def task_loss(pred: torch.Tensor, target: torch.Tensor, task: str) -> torch.Tensor:
    """Cross-entropy for classification, L1 for regression (CMU-MOSI/MOSEI)."""
    if task == "regression":
        return F.l1_loss(pred.reshape(-1), target.float().reshape(-1))
    return F.cross_entropy(pred, target)


class Method(nn.Module):
    name = "base"
    # Set by composite methods (e.g. the ensemble) that combine other runs instead of training.
    composite = False
    # Set by methods that may read the unimodal runs (ensemble, Uni-Pre, MCR): sweeps run those first.
    uses_unimodal_runs = False

    @dataclass(frozen=True)
    class Params:
        pass

    def __init__(self, params, *, model: nn.Module, task: str = "classification"):
        super().__init__()
        self.params = params
        self.task = task

    @classmethod
    def modalities(cls, params, available: tuple[str, ...]) -> tuple[str, ...]:
        """The modalities this method's model is built with."""
        return available

    @classmethod
    def pretrained_encoders(cls, config, modalities) -> dict:
        """{modality: RunConfig of the unimodal run whose encoder initialises this model's}."""
        return {}

    @classmethod
    def required_runs(cls, config, modalities) -> dict:
        """{role: RunConfig} of the runs this run is built from; their keys enter its run key
        (mcrlib.run_key), so a member trained again makes this run new too."""
        return {f"encoder:{m}": c for m, c in cls.pretrained_encoders(config, modalities).items()}

    def loss(self, model, batch, output) -> dict[str, torch.Tensor]:
        """Named loss terms; the trainer back-propagates their sum."""
        return {"task": task_loss(output.logits, batch["label"], self.task)}

    def param_groups(self, model) -> list[dict]:
        """Optimizer parameter groups (a method may give each modality its own learning rate)."""
        return [{"params": [p for p in [*model.parameters(), *self.parameters()] if p.requires_grad]}]

    epoch = 0  # the current training epoch, kept by on_epoch_start

    def on_epoch_start(self, epoch: int, trainer, data) -> None:
        """Hook before each training epoch (epoch windows, prototypes computed from data).
        Overrides call super() so `self.epoch` stays current."""
        self.epoch = epoch

    def in_window(self, start: int, end: int | None) -> bool:
        """Whether the current epoch lies in [start, end] (end None: no end)."""
        return start <= self.epoch and (end is None or self.epoch <= end)

    def after_backward(self, model, batch, output) -> None:
        """Hook between backward and the optimizer step (gradient modulation)."""

    def on_epoch_end(self, epoch: int, record: dict, optimizer) -> None:
        """Hook after validation (validation-driven changes, e.g. learning-rate multipliers)."""
