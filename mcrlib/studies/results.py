"""The RunResult behind each row of a study's runs table, read from the run cache only.

Analyses (error matrices, robustness) need the predictions and weights of the runs a study's
table summarises. Every row carries its run's key (`run_key`, written by mcrlib.studies.grid), and
the run is found under that key: not by rebuilding its config from the row's labels, which would
find another run (or none) once the code, the params or the calibration had changed since the
table was written.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from mcrlib.runs import RunResult, load_result


def read_runs(path: str | Path) -> pd.DataFrame:
    """A study's runs table (its runs.csv), which must carry its run keys. Keys are read as text:
    a key of only digits would otherwise become a number."""
    runs = pd.read_csv(path, dtype={"run_key": str})
    if "run_key" not in runs.columns:
        raise ValueError(f"{path} has no run_key column: it was written before runs tables carried "
                         "their run keys; run its study again")
    return runs


def study_results(runs: pd.DataFrame, cache_dir: str | Path) -> list[RunResult]:
    """RunResults in the order of `runs`, each found by its row's `run_key`. Never trains: a run
    missing from the cache is an error (run the study first, e.g. its run_study, which trains
    through the cache)."""
    results = []
    for row in runs.to_dict("records"):
        path = Path(cache_dir) / row["run_key"]
        if not (path / "result.json").exists():
            raise FileNotFoundError(f"run {row['run_key']} (seed {row['seed']}, {row['method']}) is not in "
                                    f"the run cache {cache_dir}; run its study first")
        results.append(load_result(path))
    return results
