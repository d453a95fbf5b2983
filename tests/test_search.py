"""The hyperparameter search: equal budgets, validation-only selection, cached trials."""
from pathlib import Path

import pytest

from mcrlib.config import ConfigError, RunConfig, from_dict
from mcrlib.run_key import run_key
from mcrlib.search import SearchConfig, select
from tests.conftest import TINY_RUN


def test_every_searched_method_gets_the_same_number_of_trials():
    search = SearchConfig(grid={"mcr": {"lambda_mipd": [0.1, 1.0]}, "ogm": {"alpha": [0.3, 0.8]}})
    assert search.trials("mcr") == [{"lambda_mipd": 0.1}, {"lambda_mipd": 1.0}]
    assert search.trials("joint") == [{}]
    with pytest.raises(ConfigError, match="different numbers of trials"):
        SearchConfig(grid={"mcr": {"lambda_mipd": [0.1, 1.0]}, "ogm": {"alpha": [0.3]}})


def test_grid_values_are_validated_before_training():
    with pytest.raises(ConfigError, match="copies"):
        SearchConfig(grid={"mcr": {"copies": [0, 4]}})
    with pytest.raises(ConfigError, match="non-empty lists"):
        SearchConfig(grid={"mcr": {"lambda_mipd": 0.1}})


def test_selection_uses_validation_accuracy_only(tmp_path):
    search = SearchConfig(seeds=(0, 1), grid={"multiloss": {"uni_weight": [0.0, 1.0, 4.0]}})

    def make(method, cell, seed, overrides):
        return from_dict(RunConfig, {**TINY_RUN, "seed": seed,
                                     "method": {"name": method, "params": overrides}})
    chosen, trials = select(search, ["joint", "multiloss"], ["only"], make, tmp_path)
    assert len(trials) == 3 * 2 and set(trials["seed"]) == {0, 1}
    assert "test_acc" not in " ".join(trials.columns)
    means = trials.groupby("trial")["val_acc"].mean()
    best = int(means.idxmax())
    assert chosen[("multiloss", "only")] == search.trials("multiloss")[best]
    assert chosen[("joint", "only")] == {}
    assert trials["selected"].sum() == 2  # both seeds of the chosen trial
    again, _ = select(search, ["joint", "multiloss"], ["only"], make, tmp_path)  # from the run cache
    assert again == chosen and len(list(tmp_path.iterdir())) == 6
    # Every trial carries its run's key: the cache folder of its config.
    assert trials["run_key"].tolist() == [run_key(make("multiloss", "only", seed, trial))
                                          for trial in search.trials("multiloss") for seed in (0, 1)]
    assert set(trials["run_key"]) == {p.name for p in tmp_path.iterdir()}


def test_a_grid_that_cannot_apply_to_a_dataset_is_rejected_before_training():
    """MSLR's two multipliers on a three-modality dataset fail when the study loads, not hours
    into the search; a per-dataset grid (search.cells) with the same budget fixes it."""
    from mcrlib.studies.benchmarks import load_study
    two = {"name": "synthetic", "params": {}}
    study = {"datasets": {"S": two}, "methods": ["joint", "mslr"], "seeds": [0],
             "search": {"grid": {"mslr": {"init": [[0.7, 1.3], [1.3, 0.7]]}}}}
    load_study(study)   # two modalities: the shared grid applies
    with pytest.raises(ConfigError, match="search gives different numbers of trials"):
        SearchConfig(grid={"mslr": {"init": [[0.7, 1.3], [1.3, 0.7]]}},
                     cells={"S": {"mslr": {"init": [[1.0, 1.0]]}}})
    with pytest.raises(ConfigError, match="benchmarks.search.cells.T"):
        load_study({**study, "search": {**study["search"], "cells": {"T": {"mslr": {"init": [[1, 1], [2, 2]]}}}}})
    cells = SearchConfig(grid={"mslr": {"init": [[0.7, 1.3], [1.3, 0.7]]}},
                         cells={"S": {"mslr": {"init": [[0.5, 0.5], [2.0, 2.0]]}}})
    assert cells.trials("mslr", "S") == [{"init": [0.5, 0.5]}, {"init": [2.0, 2.0]}]
    assert cells.trials("mslr", "other") == [{"init": [0.7, 1.3]}, {"init": [1.3, 0.7]}]


def test_the_paper_profile_searches_mslr_on_three_modalities_with_three_multipliers():
    from mcrlib.profiles import load_profile
    from mcrlib.studies.benchmarks import load_study
    params = load_profile("paper", Path(__file__).resolve().parents[1])["benchmarks"]
    study = load_study(params)
    assert all(len(t["init"]) == 3 for t in study.search.trials("mslr", "MOSI V-A-T"))
    without = {**params, "search": {k: v for k, v in params["search"].items() if k != "cells"}}
    with pytest.raises(ConfigError, match="3 multipliers"):
        load_study(without)


def test_a_method_that_cannot_run_on_a_dataset_is_skipped_by_the_study_and_refused_by_a_run():
    """The paper profile lists every method for every dataset; a method that cannot run on one
    (ReconBoost, PMR, MMCosine, ARM on MOSI's regression; OGM and ARM on three modalities) is
    skipped there, with its reason, and a run of that pair is a configuration error."""
    from mcrlib.profiles import load_profile
    from mcrlib.run_key import check_run
    from mcrlib.studies.benchmarks import load_study
    params = load_profile("paper", Path(__file__).resolve().parents[1])["benchmarks"]
    study = load_study(params)
    skipped = {(m, d) for d in study.datasets for m in study.methods if not study.runs_on(m, d)}
    assert {("reconboost", "MOSI V-T"), ("pmr", "MOSEI V-A-T"), ("ogm", "MOSI V-A-T"), ("arm", "MOSEI V-T")} <= skipped
    assert not {(m, d) for m, d in skipped if d in ("CREMA-D", "AVE", "UCF-51", "AV-Digits")}
    assert ("mmpareto", "MOSI V-T") not in skipped and ("dnr", "MOSEI V-A-T") not in skipped
    assert "classification only" in study.skipped("reconboost", "MOSI V-T")
    with pytest.raises(ConfigError, match="'reconboost' cannot run on data.name='mosi'.*classification only"):
        check_run(from_dict(RunConfig, {"data": {"name": "mosi"}, "method": {"name": "reconboost"}}))
