"""Seeds nested in folds: seeds[i] runs on folds[i mod F], the same in every section that shares runs."""
from collections import Counter
from pathlib import Path

import pytest

from mcrlib.config import ConfigError
from mcrlib.profiles import load_profile
from mcrlib.studies import ablations, benchmarks
from mcrlib.studies.grid import check_folds, fold_of

ROOT = Path(__file__).resolve().parents[1]


def test_every_fold_gets_its_own_block_of_seeds_and_the_first_seeds_keep_their_folds():
    folds, seeds = [0, 1, 2, 3, 4, 5], list(range(30))
    assigned = {seed: fold_of(folds, seeds, seed) for seed in seeds}
    assert Counter(assigned.values()) == {f: 5 for f in folds}
    assert [assigned[s] for s in range(6)] == folds                      # one seed per fold, as before
    assert [fold_of(folds, seeds[:6], s) for s in range(6)] == folds
    assert sorted(s for s, f in assigned.items() if f == 2) == [2, 8, 14, 20, 26]
    # the position in the list decides, not the seed's value (selection seeds 100-111)
    assert [fold_of([0, 2, 4], list(range(100, 106)), s) for s in range(100, 106)] == [0, 2, 4, 0, 2, 4]


def test_folds_that_do_not_divide_the_seeds_are_refused_with_the_key():
    check_folds([0, 1, 2], list(range(9)), "x.folds")
    with pytest.raises(ConfigError, match="x.folds.*whole blocks"):
        check_folds([0, 1, 2, 3, 4, 5], list(range(7)), "x.folds")
    params = load_profile("quick", ROOT)
    section = {**params["benchmarks"], "seeds": list(range(8))}
    with pytest.raises(ConfigError, match="benchmarks.datasets.AV-Digits.folds"):
        benchmarks.load_study(section)
    section = {k: v for k, v in params["ablations"].items() if k != "cost"}
    with pytest.raises(ConfigError, match="ablations.datasets.AV-Digits.folds"):
        ablations.load_study({**section, "seeds": [0, 1, 2, 3]})


def test_the_quick_profile_nests_seeds_in_each_speaker_fold_and_the_sections_agree():
    """Benchmarks (30 units: 5 per fold), ablations (12: 2 per fold) and competition (3) put a seed
    on the same fold (docs/preregistration.md, Amendment 2), so the ablations' reference rows and Figure 6's runs are the benchmarks' own runs."""
    params = load_profile("quick", ROOT)
    bench = benchmarks.load_study(params["benchmarks"])
    folds = Counter(bench.data_config("AV-Digits", s).params["fold"] for s in bench.seeds)
    assert folds == {f: 5 for f in range(6)}
    abl = ablations.load_study({k: v for k, v in params["ablations"].items() if k != "cost"})
    assert Counter(abl.data_config("AV-Digits", s).params["fold"] for s in abl.seeds) == {f: 2 for f in range(6)}
    for seed in abl.seeds:
        assert abl.run_config("joint", "AV-Digits", seed) == bench.run_config("joint", "AV-Digits", seed)
    assert set(params["competition"]["seeds"]) <= set(bench.seeds)
