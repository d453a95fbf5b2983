"""One way to build a run: `resolve(config) -> ResolvedRun`, then `build(resolved, data, runs)
-> (model, method)`.

Every caller that trains, times, profiles or reloads a run's model goes through these two
functions (the run layer, the robustness study, the cost benchmark, the GPU check, the
profiler), so they all get the model a run trains: the same fusion head (the method's
model_overrides), the same modalities, the same initial weights from the same point of the random
stream, the same pre-trained encoders.

`resolve` validates and parses a config once: the method's typed params, the fusion head the
method needs, the dataset's task and the modalities the method uses, and the run key. Data held
in memory (a benchmark's random tensors) are resolved with `data=`; they have no run key.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import torch

from mcrlib.config import RunConfig, from_dict
from mcrlib.data.registry import DATASETS, dataset_params
from mcrlib.data.tensors import TensorSplits
from mcrlib.methods import METHODS, Method, method_params
from mcrlib.models import MultimodalModel, build_model, fusion_params
from mcrlib.run_key import check_run, run_key, with_model_overrides


@dataclass(frozen=True, kw_only=True)
class ResolvedRun:
    """A validated run: everything a caller needs to build, key or describe it, parsed once.

    `config` is the checked config (its model names the fusion head the method needs), so a
    saved model rebuilds from `config` alone. `modalities` are the ones the method uses, out of
    `available` (the dataset's, as its spec declares them, or those of the in-memory data)."""
    config: RunConfig
    method_class: type[Method]      # METHODS[config.method.name]
    params: Any                     # the method's params, typed and with defaults (method.Params)
    head_params: Any                # the fusion head's params (model.fusion_params, typed)
    task: str                       # "classification" or "regression"
    available: tuple[str, ...]      # the data's modalities
    modalities: tuple[str, ...]     # those the method's model is built with
    in_memory: bool = False         # resolved against data held in memory: no dataset, no key

    @cached_property
    def key(self) -> str:
        """The run key (mcrlib.run_key): computed on first use, since it hashes the code closure
        and the prepared data's fingerprint."""
        if self.in_memory:
            raise ValueError("a run resolved against in-memory data has no run key: its data are "
                             "not a registered dataset")
        return run_key(self.config)

    @property
    def name(self) -> str:
        return self.config.method.name


def resolve(config: RunConfig | Mapping, *, data: TensorSplits | None = None) -> ResolvedRun:
    """Validate and parse `config` (a ConfigError naming the key otherwise). With `data`, the
    task and modalities are the in-memory data's and the dataset named by `config.data` is not
    consulted (benchmarks on random tensors of a dataset's shapes)."""
    if not isinstance(config, RunConfig):
        config = from_dict(RunConfig, config)
    method = METHODS[config.method.name]
    if data is None:
        config = check_run(config)
        params = method_params(config.method.name, config.method.params)
        spec = DATASETS[config.data.name]
        available, task = spec.modalities(dataset_params(config.data.name, config.data.params)), spec.task
    else:
        params = method_params(config.method.name, config.method.params)
        config = with_model_overrides(config, params)
        available, task = tuple(data.modalities), data.task
    return ResolvedRun(config=config, method_class=method, params=params,
                       head_params=fusion_params(config.model.fusion, config.model.fusion_params),
                       task=task, available=tuple(available),
                       modalities=tuple(method.modalities(params, tuple(available))),
                       in_memory=data is not None)


def build_run_model(resolved: ResolvedRun, data: TensorSplits) -> MultimodalModel:
    """The run's model, freshly initialised from the global random stream as it stands (no
    seeding: a caller that reloads weights must not move the stream). Its modalities are the
    method's choice among the loaded data's (their order is the data's)."""
    modalities = resolved.method_class.modalities(resolved.params, data.modalities)
    return build_model(resolved.config.model, data, modalities)


def build(resolved: ResolvedRun, data: TensorSplits, runs: Mapping | None = None, *,
          seed: int | None = None) -> tuple[MultimodalModel, Method]:
    """(model, method) of a run, as it starts training: the global random stream seeded with
    `seed` (default: the run's), the model built, the required runs' results (`runs`, e.g.
    pre-trained encoders) loaded into it, then the method built on it. This order is the run's
    random stream: changing it changes every number."""
    torch.manual_seed(resolved.config.seed if seed is None else seed)
    model = build_run_model(resolved, data)
    resolved.method_class.initialise(model, runs if runs is not None else {})
    method = resolved.method_class(resolved.params, model=model, task=data.task)
    return model, method


def load_model(resolved: ResolvedRun, state: Mapping[str, torch.Tensor], data: TensorSplits,
               device: str | torch.device = "cpu") -> MultimodalModel:
    """A trained model: the run's model rebuilt from its config alone, with `state` (its saved
    weights) loaded strictly, on `device`, in eval mode."""
    if not resolved.method_class.trains:
        raise ValueError(f"method {resolved.name!r} combines other runs and has no model of its own")
    model = build_run_model(resolved, data)
    model.load_state_dict(state)       # strict: every saved tensor has its place
    return model.to(device).eval()
