"""Paired comparisons of methods over (fold, seed) units, with verdict rules fixed in advance.

Unit
    One training run's evaluation setting that every method shares: by default a
    ``(fold, seed)`` pair (the ``units`` columns).  Within one cell (a dataset, or any
    ``cell`` column(s)) a method and the reference are compared only on the units both
    have; a unit that only one of them has is dropped and counted (``n_only_reference``,
    ``n_only_method``), a unit whose value is NaN counts as missing.

Why paired
    The fold and the seed move every method's score together (an easy fold is easy for
    all of them), so the per-unit difference ``method - reference`` removes that shared
    variation and its spread is far smaller than that of either score.  All statistics
    below are computed on these differences, in the units of the value column as given
    (fractions stay fractions, percent stays percent).

Interval
    ``interval="t"`` (the default): the Student-t interval of the mean difference,
    ``mean ± t.ppf((1 + confidence) / 2, n - 1) * sd / sqrt(n)`` (scipy.stats.t, sd with
    ddof=1); NaN when n < 2; when all differences are equal the interval is the single
    point ``[d, d]``.  ``interval="bootstrap"``: scipy.stats.bootstrap of the mean
    difference, resampling units (the pairs travel together), BCa method,
    ``n_resamples`` resamples, seeded by ``seed``; same n < 2 and equal-differences rules.

Test
    The two-sided Wilcoxon signed-rank test on the differences (scipy.stats.wilcoxon,
    ``zero_method="zsplit"``: zero differences are kept and their ranks split between the
    two signs, so a run of ties with the reference counts as evidence of no difference
    instead of being thrown away).  When all differences are zero p = 1; with no paired
    unit p is NaN.

Holm family
    p-values are Holm step-down adjusted within a family: by default the cell, i.e. all
    methods compared with the same reference on one dataset.  ``family`` may name other
    columns of the result (cell columns and/or ``"method"``), or ``()`` for one family
    over the whole table.  NaN p-values are left out of their family (and stay NaN).

Verdict
    See ``VERDICT_RULE`` (and ``COMBINE_RULE`` for a claim checked on several datasets or
    machines).  The verdict depends on the interval only; the p-values are reported
    alongside it.
"""
from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

HOLDS = "holds"
CONTRADICTED = "contradicted"
INCONCLUSIVE = "inconclusive"
VERDICTS = (HOLDS, CONTRADICTED, INCONCLUSIVE)

VERDICT_RULE = (
    "Verdict per (dataset, method) comparison with the reference, from the paired interval of the "
    "mean difference (method - reference) over the units both have: "
    "HOLDS when the interval excludes zero in the claimed direction "
    "(direction +1, claim 'method > reference': low > 0; direction -1, claim 'method < reference': high < 0); "
    "CONTRADICTED when it excludes zero in the other direction "
    "(direction +1: high < 0; direction -1: low > 0); "
    "INCONCLUSIVE otherwise, including an interval that touches zero and an undefined interval (fewer than 2 units)."
)

COMBINE_RULE = (
    "A claim checked on several datasets or machines HOLDS only if it holds on every one, "
    "is CONTRADICTED only if it is contradicted on every one, and is INCONCLUSIVE otherwise "
    "(including a mix of holds and contradicted, and no verdicts at all)."
)

INTERVALS = ("t", "bootstrap")


def verdict(low: float, high: float, direction: int = +1) -> str:
    """Apply ``VERDICT_RULE`` to one interval ``[low, high]`` of the mean difference.

    ``direction=+1`` is the claim "method > reference", ``-1`` the claim "method < reference".
    A NaN bound gives "inconclusive"."""
    if direction not in (+1, -1):
        raise ValueError(f"direction must be +1 or -1, got {direction!r}")
    if pd.isna(low) or pd.isna(high):
        return INCONCLUSIVE
    if low > high:
        raise ValueError(f"interval low {low} > high {high}")
    if low > 0:
        return HOLDS if direction > 0 else CONTRADICTED
    if high < 0:
        return HOLDS if direction < 0 else CONTRADICTED
    return INCONCLUSIVE


