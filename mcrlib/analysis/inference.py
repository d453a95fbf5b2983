"""Decisive verdicts: four outcomes, the design's own interval, a declared primary family.

`mcrlib.analysis.paired` computes one paired interval per comparison. This module decides what
a comparison says, with rules fixed before the numbers they decide (params.yaml, `report`):

Four verdicts (``verdict4``), from the 95% interval [low, high] of the mean paired difference
(method - reference) and the equivalence margin Δ declared per dataset:
  HOLDS         the interval excludes 0 on the claimed side;
  CONTRADICTED  it excludes 0 on the other side;
  EQUIVALENT    neither, and the whole interval lies inside (-Δ, +Δ): no difference worth having;
  INCONCLUSIVE  neither: the design cannot tell (its power statement says what size it resolves).

The design's interval (``design_interval``). On AV-Digits the units are (fold, seed) pairs:
  - seeds crossed with folds (several seeds per fold): the folds are fixed blocks. The estimand
    is the mean difference over *these* folds (AV-Digits as built), and the error is the
    run-to-run variation within a fold: SE^2 = s_pooled^2 / N, s_pooled^2 the pooled
    within-fold variance on df = sum_f (n_f - 1). This is the primary inference.
  - speaker-level (beside it): a t-interval over the F fold means, df = F - 1. It speaks for new
    speakers like these, and at F = 6 it resolves only large differences.
  - one seed per fold, or no fold column (the synthetic data, where each seed redraws the data):
    a t-interval over the units.

Power (``detectable``): the smallest true difference detected with probability `power` by a
two-sided test at level 1 - confidence, (t_{1-α/2, df} + t_{power, df}) * SE. An INCONCLUSIVE
verdict is printed with it, so a reader knows what size of effect the design could have shown.

The primary family (``adjust_primary``): the claims declared primary in params are tested
together, Holm's step-down on their two-sided t p-values (one p per claim; a "best of several"
claim takes the largest p over its rivals, an intersection-union test). A primary claim HOLDS or
is CONTRADICTED only if its Holm-adjusted p is below 1 - confidence (a row's `margin` column
decides EQUIVALENT/INCONCLUSIVE for one that loses its significance to the adjustment). Every other comparison is exploratory: unadjusted, and labelled so.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from mcrlib.analysis.paired import holm, verdict

HOLDS, CONTRADICTED, EQUIVALENT, INCONCLUSIVE = "holds", "contradicted", "equivalent", "inconclusive"
VERDICTS4 = (HOLDS, CONTRADICTED, EQUIVALENT, INCONCLUSIVE)

VERDICT4_RULE = (
    "Each comparison (method − reference, paired over units) gets one of four verdicts from its 95% interval "
    "[low, high] and the equivalence margin Δ declared for its dataset before any run: HOLDS when the interval "
    "excludes 0 on the claimed side; CONTRADICTED when it excludes 0 on the other side; EQUIVALENT when neither and "
    "the whole interval lies inside ±Δ (no difference worth having); INCONCLUSIVE otherwise, printed with the "
    "smallest difference the design detects with 80% power."
)


def verdict4(low: float, high: float, direction: int = +1, margin: float = np.nan) -> str:
    """The four-way verdict of one interval (see the module docstring). A NaN bound: inconclusive;
    a NaN margin: no equivalence verdict possible."""
    decided = verdict(low, high, direction)          # holds / contradicted / inconclusive
    if decided != INCONCLUSIVE or pd.isna(low) or pd.isna(margin):
        return decided
    return EQUIVALENT if -margin < low and high < margin else INCONCLUSIVE


def _t(d: np.ndarray, confidence: float) -> dict:
    n = d.size
    if n < 2:
        return {"mean": d.mean() if n else np.nan, "se": np.nan, "df": max(n - 1, 0)}
    return {"mean": d.mean(), "se": d.std(ddof=1) / np.sqrt(n), "df": n - 1}


def design_estimate(differences: pd.DataFrame, *, value: str = "diff", block: str | None = "fold") -> dict:
    """Mean, standard error, degrees of freedom and design of the paired differences in
    `differences` (one row per unit; `block` names the fold column, or None).

    Blocked ("folds fixed, seeds within") when every block has at least 2 units and there are
    at least 2 blocks' worth of within-block df; otherwise a t over the units ("units")."""
    d = differences[value].to_numpy(dtype=float)
    if block is None or block not in differences or differences[block].nunique() in (0, 1, len(differences)):
        return {**_t(d, 0.95), "n": d.size, "design": "units"}
    groups = differences.groupby(block)[value]
    sizes = groups.size()
    if sizes.min() < 2:
        return {**_t(d, 0.95), "n": d.size, "design": "units"}
    within = groups.apply(lambda g: ((g - g.mean()) ** 2).sum()).sum()
    df = int((sizes - 1).sum())
    pooled = within / df
    # Balanced blocks: the mean of the fold means equals the mean of the units; unbalanced blocks
    # weight each fold equally (the estimand is the average over these folds).
    means = groups.mean()
    se = np.sqrt(pooled * (1 / sizes).sum()) / len(sizes)
    return {"mean": means.mean(), "se": se, "df": df, "n": d.size, "design": "folds fixed, seeds within"}


