"""Real benchmarks (paper Figure 4 and Table 1): every method on every configured dataset."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mcrlib.config import (ConfigError, DataConfig, MethodConfig, ModelConfig, RunConfig, TrainConfig,
                           check, from_dict)
from mcrlib.data import DATASETS, dataset_modalities
from mcrlib.data.spec import is_location
from mcrlib.methods import method_params
from mcrlib.run_key import check_run, unsupported_reason
from mcrlib.search import SearchConfig
from mcrlib.studies.grid import check_folds, fold_of, overridden, run_grid


DEFAULT_FAMILY = "ResNet-18"


@dataclass(frozen=True)
class BenchmarkStudyConfig:
    profile: str = "smoke"
    # label -> {name, params, and optionally: folds (as data.params.fold; seeds[i] runs on folds[i mod F],
    # so F folds take a multiple of F seeds: one per fold, or several nested in each),
    # model / train / method_params (this dataset's overrides, e.g. METHOD.md's per-dataset table),
    # family (Figure 4's backbone family of this entry: "ResNet-18" unless given, e.g. "Conformer")}
    datasets: dict = field(default_factory=dict)
    seeds: tuple[int, ...] = (0, 1, 2)
    methods: tuple[str, ...] = ("ensemble", "joint", "mcr")
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    method_params: dict = field(default_factory=dict)
    search: SearchConfig = field(default_factory=SearchConfig)
    workers: int = 1

    def __post_init__(self):
        check(len(self.datasets) > 0, "benchmarks.datasets", self.datasets, "at least one dataset")
        check(len(self.seeds) > 0, "benchmarks.seeds", list(self.seeds), "a non-empty list of seeds")
        allowed = {"name", "params", "folds", "model", "train", "method_params", "calibrated", "family"}
        for label, spec in self.datasets.items():
            check(isinstance(spec, dict) and spec.get("name") in DATASETS and set(spec) <= allowed,
                  f"benchmarks.datasets.{label}", spec,
                  f"{{name: one of {sorted(DATASETS)}, params: {{...}}}} with optional keys {sorted(allowed - {'name', 'params'})}")
            if "folds" in spec:
                check_folds(spec["folds"], self.seeds, f"benchmarks.datasets.{label}.folds")
            for method in self.methods:
                if not self.runs_on(method, label):
                    continue   # skipped, and the tables say so (a method that cannot run there)
                # every override and every search trial is validated here, on this dataset
                for trial in self.search.trials(method, label) if method in self.search.grid else [{}]:
                    self.run_config(method, label, self.seeds[0], trial)
        for label in self.search.cells:
            check(label in self.datasets, f"benchmarks.search.cells.{label}", self.search.cells[label],
                  f"the grid of a dataset in benchmarks.datasets {sorted(self.datasets)}")
        for name in self.methods:
            method_params(name, {})
        for name, params in {**self.method_params, **self.search.grid}.items():
            if name not in self.methods:
                raise ConfigError(f"benchmarks: {name!r} has parameters but is not in benchmarks.methods")
        for name, params in self.method_params.items():
            method_params(name, params)

    def family(self, label: str) -> str:
        """Figure 4's backbone family of dataset entry `label`."""
        return self.datasets[label].get("family", DEFAULT_FAMILY)

    def families(self) -> dict[str, list[str]]:
        """family -> its dataset labels, both in the order of the config."""
        grouped: dict[str, list[str]] = {}
        for label in self.datasets:
            grouped.setdefault(self.family(label), []).append(label)
        return grouped

    def data_config(self, label: str, seed: int) -> DataConfig:
        spec = self.datasets[label]
        params = dict(spec.get("params", {}))
        if "folds" in spec:  # AV-Digits, CREMA-D: the spread is over folds and seeds within them
            params["fold"] = fold_of(spec["folds"], self.seeds, seed)
        return DataConfig(name=spec["name"], params=params)

    def runs_on(self, method: str, label: str) -> bool:
        """Whether `method` can run on dataset `label` (mcrlib.run_key.unsupported_reason)."""
        return self.skipped(method, label) is None

    def skipped(self, method: str, label: str) -> str | None:
        spec = self.datasets[label]
        probe = RunConfig(data=self.data_config(label, self.seeds[0]), method=MethodConfig(
            name=method, params={**self.method_params.get(method, {}), **spec.get("method_params", {}).get(method, {})}))
        return unsupported_reason(probe)

    def run_config(self, method: str, label: str, seed: int, overrides: dict | None = None) -> RunConfig:
        spec = self.datasets[label]
        params = {**self.method_params.get(method, {}), **spec.get("method_params", {}).get(method, {}),
                  **(overrides or {})}
        model = overridden(self.model, spec.get("model", {}), f"benchmarks.datasets.{label}.model")
        train = overridden(self.train, spec.get("train", {}), f"benchmarks.datasets.{label}.train")
        return check_run(RunConfig(data=self.data_config(label, seed), model=model, train=train, seed=seed,
                                   method=MethodConfig(name=method, params=params)))


def load_study(params: dict) -> BenchmarkStudyConfig:
    return from_dict(BenchmarkStudyConfig, params, "benchmarks")


def run_study(study: BenchmarkStudyConfig, cache_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, trials): one row per final run (dataset, method, seed, accuracies), and the search."""
    modalities = {label: dataset_modalities(spec["name"], spec.get("params", {}))
                  for label, spec in study.datasets.items()}
    return run_grid(cells=list(study.datasets), seeds=study.seeds, methods=study.methods,
                    search=study.search, make_config=study.run_config, modalities=modalities.__getitem__,
                    cache_dir=cache_dir, workers=study.workers, cell_name="dataset", include=study.runs_on,
                    columns=lambda r: {"fold": r.config["data"]["params"].get("fold", -1)})


def resolve_datasets(datasets: dict, root_dir: str | Path) -> dict:
    """Each dataset's load params with its location fields (the prepared folder) made absolute
    from the project's root `root_dir`: notebooks run from notebooks/ and their training workers
    inherit that working directory. Location fields are not part of the run key (mcrlib.run_key
    keys the prepared folder's content), so two checkouts still share their runs. A dataset's
    `calibrated: true` mark must have been applied before (mcrlib.profiles.load_stage fills it
    from the calibration's choice when a stage loads its sections)."""
    root = Path(root_dir).resolve()
    resolved = {}
    for label, spec in datasets.items():
        spec = dict(spec)
        if spec.pop("calibrated", False):
            raise ConfigError(f"benchmarks.datasets.{label} is still marked `calibrated: true`: its recipe was "
                              "not applied; load the section with mcrlib.profiles.load_stage, which fills it "
                              "from the calibrate stage's chosen.json")
        params = dict(spec.get("params", {}))
        for f in dataclasses.fields(DATASETS[spec["name"]].load_config):
            where = Path(params.get(f.name, f.default)).expanduser() if is_location(f) else None
            if where is not None and not where.is_absolute():
                params[f.name] = str(root / where)
        resolved[label] = {**spec, "params": params}
    return resolved