def combine_verdicts(verdicts: Iterable[str]) -> str:
    """Apply ``COMBINE_RULE``: "holds" if all hold, "contradicted" if all are contradicted,
    else (mixed, any inconclusive, or none given) "inconclusive"."""
    verdicts = list(verdicts)
    unknown = set(verdicts) - set(VERDICTS)
    if unknown:
        raise ValueError(f"unknown verdicts {sorted(unknown)}; expected one of {VERDICTS}")
    if verdicts and all(v == HOLDS for v in verdicts):
        return HOLDS
    if verdicts and all(v == CONTRADICTED for v in verdicts):
        return CONTRADICTED
    return INCONCLUSIVE


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values, in the input order.

    Sorted ascending, the i-th smallest of m p-values (i = 1..m) becomes
    ``max_{j <= i} min(1, (m - j + 1) * p_(j))``.  NaN entries are left out of m and stay NaN."""
    p = np.asarray(pvalues, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = ok.size
    if m == 0:
        return adjusted
    order = ok[np.argsort(p[ok], kind="stable")]
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def t_interval(differences: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Student-t interval of the mean of ``differences`` (NaN, NaN when fewer than 2)."""
    d = np.asarray(differences, dtype=float)
    n = d.size
    if n < 2:
        return np.nan, np.nan
    mean = d.mean()
    half = stats.t.ppf((1 + confidence) / 2, n - 1) * d.std(ddof=1) / np.sqrt(n)
    return mean - half, mean + half


