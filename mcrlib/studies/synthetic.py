"""The synthetic study (paper Figure 1, right): accuracy of each method as u1/s grows, u2 fixed."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mcrlib.config import (ConfigError, DataConfig, MethodConfig, ModelConfig, RunConfig, TrainConfig,
                           check, from_dict)
from mcrlib.data.synthetic import GROUPS, SyntheticConfig
from mcrlib.methods import method_params
from mcrlib.methods.base import unimodal_configs
from mcrlib.search import SearchConfig, select
from mcrlib.sweep import run_all

MODALITIES = ("x1", "x2")


@dataclass(frozen=True)
class SyntheticStudyConfig:
    profile: str = "smoke"
    ratios: tuple[float, ...] = (0.25, 4.0)      # u1/s values swept
    unique2: float = 0.1                          # u2, fixed along the sweep
    seeds: tuple[int, ...] = (0, 1, 2)            # each seed redraws the data and the model
    methods: tuple[str, ...] = ("joint", "multiloss", "ensemble", "mcr")
    data: dict = field(default_factory=dict)      # SyntheticConfig keys except the fractions
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    method_params: dict = field(default_factory=dict)   # method name -> its params
    search: SearchConfig = field(default_factory=SearchConfig)  # per-method grid, chosen on validation
    workers: int = 1

    def __post_init__(self):
        check(len(self.ratios) > 0 and all(r >= 0 for r in self.ratios), "synthetic.ratios",
              list(self.ratios), "a non-empty list of ratios u1/s >= 0")
        check(len(self.seeds) > 0, "synthetic.seeds", list(self.seeds), "a non-empty list of integer seeds")
        check(self.workers >= 1, "synthetic.workers", self.workers, "an integer >= 1")
        for name in self.methods:
            method_params(name, {})  # unknown names are rejected here
        for name, params in self.method_params.items():
            if name not in self.methods:
                raise ConfigError(f"synthetic.method_params has {name!r}, which is not in "
                                  f"synthetic.methods {list(self.methods)}")
            method_params(name, params)
        for name in self.search.grid:
            if name not in self.methods:
                raise ConfigError(f"synthetic.search.grid has {name!r}, which is not in "
                                  f"synthetic.methods {list(self.methods)}")
        for key in ("shared", "unique1", "unique2", "data_seed"):
            check(key not in self.data, f"synthetic.data.{key}", self.data.get(key),
                  "no value here: fractions come from ratios/unique2 and data_seed from seeds")
        for ratio in self.ratios:
            self.data_config(ratio, 0)

    def data_config(self, ratio: float, seed: int) -> SyntheticConfig:
        try:
            return SyntheticConfig.for_ratio(ratio, self.unique2, data_seed=seed, **self.data)
        except TypeError as err:
            allowed = [f.name for f in dataclasses.fields(SyntheticConfig)]
            raise ConfigError(f"synthetic.data: {err}; allowed keys: {allowed}") from None

    def run_config(self, method: str, ratio: float, seed: int, overrides: dict | None = None) -> RunConfig:
        data = DataConfig(name="synthetic", params=dataclasses.asdict(self.data_config(ratio, seed)))
        params = {**self.method_params.get(method, {}), **(overrides or {})}
        return RunConfig(data=data, model=self.model, train=self.train, seed=seed,
                         method=MethodConfig(name=method, params=params))


def load_study(params: dict) -> SyntheticStudyConfig:
    return from_dict(SyntheticStudyConfig, params, "synthetic")


def study_runs(study: SyntheticStudyConfig, chosen: dict | None = None) -> list[tuple[dict, RunConfig]]:
    """(labels, config) for every run: each method (at its chosen search setting) plus the
    unimodal models, per ratio and seed."""
    chosen = chosen or {}
    runs = []
    for ratio in study.ratios:
        for seed in study.seeds:
            for modality, config in unimodal_configs(study.run_config("joint", ratio, seed), MODALITIES).items():
                runs.append(({"ratio": ratio, "seed": seed, "method": f"unimodal-{modality}", "setting": ""}, config))
            for method in study.methods:
                setting = chosen.get((method, ratio), {})
                runs.append(({"ratio": ratio, "seed": seed, "method": method, "setting": json.dumps(setting)},
                             study.run_config(method, ratio, seed, setting)))
    return runs


def group_accuracy(predictions: dict) -> dict[str, float]:
    """Test accuracy of the fused prediction inside each generator group."""
    correct = predictions["fused"].argmax(-1) == predictions["label"]
    return {f"acc_{name}": correct[predictions["group"] == g].float().mean().item()
            for g, name in enumerate(GROUPS)}


def run_study(study: SyntheticStudyConfig, cache_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The search (validation accuracy of every trial), then one row per final run: labels,
    chosen setting, test/val accuracy and accuracy inside each sample group."""
    chosen, trials = select(study.search, study.methods, study.ratios,
                            lambda m, ratio, seed, trial: study.run_config(m, ratio, seed, trial),
                            cache_dir, study.workers, desc="search")
    labelled = study_runs(study, chosen)
    results = run_all([c for _, c in labelled], cache_dir, study.workers, desc="synthetic runs")
    rows = []
    for (labels, _), result in zip(labelled, results):
        test = result.predictions["test"]
        rows.append({**labels, "test_acc": result.metrics["test_acc_fused"],
                     "val_acc": result.metrics["val_acc_fused"],
                     "epochs": result.metrics.get("epochs", 0), **group_accuracy(test)})
    return pd.DataFrame(rows), trials.rename(columns={"cell": "ratio"})
