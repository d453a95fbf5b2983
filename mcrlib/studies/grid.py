"""What every study does: search on validation, then each method (and the unimodal models)
in every cell (a ratio, a dataset...) for every seed, through the run cache."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd

from mcrlib.atomic import atomic_path
from mcrlib.config import RunConfig, check, from_dict, to_dict
from mcrlib.methods.base import unimodal_configs
from mcrlib.search import SearchConfig, select
from mcrlib.sweep import result_key, run_all

MakeConfig = Callable[[str, object, int, dict], RunConfig]   # (method, cell, seed, overrides)


def overridden(base, overrides: dict, path: str):
    """`base` (a config dataclass) with a dataset's `overrides` applied, validated; errors name `path`."""
    return from_dict(type(base), {**to_dict(base), **overrides}, path)


def check_folds(folds: Sequence[int], seeds: Sequence[int], path: str) -> None:
    """A dataset's `folds` and the study's `seeds` make whole blocks: seeds[i] runs on
    folds[i mod F], so every fold gets len(seeds) / F seeds (see `fold_of`)."""
    check(len(folds) > 0 and len(seeds) % len(folds) == 0, path, list(folds),
          f"a non-empty list of folds dividing the {len(seeds)} seeds into whole blocks (seeds[i] runs on "
          f"folds[i mod F]: e.g. 6 folds and 30 seeds give 5 seeds per fold)")


def fold_of(folds: Sequence[int], seeds: Sequence[int], seed: int) -> int:
    """The fold that `seed` runs on: seeds[i] on folds[i mod F]. With as many seeds as folds this
    is one seed per fold (fold k with the k-th seed); with S times as many, every fold gets S
    seeds of its own (seeds nested in folds), so the folds are blocks with S units each and the
    run-to-run variation within a fold is separated from the speaker's (mcrlib.analysis.inference).
    The first F seeds keep their folds as S grows, so their runs are shared through the cache."""
    return folds[list(seeds).index(seed) % len(folds)]


def grid_runs(cells, seeds, methods, make_config: MakeConfig, modalities: Callable, chosen: dict,
              cell_name: str, include: Callable = lambda method, cell: True) -> list[tuple[dict, RunConfig]]:
    """(labels, config) of every final run: the unimodal models and each method at its chosen
    setting, except the (method, cell) pairs `include` leaves out (a method that cannot run there)."""
    runs = []
    for cell in cells:
        for seed in seeds:
            for modality, config in unimodal_configs(make_config("joint", cell, seed, {}), modalities(cell)).items():
                runs.append(({cell_name: cell, "seed": seed, "method": f"unimodal-{modality}", "setting": ""}, config))
            for method in (m for m in methods if include(m, cell)):
                setting = chosen.get((method, cell), {})
                runs.append(({cell_name: cell, "seed": seed, "method": method, "setting": json.dumps(setting)},
                             make_config(method, cell, seed, setting)))
    return runs


def run_grid(*, cells: Sequence, seeds: Sequence[int], methods: Sequence[str], search: SearchConfig,
             make_config: MakeConfig, modalities: Callable, cache_dir: str | Path, workers: int,
             cell_name: str, columns: Callable | None = None,
             include: Callable = lambda method, cell: True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, trials): one row per final run with its labels, chosen setting, run key, validation
    and test accuracy and `columns(result)`; and every search trial with its run key and validation
    accuracy. An analysis finds a row's run by its key (mcrlib.studies.results), not by rebuilding
    its config from the labels."""
    chosen, trials = select(search, methods, cells, make_config, cache_dir, workers, desc="search", include=include)
    labelled = grid_runs(cells, seeds, methods, make_config, modalities, chosen, cell_name, include)
    results = run_all([c for _, c in labelled], cache_dir, workers, desc=f"{cell_name} runs")
    rows = [{**labels, "run_key": result_key(r),
             "test_acc": r.metrics["test_acc_fused"], "val_acc": r.metrics["val_acc_fused"],
             "epochs": r.metrics.get("epochs", 0), **measures(r.metrics), **(columns(r) if columns else {})}
            for (labels, _), r in zip(labelled, results)]
    return pd.DataFrame(rows), trials.rename(columns={"cell": cell_name})


def measures(metrics: dict) -> dict:
    """The measures peers report beside accuracy, where the run has them: the fused head's test
    macro-F1 and expected calibration error, and each modality's contribution to the fused
    prediction (accuracy lost when its latent is permuted; its zero-out Shapley value); for the
    Ensemble, its accuracy under every other combination rule (`acc_fused_<rule>`)."""
    keys = ("test_f1_fused", "test_ece_fused")
    return {k.removeprefix("test_").removesuffix("_fused"): metrics[k] for k in keys if k in metrics} | {
        k.removeprefix("test_"): v for k, v in metrics.items() if k.startswith("test_contrib_")} | {
        # the Ensemble's accuracy under its other combination rules (mcrlib.methods.ensemble)
        k.removeprefix("test_"): v for k, v in metrics.items() if k.startswith("test_acc_fused_")}


def save_runs(runs: pd.DataFrame, trials: pd.DataFrame, results_dir: str | Path) -> None:
    """runs.csv and search.csv of a study, written atomically."""
    for frame, name in ((runs, "runs.csv"), (trials, "search.csv")):
        with atomic_path(Path(results_dir) / name) as tmp:
            frame.to_csv(tmp, index=False)
