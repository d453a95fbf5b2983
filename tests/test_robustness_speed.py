"""The robustness benchmark: the full-pass reference gives the analysis' own accuracies, and the
benchmark times both on runs it finds in a cache (and says when it finds none)."""
import copy

import pandas as pd
import pytest

from benchmarks import robustness_speed as bench
from mcrlib.analysis.robustness import robustness
from mcrlib.runs import run
from tests.conftest import TINY_RUN


@pytest.fixture(scope="module")
def runs_table(tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    rows = []
    for method in ("joint", "mcr", "ensemble"):
        result = run({**copy.deepcopy(TINY_RUN), "method": {"name": method, "params": {}}}, cache)
        rows.append({"method": method, "seed": 0, "run_key": result.path.name})
    rows.append({"method": "unimodal-x1", "seed": 0, "run_key": rows[0]["run_key"]})
    rows.append({"method": "joint", "seed": 1, "run_key": "0000000000000000"})   # not in the cache
    path = cache / "runs.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path, cache


def test_the_reference_gives_the_analysis_accuracies(runs_table):
    path, cache = runs_table
    result = bench.load_result(cache / pd.read_csv(path)["run_key"][1])   # the MCR run
    assert bench.reference_robustness(result, seed=2).equals(robustness(result, seed=2))


def test_only_trained_multimodal_runs_in_the_cache_are_timed(runs_table, capsys):
    path, cache = runs_table
    rows, missing = bench.trained_runs(path, cache, limit=10, one_per_method=False)
    assert list(rows["method"]) == ["joint", "mcr"] and missing == 1
    bench.main(["--runs", str(path), "--cache", str(cache)])
    out = capsys.readouterr().out
    assert "2 runs (1 trained runs of the table not in the cache)" in out and "identical accuracies: 2 of 2" in out


def test_no_run_in_the_cache_is_a_clear_error(runs_table, tmp_path):
    path, _ = runs_table
    with pytest.raises(SystemExit, match="no trained run of .* is in the run cache"):
        bench.main(["--runs", str(path), "--cache", str(tmp_path)])
