"""The synthetic study (paper Figure 1, right): accuracy of each method as u1/s grows, u2 fixed."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mcrlib.config import (ConfigError, DataConfig, MethodConfig, ModelConfig, RunConfig, TrainConfig,
                           check, from_dict)
from mcrlib.data.synthetic import GROUPS, SyntheticConfig
from mcrlib.methods import method_params
from mcrlib.run_key import check_run
from mcrlib.search import SearchConfig
from mcrlib.studies.grid import grid_runs, run_grid
from mcrlib.studies.three_modal import ThreeModalConfig, run_config as three_modal_config

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
    # true: `data` takes the generator setting the calibration chose (applied when a stage loads
    # its sections, mcrlib.profiles.load_stage, which then sets it false)
    calibrated: bool = False
    # the three-modality XOR case (mcrlib.studies.three_modal), on these seeds; None: not run
    three_modal: ThreeModalConfig | None = None

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
        if self.three_modal is not None:   # its model/train overrides and method params, validated
            for label in self.three_modal.methods:
                three_modal_config(self, label, self.seeds[0])

    def data_config(self, ratio: float, seed: int) -> SyntheticConfig:
        try:
            return SyntheticConfig.for_ratio(ratio, self.unique2, data_seed=seed, **self.data)
        except TypeError as err:
            allowed = [f.name for f in dataclasses.fields(SyntheticConfig)]
            raise ConfigError(f"synthetic.data: {err}; allowed keys: {allowed}") from None

    def run_config(self, method: str, ratio: float, seed: int, overrides: dict | None = None) -> RunConfig:
        data = DataConfig(name="synthetic", params=dataclasses.asdict(self.data_config(ratio, seed)))
        params = {**self.method_params.get(method, {}), **(overrides or {})}
        return check_run(RunConfig(data=data, model=self.model, train=self.train, seed=seed,
                                   method=MethodConfig(name=method, params=params)))


def load_study(params: dict) -> SyntheticStudyConfig:
    return from_dict(SyntheticStudyConfig, params, "synthetic")


def study_runs(study: SyntheticStudyConfig, chosen: dict | None = None) -> list[tuple[dict, RunConfig]]:
    """(labels, config) for every final run, per ratio and seed."""
    return grid_runs(study.ratios, study.seeds, study.methods, study.run_config, lambda _: MODALITIES,
                     chosen or {}, "ratio")


def group_accuracy(result) -> dict[str, float]:
    """Test accuracy of the fused prediction inside each generator group."""
    test = result.predictions["test"]
    correct = test["fused"].argmax(-1) == test["label"]
    return {f"acc_{name}": correct[test["group"] == g].float().mean().item() for g, name in enumerate(GROUPS)}


def run_study(study: SyntheticStudyConfig, cache_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The search (validation accuracy of every trial), then one row per final run: labels,
    chosen setting, test/val accuracy and accuracy inside each sample group."""
    return run_grid(cells=study.ratios, seeds=study.seeds, methods=study.methods, search=study.search,
                    make_config=study.run_config, modalities=lambda _: MODALITIES, cache_dir=cache_dir,
                    workers=study.workers, cell_name="ratio", columns=group_accuracy)
