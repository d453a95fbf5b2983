"""The hyperparameter search: equal budgets, validation-only selection, cached trials."""
import pytest

from mcrlib.config import ConfigError, RunConfig, from_dict
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