def speaker_estimate(differences: pd.DataFrame, *, value: str = "diff", block: str = "fold") -> dict:
    """The speaker-level estimate: a t over the fold means (df = folds - 1)."""
    means = differences.groupby(block)[value].mean().to_numpy(dtype=float)
    return {**_t(means, 0.95), "n": means.size, "design": "folds as a sample of speakers"}


def interval(estimate: dict, confidence: float = 0.95) -> tuple[float, float]:
    if not estimate["df"] or pd.isna(estimate["se"]):
        return np.nan, np.nan
    half = stats.t.ppf((1 + confidence) / 2, estimate["df"]) * estimate["se"]
    return estimate["mean"] - half, estimate["mean"] + half


def p_value(estimate: dict) -> float:
    """Two-sided t p-value of mean = 0 (1 when every difference is 0, NaN without df)."""
    if not estimate["df"] or pd.isna(estimate["se"]):
        return np.nan
    if estimate["se"] == 0:
        return 1.0 if estimate["mean"] == 0 else 0.0
    return float(2 * stats.t.sf(abs(estimate["mean"]) / estimate["se"], estimate["df"]))


def detectable(estimate: dict, confidence: float = 0.95, power: float = 0.8) -> float:
    """The smallest true difference the design detects with probability `power`."""
    if not estimate["df"] or pd.isna(estimate["se"]):
        return np.nan
    return float((stats.t.ppf((1 + confidence) / 2, estimate["df"]) + stats.t.ppf(power, estimate["df"]))
                 * estimate["se"])


def compare(runs: pd.DataFrame, *, method: str, reference: str, value: str = "test_acc",
            units: Sequence[str] = ("seed",), block: str | None = None, direction: int = +1,
            margin: float = np.nan, confidence: float = 0.95) -> dict:
    """One paired comparison with the design's interval, p, detectable difference and verdict.

    `runs` holds one row per (method, unit) of one cell; units both methods have are paired."""
    units = list(units)
    wide = runs.pivot_table(index=units, columns="method", values=value, aggfunc="mean")
    if method not in wide or reference not in wide:
        return {"method": method, "reference": reference, "n": 0, "mean_diff": np.nan, "low": np.nan,
                "high": np.nan, "p_t": np.nan, "detectable": np.nan, "design": "—",
                "verdict": INCONCLUSIVE}
    diff = (wide[method] - wide[reference]).dropna().rename("diff").reset_index()
    estimate = design_estimate(diff, block=block if block in units else None)
    low, high = interval(estimate, confidence)
    row = {"method": method, "reference": reference, "n": estimate["n"], "mean_diff": estimate["mean"],
           "low": low, "high": high, "half_width": (high - low) / 2, "df": estimate["df"],
           "p_t": p_value(estimate), "detectable": detectable(estimate, confidence), "design": estimate["design"],
           "verdict": verdict4(low, high, direction, margin)}
    if block in units and diff[block].nunique() >= 2 and estimate["design"] != "units":
        speaker = speaker_estimate(diff, block=block)
        s_low, s_high = interval(speaker, confidence)
        row.update({"speaker_low": s_low, "speaker_high": s_high,
                    "speaker_detectable": detectable(speaker, confidence)})
    return row