def bootstrap_interval(differences: Sequence[float], confidence: float = 0.95, *,
                       n_resamples: int = 9999, seed: int = 0) -> tuple[float, float]:
    """BCa bootstrap interval (scipy.stats.bootstrap) of the mean of the paired differences,
    resampling units; NaN when fewer than 2, the point [d, d] when all are equal."""
    d = np.asarray(differences, dtype=float)
    if d.size < 2:
        return np.nan, np.nan
    if np.all(d == d[0]):
        return float(d[0]), float(d[0])
    rng = np.random.default_rng(seed)
    seeding = {"rng": rng} if "rng" in inspect.signature(stats.bootstrap).parameters else {"random_state": rng}
    result = stats.bootstrap((d,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                             method="BCa", **seeding)
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def wilcoxon_p(differences: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value (zero_method="zsplit"); 1 when all differences
    are zero, NaN when there are none."""
    d = np.asarray(differences, dtype=float)
    if d.size == 0:
        return np.nan
    if np.all(d == 0):
        return 1.0
    return float(stats.wilcoxon(d, zero_method="zsplit", alternative="two-sided").pvalue)


def _as_list(columns) -> list[str]:
    if columns is None:
        return []
    return [columns] if isinstance(columns, str) else list(columns)


def _key(value) -> tuple:
    return value if isinstance(value, tuple) else (value,)


def paired_differences(runs: pd.DataFrame, *, reference: str, methods: Sequence[str] | None = None,
                       value: str = "test_acc", cell: str | Sequence[str] = "dataset",
                       units: Sequence[str] = ("fold", "seed"), family: str | Sequence[str] | None = None,
                       direction: int = +1, confidence: float = 0.95, interval: str = "t",
                       n_resamples: int = 9999, seed: int = 0) -> pd.DataFrame:
    """One row per (cell, method != reference): the paired comparison with the reference.

    ``runs`` has one row per run with the ``cell`` column(s), ``method``, the ``units``
    columns and ``value``.  ``methods=None`` takes, in each cell, every method other than
    the reference that has runs there (in order of appearance); methods named explicitly
    get a row in every cell, with n = 0 and NaN statistics where they have no runs.
    ``interval`` is "t" (default, Student-t) or "bootstrap" (BCa, scipy.stats.bootstrap
    over units, ``n_resamples``/``seed``).  ``family`` names the
    result columns whose values define a Holm family (default: the cell columns; ``()``
    for one family).  ``direction`` is the claim's sign (+1: method > reference).

    Columns: the cell column(s), method, reference, n (paired units), n_only_reference,
    n_only_method (units dropped because the other side lacks them or is NaN),
    mean_reference and mean_method (over the paired units), mean_diff, low, high,
    half_width, p_wilcoxon, p_holm, verdict.
    """
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {INTERVALS}, got {interval!r}")
    if direction not in (+1, -1):
        raise ValueError(f"direction must be +1 or -1, got {direction!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    cells, units = _as_list(cell), _as_list(units)
    missing = [c for c in [*cells, "method", *units, value] if c not in runs.columns]
    if missing:
        raise KeyError(f"runs lacks columns {missing}")
    duplicated = runs.duplicated([*cells, "method", *units], keep=False)
    if duplicated.any():
        raise ValueError("more than one run per (cell, method, unit):\n"
                         f"{runs.loc[duplicated, [*cells, 'method', *units]].head()}")
    present = pd.unique(runs["method"])
    if reference not in present:
        raise ValueError(f"reference {reference!r} not among the methods {list(present)}")
    explicit = methods is not None
    if not explicit:
        methods = [m for m in present if m != reference]
    else:
        methods = [m for m in methods if m != reference]
        absent = [m for m in methods if m not in present]
        if absent:
            raise ValueError(f"methods {absent} not among the methods {list(present)}")
    family = cells if family is None else _as_list(family)
    unknown = [c for c in family if c not in [*cells, "method"]]
    if unknown:
        raise ValueError(f"family columns {unknown} must be among the cell columns {cells} or 'method'")

    in_cell = {_key(k): v for k, v in runs.groupby(cells, sort=False)["method"].agg(set).items()}
    wide = runs.dropna(subset=[value]).set_index([*cells, *units, "method"])[value].unstack("method")
    wide = wide.reindex(columns=[reference, *methods])      # all-NaN column for a method without valid runs
    rows = []
    for key, block in wide.groupby(level=list(range(len(cells))), sort=False):
        ref = block[reference]
        for method in methods:
            if not explicit and method not in in_cell[_key(key)]:
                continue                                     # methods=None: only the cell's own methods
            other = block[method]
            both = ref.notna() & other.notna()
            d = (other[both] - ref[both]).to_numpy(dtype=float)
            if interval == "t":
                low, high = t_interval(d, confidence)
            else:
                low, high = bootstrap_interval(d, confidence, n_resamples=n_resamples, seed=seed)
            rows.append({**dict(zip(cells, _key(key))), "method": method, "reference": reference,
                         "n": int(both.sum()),
                         "n_only_reference": int((ref.notna() & other.isna()).sum()),
                         "n_only_method": int((other.notna() & ref.isna()).sum()),
                         "mean_reference": ref[both].mean() if both.any() else np.nan,
                         "mean_method": other[both].mean() if both.any() else np.nan,
                         "mean_diff": d.mean() if d.size else np.nan,
                         "low": low, "high": high, "half_width": (high - low) / 2,
                         "p_wilcoxon": wilcoxon_p(d),
                         "verdict": verdict(low, high, direction)})
    columns = [*cells, "method", "reference", "n", "n_only_reference", "n_only_method", "mean_reference",
               "mean_method", "mean_diff", "low", "high", "half_width", "p_wilcoxon", "p_holm", "verdict"]
    table = pd.DataFrame(rows, columns=columns)
    if family:
        table["p_holm"] = table.groupby(family, sort=False)["p_wilcoxon"].transform(lambda p: holm(p.to_numpy()))
    else:
        table["p_holm"] = holm(table["p_wilcoxon"].to_numpy())
    table[["n", "n_only_reference", "n_only_method"]] = table[["n", "n_only_reference", "n_only_method"]].astype(int)
    return table


def power_half_width(table: pd.DataFrame, by: str | Sequence[str] | None = None) -> pd.Series | pd.DataFrame:
    """Resolution of a profile: the median and max half-width of its paired intervals.

    A difference smaller than about the half-width cannot be resolved (its interval would
    cover zero), so the median half-width is the typical smallest resolvable difference and
    the max the worst case, in the value's units.  Returns a Series (median_half_width,
    max_half_width, n_comparisons, n_undefined) or, with ``by``, one row per group.
    NaN half-widths (fewer than 2 units) are counted in n_undefined, not in the statistics."""
    def summary(half: pd.Series) -> pd.Series:
        return pd.Series({"median_half_width": half.median(), "max_half_width": half.max(),
                          "n_comparisons": int(half.notna().sum()), "n_undefined": int(half.isna().sum())})
    if by is None:
        return summary(table["half_width"])
    return table.groupby(_as_list(by), sort=False)["half_width"].apply(summary).unstack()
