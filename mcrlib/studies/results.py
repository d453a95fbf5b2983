"""The RunResult behind each row of a study's runs table, read from the run cache only.

Analyses (error matrices, robustness) need the predictions and weights of the runs a study's
table summarises. Each row names its cell, seed, method and chosen setting, which rebuild the
row's RunConfig exactly as `mcrlib.studies.grid` built it, hence its cache key.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from mcrlib.methods.base import unimodal_configs
from mcrlib.runs import RunResult, load_result, run_key


def row_config(row: dict, *, make_config: Callable, cell_name: str):
    """The RunConfig of one row of a study's runs table."""
    cell, seed, method = row[cell_name], int(row["seed"]), row["method"]
    if method.startswith("unimodal-"):   # as grid_runs: the joint run's config, one modality
        modality = method.removeprefix("unimodal-")
        return unimodal_configs(make_config("joint", cell, seed, {}), [modality])[modality]
    return make_config(method, cell, seed, json.loads(row["setting"] or "{}"))


def study_results(runs: pd.DataFrame, *, make_config: Callable, cell_name: str,
                  cache_dir: str | Path) -> list[RunResult]:
    """RunResults in the order of `runs`. Never trains: a run missing from the cache is an error
    (run the study first, e.g. its run_study, which trains through the cache)."""
    results = []
    for row in runs.to_dict("records"):
        path = Path(cache_dir) / run_key(row_config(row, make_config=make_config, cell_name=cell_name))
        if not (path / "result.json").exists():
            raise FileNotFoundError(f"run {row[cell_name]!r} / seed {row['seed']} / {row['method']} is not in "
                                    f"the run cache {cache_dir} ({path.name}); run its study first")
        results.append(load_result(path))
    return results
