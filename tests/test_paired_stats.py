"""Paired statistics over (fold, seed) units: intervals, Wilcoxon, Holm, verdicts."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mcrlib.analysis.paired import (COMBINE_RULE, CONTRADICTED, HOLDS, INCONCLUSIVE, VERDICT_RULE,
                                    bootstrap_interval, combine_verdicts, holm, paired_differences,
                                    power_half_width, verdict)

UNITS = [(0, 0), (0, 1), (1, 0), (1, 1)]


def runs_for(values: dict, dataset="d1", units=UNITS, value="test_acc"):
    """Long runs frame: values[method] is a list aligned with `units` (None = run missing)."""
    rows = [{"dataset": dataset, "method": method, "fold": fold, "seed": seed, value: v}
            for method, vs in values.items() for (fold, seed), v in zip(units, vs) if v is not None]
    return pd.DataFrame(rows)


def by_hand_t(d, confidence=0.95):
    d = np.asarray(d, float)
    half = stats.t.ppf((1 + confidence) / 2, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size)
    return d.mean() - half, d.mean() + half, half


def test_known_numbers_for_differences_1_2_3_4():
    # percent units, kept as given: differences method - reference = [1, 2, 3, 4]
    runs = runs_for({"base": [50, 60, 70, 80], "mcr": [51, 62, 73, 84]})
    row = paired_differences(runs, reference="base").iloc[0]
    half = stats.t.ppf(0.975, 3) * np.sqrt(5 / 3) / 2          # sd of [1,2,3,4] = sqrt(5/3), n = 4
    assert (row["dataset"], row["method"], row["reference"], row["n"]) == ("d1", "mcr", "base", 4)
    assert row["mean_reference"] == 65 and row["mean_method"] == 67.5 and row["mean_diff"] == 2.5
    assert row["low"] == pytest.approx(2.5 - half) and row["high"] == pytest.approx(2.5 + half)
    assert row["low"] == pytest.approx(0.445740, abs=1e-6) and row["high"] == pytest.approx(4.554260, abs=1e-6)
    assert row["half_width"] == pytest.approx(half)
    assert row["p_wilcoxon"] == pytest.approx(2 / 16)            # exact: all 4 positive, 2 of 2^4 sign patterns
    assert row["p_holm"] == pytest.approx(2 / 16)                # family of one
    assert row["verdict"] == HOLDS
    assert (row["n_only_reference"], row["n_only_method"]) == (0, 0)


def test_units_missing_on_one_side_are_dropped_and_counted():
    units = UNITS + [(2, 0), (2, 1), (3, 0)]
    runs = runs_for({"base": [50, 60, 70, 80, 10, None, 30],
                     "mcr": [51, 62, 73, 84, None, 90, np.nan]}, units=units)
    row = paired_differences(runs, reference="base").iloc[0]
    assert row["n"] == 4 and row["n_only_reference"] == 2 and row["n_only_method"] == 1   # NaN counts as missing
    assert row["mean_reference"] == 65 and row["mean_method"] == 67.5 and row["mean_diff"] == 2.5
    low, high, _ = by_hand_t([1, 2, 3, 4])
    assert (row["low"], row["high"]) == pytest.approx((low, high))


def test_pairing_is_by_unit_not_by_row_order():
    runs = runs_for({"base": [50, 60, 70, 80], "mcr": [51, 62, 73, 84]})
    shuffled = runs.sample(frac=1.0, random_state=3).reset_index(drop=True)
    row = paired_differences(shuffled, reference="base").iloc[0]
    assert row["mean_diff"] == 2.5 and row["half_width"] == pytest.approx(by_hand_t([1, 2, 3, 4])[2])


def test_holm_against_hand_worked_examples():
    # sorted 0.01, 0.03, 0.04 -> 3*0.01, 2*0.03, 1*0.04 = 0.03, 0.06, 0.04 -> running max 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    # sorted 0.01, 0.02, 0.04, 0.5 -> 0.04, 0.06, 0.08, 0.5 (already monotone)
    assert holm([0.01, 0.02, 0.5, 0.04]) == pytest.approx([0.04, 0.06, 0.5, 0.08])
    assert holm([0.6, 0.7]) == pytest.approx([1.0, 1.0])           # capped at 1
    out = holm([0.01, np.nan, 0.04])                               # NaN left out of m
    assert np.isnan(out[1]) and out[[0, 2]] == pytest.approx([0.02, 0.04])
    assert holm([]).size == 0


def test_verdict_rule_both_directions():
    assert verdict(0.1, 0.5, +1) == HOLDS and verdict(-0.5, -0.1, +1) == CONTRADICTED
    assert verdict(-0.5, -0.1, -1) == HOLDS and verdict(0.1, 0.5, -1) == CONTRADICTED
    for direction in (+1, -1):
        assert verdict(-0.1, 0.1, direction) == INCONCLUSIVE
        assert verdict(0.0, 0.3, direction) == INCONCLUSIVE          # touching zero does not exclude it
        assert verdict(np.nan, np.nan, direction) == INCONCLUSIVE
    with pytest.raises(ValueError):
        verdict(0.1, 0.2, 0)
    for word in ("holds", "contradicted", "inconclusive"):
        assert word.upper() in VERDICT_RULE


def test_verdicts_on_constructed_data_with_direction():
    base = [0.70, 0.72, 0.68, 0.71]
    runs = runs_for({"base": base,
                     "better": [b + e for b, e in zip(base, [0.03, 0.04, 0.05, 0.035])],
                     "worse": [b - e for b, e in zip(base, [0.03, 0.04, 0.05, 0.035])],
                     "same": [b + e for b, e in zip(base, [0.02, -0.02, 0.01, -0.015])]})
    up = paired_differences(runs, reference="base").set_index("method")["verdict"]
    assert up.to_dict() == {"better": HOLDS, "worse": CONTRADICTED, "same": INCONCLUSIVE}
    down = paired_differences(runs, reference="base", direction=-1).set_index("method")["verdict"]
    assert down.to_dict() == {"better": CONTRADICTED, "worse": HOLDS, "same": INCONCLUSIVE}
    only = paired_differences(runs, reference="base", methods=["worse", "base"])
    assert list(only["method"]) == ["worse"]


def test_all_zero_differences_give_p_one_and_inconclusive():
    runs = runs_for({"base": [0.5, 0.6, 0.7, 0.8], "copy": [0.5, 0.6, 0.7, 0.8]})
    row = paired_differences(runs, reference="base").iloc[0]
    assert row["p_wilcoxon"] == 1.0 and row["p_holm"] == 1.0
    assert row["mean_diff"] == 0 and row["low"] == 0 and row["high"] == 0 and row["half_width"] == 0
    assert row["verdict"] == INCONCLUSIVE
    boot = paired_differences(runs, reference="base", interval="bootstrap").iloc[0]
    assert (boot["low"], boot["high"], boot["verdict"]) == (0, 0, INCONCLUSIVE)


def test_fewer_than_two_units_gives_nan_interval():
    runs = runs_for({"base": [50, 60, None, None], "mcr": [55, None, 1, None]})
    row = paired_differences(runs, reference="base").iloc[0]
    assert row["n"] == 1 and row["mean_diff"] == 5
    assert np.isnan(row["low"]) and np.isnan(row["high"]) and np.isnan(row["half_width"])
    assert row["verdict"] == INCONCLUSIVE


def test_families_are_kept_separate_per_dataset():
    a = runs_for({"base": [50, 60, 70, 80], "m1": [51, 62, 73, 84], "m2": [49, 61, 69, 82]}, dataset="A")
    b = runs_for({"base": [10, 20, 30, 40], "m1": [12, 21, 33, 44]}, dataset="B")
    runs = pd.concat([a, b], ignore_index=True)
    table = paired_differences(runs, reference="base")
    assert list(zip(table["dataset"], table["method"])) == [("A", "m1"), ("A", "m2"), ("B", "m1")]
    assert table["n"].tolist() == [4, 4, 4]                      # B has no m2 at all: no row for it
    for _, group in table.groupby("dataset"):
        assert group["p_holm"].to_numpy() == pytest.approx(holm(group["p_wilcoxon"].to_numpy()))
    b_row = table[table["dataset"] == "B"].iloc[0]
    assert b_row["p_holm"] == pytest.approx(b_row["p_wilcoxon"])   # family of one: unadjusted
    assert b_row["mean_diff"] == 2.5 and b_row["mean_reference"] == 25
    everything = paired_differences(runs, reference="base", family=())
    assert everything["p_holm"].to_numpy() == pytest.approx(holm(table["p_wilcoxon"].to_numpy()))
    assert not np.allclose(everything["p_holm"], table["p_holm"])
    # per-dataset statistics do not depend on the other datasets
    alone = paired_differences(a, reference="base")
    pd.testing.assert_frame_equal(alone, table[table["dataset"] == "A"].reset_index(drop=True))


def test_several_cell_columns_and_missing_method_in_one_cell():
    a = runs_for({"base": [50, 60, 70, 80], "m1": [51, 62, 73, 84], "m2": [49, 61, 69, 82]}, dataset="A")
    b = runs_for({"base": [10, 20, 30, 40], "m1": [12, 21, 33, 44]}, dataset="B")
    runs = pd.concat([a.assign(machine="x"), b.assign(machine="y")], ignore_index=True)
    table = paired_differences(runs, reference="base", methods=["m1", "m2"], cell=["dataset", "machine"])
    missing = table[(table["dataset"] == "B") & (table["method"] == "m2")].iloc[0]
    assert missing["n"] == 0 and missing["n_only_reference"] == 4 and missing["verdict"] == INCONCLUSIVE
    assert np.isnan(missing["p_wilcoxon"]) and np.isnan(missing["p_holm"])
    b_m1 = table[(table["dataset"] == "B") & (table["method"] == "m1")].iloc[0]
    assert b_m1["machine"] == "y" and b_m1["p_holm"] == pytest.approx(b_m1["p_wilcoxon"])


def test_bootstrap_interval_is_seeded_and_paired():
    rng = np.random.default_rng(0)
    base = rng.uniform(0.6, 0.8, 15)
    d = rng.normal(0.02, 0.01, 15)
    units = [(f, s) for f in range(5) for s in range(3)]
    runs = runs_for({"base": list(base), "mcr": list(base + d)}, units=units)
    one = paired_differences(runs, reference="base", interval="bootstrap", n_resamples=2000, seed=1).iloc[0]
    two = paired_differences(runs, reference="base", interval="bootstrap", n_resamples=2000, seed=1).iloc[0]
    assert (one["low"], one["high"]) == (two["low"], two["high"])
    assert (one["low"], one["high"]) == pytest.approx(bootstrap_interval(d, n_resamples=2000, seed=1))
    assert one["low"] < d.mean() < one["high"] and one["verdict"] == HOLDS
    t_low, t_high, _ = by_hand_t(d)
    assert one["low"] == pytest.approx(t_low, abs=0.006) and one["high"] == pytest.approx(t_high, abs=0.006)
    with pytest.raises(ValueError):
        paired_differences(runs, reference="base", interval="normal")


def test_power_half_width_is_median_and_max():
    table = pd.DataFrame({"dataset": ["A", "A", "B", "B"], "half_width": [0.01, 0.03, 0.02, np.nan]})
    res = power_half_width(table)
    assert res["median_half_width"] == pytest.approx(0.02) and res["max_half_width"] == pytest.approx(0.03)
    assert res["n_comparisons"] == 3 and res["n_undefined"] == 1
    per = power_half_width(table, by="dataset")
    assert per.loc["A", "median_half_width"] == pytest.approx(0.02) and per.loc["B", "max_half_width"] == 0.02


def test_combine_verdicts():
    assert combine_verdicts([HOLDS, HOLDS]) == HOLDS
    assert combine_verdicts([CONTRADICTED, CONTRADICTED]) == CONTRADICTED
    assert combine_verdicts([HOLDS, INCONCLUSIVE]) == INCONCLUSIVE
    assert combine_verdicts([HOLDS, CONTRADICTED]) == INCONCLUSIVE
    assert combine_verdicts([]) == INCONCLUSIVE
    with pytest.raises(ValueError):
        combine_verdicts(["hold"])
    assert "every" in COMBINE_RULE


def test_bad_input_is_rejected():
    runs = runs_for({"base": [50, 60, 70, 80], "mcr": [51, 62, 73, 84]})
    with pytest.raises(ValueError, match="reference"):
        paired_differences(runs, reference="nope")
    with pytest.raises(ValueError, match="more than one run"):
        paired_differences(pd.concat([runs, runs.iloc[:1]]), reference="base")
    with pytest.raises(KeyError):
        paired_differences(runs, reference="base", value="val_acc")
    with pytest.raises(ValueError, match="family"):
        paired_differences(runs, reference="base", family="seed")