def best_of(rows: list[dict], direction: int = +1, margin: float = np.nan) -> dict:
    """A "best of several" claim from its comparisons with every rival (intersection-union):
    HOLDS if it holds against each; CONTRADICTED if any rival is significantly better; EQUIVALENT
    if every interval lies within ±Δ; INCONCLUSIVE otherwise. Shown: a contradicting rival if
    there is one, else the closest. Its p for the primary family is the largest over rivals."""
    rows = [r for r in rows if r["n"]]
    if not rows:
        return {"mean_diff": np.nan, "low": np.nan, "high": np.nan, "verdict": INCONCLUSIVE, "p_t": np.nan}
    verdicts = [r["verdict"] for r in rows]
    against = [r for r in rows if r["verdict"] == CONTRADICTED]
    shown = min(against or rows, key=lambda r: direction * r["mean_diff"])
    if against:
        v = CONTRADICTED
    elif all(x == HOLDS for x in verdicts):
        v = HOLDS
    elif all(x in (EQUIVALENT, HOLDS) for x in verdicts) and all(-margin < r["low"] and r["high"] < margin for r in rows):
        v = EQUIVALENT
    else:
        v = INCONCLUSIVE
    ps = [r["p_t"] for r in rows]
    return {**shown, "verdict": v, "p_t": max(ps) if not any(pd.isna(ps)) else np.nan}


def adjust_primary(claims: pd.DataFrame, *, alpha: float = 0.05) -> pd.DataFrame:
    """Holm over the `p_t` of the rows with `primary` true; their holds/contradicted verdicts
    stand only where the adjusted p is below `alpha` (else the interval's equivalent or
    inconclusive). Other rows are marked exploratory."""
    out = claims.copy()
    out["p_holm"] = np.nan
    primary = out["primary"].fillna(False).astype(bool)
    out.loc[primary, "p_holm"] = holm(out.loc[primary, "p_t"].to_numpy(dtype=float))
    margin = out["margin"] if "margin" in out else pd.Series(np.nan, index=out.index)
    for i in out.index[primary]:
        if out.at[i, "verdict"] in (HOLDS, CONTRADICTED) and not out.at[i, "p_holm"] < alpha:
            inside = -margin[i] < out.at[i, "low"] and out.at[i, "high"] < margin[i]
            out.at[i, "verdict"] = EQUIVALENT if inside else INCONCLUSIVE
    out["family"] = np.where(primary, "primary (Holm)", "exploratory")
    return out


def paired(runs: pd.DataFrame, *, reference: str, methods: Sequence[str] | None = None, value: str = "test_acc",
           cell: str = "dataset", units: Sequence[str] = ("seed",), block: str | None = None,
           direction: int = +1, margin: float = np.nan, confidence: float = 0.95) -> pd.DataFrame:
    """`compare` for every (cell, method) against `reference`: one row each, with the cell column.
    `methods=None` takes every other method with runs in the cell."""
    units = [u for u in units if u in runs.columns]
    rows = []
    for value_of_cell, part in runs.groupby(cell, sort=False):
        names = [m for m in (methods if methods is not None else pd.unique(part["method"])) if m != reference]
        for method in names:
            rows.append({cell: value_of_cell, **compare(part, method=method, reference=reference, value=value,
                                                        units=units, block=block, direction=direction,
                                                        margin=margin, confidence=confidence)})
    return pd.DataFrame(rows)
