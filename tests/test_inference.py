"""The four verdicts, the blocked (folds fixed, seeds within) interval, power and the primary
family, against numbers computed by hand."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mcrlib.analysis.inference import (CONTRADICTED, EQUIVALENT, HOLDS, INCONCLUSIVE, adjust_primary, best_of,
                                       compare, design_estimate, detectable, interval, p_value, speaker_estimate,
                                       verdict4)


@pytest.mark.parametrize("low,high,direction,margin,expected", [
    (0.1, 0.5, +1, 1.0, HOLDS), (-0.5, -0.1, +1, 1.0, CONTRADICTED), (-0.5, -0.1, -1, 1.0, HOLDS),
    (0.1, 0.5, -1, 1.0, CONTRADICTED), (-0.5, 0.5, +1, 1.0, EQUIVALENT), (-0.5, 1.5, +1, 1.0, INCONCLUSIVE),
    (-1.0, 0.5, +1, 1.0, INCONCLUSIVE),        # touching the margin is not inside it
    (-0.5, 0.5, +1, np.nan, INCONCLUSIVE),      # no declared margin: no equivalence
    (np.nan, np.nan, +1, 1.0, INCONCLUSIVE)])
def test_four_verdicts(low, high, direction, margin, expected):
    assert verdict4(low, high, direction, margin) == expected


def test_verdict_rejects_a_reversed_interval_and_a_bad_direction():
    with pytest.raises(ValueError, match="low 1 > high 0"):
        verdict4(1, 0)
    with pytest.raises(ValueError, match="direction"):
        verdict4(0, 1, 0)


def test_blocked_estimate_by_hand():
    # two folds, three seeds each: fold 0 diffs 1, 2, 3 (mean 2, SS 2); fold 1 diffs 5, 5, 8 (mean 6, SS 6)
    d = pd.DataFrame({"fold": [0, 0, 0, 1, 1, 1], "seed": [0, 1, 2] * 2, "diff": [1.0, 2, 3, 5, 5, 8]})
    est = design_estimate(d, block="fold")
    assert est["design"] == "folds fixed, seeds within" and est["df"] == 4 and est["n"] == 6
    assert est["mean"] == pytest.approx(4.0)
    # pooled variance (2 + 6) / 4 = 2; SE^2 = 2 * (1/3 + 1/3) / 2^2 = 1/3
    assert est["se"] == pytest.approx(math.sqrt(1 / 3))
    low, high = interval(est)
    half = stats.t.ppf(0.975, 4) * math.sqrt(1 / 3)
    assert (low, high) == pytest.approx((4 - half, 4 + half))
    assert p_value(est) == pytest.approx(2 * stats.t.sf(4 / math.sqrt(1 / 3), 4))
    assert detectable(est) == pytest.approx((stats.t.ppf(0.975, 4) + stats.t.ppf(0.8, 4)) * math.sqrt(1 / 3))
    # the speaker-level view: a t over the two fold means (2, 6): mean 4, sd 2.828, se 2, df 1
    speaker = speaker_estimate(d, block="fold")
    assert speaker["df"] == 1 and speaker["se"] == pytest.approx(2.0) and speaker["mean"] == pytest.approx(4.0)


def test_blocked_interval_removes_the_speaker_variance():
    """Fold effects far larger than the run-to-run noise: the fixed-block interval resolves a
    small shift that the interval over fold means cannot."""
    rng = np.random.default_rng(0)
    folds = np.repeat(np.arange(6), 5)
    diff = 1.0 + np.array([-6, 4, -3, 5, -1, 1])[folds] + rng.normal(0, 0.5, folds.size)
    runs = pd.concat([pd.DataFrame({"fold": folds, "seed": np.tile(np.arange(5), 6), "method": "m", "test_acc": diff}),
                      pd.DataFrame({"fold": folds, "seed": np.tile(np.arange(5), 6), "method": "r", "test_acc": 0.0})])
    row = compare(runs, method="m", reference="r", units=("fold", "seed"), block="fold", margin=0.5)
    assert row["design"] == "folds fixed, seeds within" and row["df"] == 24 and row["n"] == 30
    assert row["verdict"] == HOLDS and row["low"] > 0.5
    assert row["speaker_low"] < 0 < row["speaker_high"]          # over speakers: not resolved
    assert row["speaker_detectable"] > 5 * row["detectable"]


def test_one_seed_per_fold_falls_back_to_units():
    runs = pd.DataFrame({"fold": [0, 1, 2] * 2, "seed": [0, 1, 2] * 2, "method": ["m"] * 3 + ["r"] * 3,
                         "test_acc": [1.0, 2, 4, 0, 0, 0]})
    row = compare(runs, method="m", reference="r", units=("fold", "seed"), block="fold")
    assert row["design"] == "units" and row["df"] == 2 and "speaker_low" not in row
    sd = np.std([1, 2, 4], ddof=1)
    assert row["half_width"] == pytest.approx(stats.t.ppf(0.975, 2) * sd / math.sqrt(3))


def test_best_of_is_an_intersection_union():
    hold = {"n": 6, "mean_diff": 2.0, "low": 1.0, "high": 3.0, "verdict": HOLDS, "p_t": 0.01}
    weak = {"n": 6, "mean_diff": 0.5, "low": -0.2, "high": 1.2, "verdict": INCONCLUSIVE, "p_t": 0.2}
    against = {"n": 6, "mean_diff": -2.0, "low": -3.0, "high": -1.0, "verdict": CONTRADICTED, "p_t": 0.001}
    assert best_of([hold, hold])["verdict"] == HOLDS and best_of([hold, hold])["p_t"] == 0.01
    combined = best_of([hold, weak])
    assert combined["verdict"] == INCONCLUSIVE and combined["p_t"] == 0.2 and combined["mean_diff"] == 0.5
    assert best_of([hold, weak, against])["verdict"] == CONTRADICTED
    near = {"n": 6, "mean_diff": 0.1, "low": -0.3, "high": 0.5, "verdict": EQUIVALENT, "p_t": 0.6}
    assert best_of([near, near], margin=1.0)["verdict"] == EQUIVALENT


def test_primary_family_is_holm_adjusted_on_t_p_values():
    claims = pd.DataFrame({
        "claim": ["a", "b", "c", "d"], "primary": [True, True, True, False],
        "p_t": [0.01, 0.03, 0.04, 0.03], "low": [0.1, 0.1, -0.9, 0.1], "high": [1.0, 0.4, -0.1, 1.0],
        "margin": [1.0, 0.5, 0.5, 1.0], "verdict": [HOLDS, HOLDS, CONTRADICTED, HOLDS]})
    out = adjust_primary(claims)
    # Holm over 3: 0.01*3 = 0.03, max(0.03, 0.03*2) = 0.06, max(0.06, 0.04*1) = 0.06
    assert out["p_holm"].iloc[:3].tolist() == pytest.approx([0.03, 0.06, 0.06])
    # b loses significance and its interval lies inside ±0.5: equivalent; c is not inside: inconclusive
    assert out["verdict"].tolist() == [HOLDS, EQUIVALENT, INCONCLUSIVE, HOLDS]
    assert out["family"].tolist() == ["primary (Holm)"] * 3 + ["exploratory"]
    assert math.isnan(out["p_holm"].iloc[3])
