"""How much a comparison with the Ensemble depends on the Ensemble's rule.

The Ensemble run records its fused accuracy under its declared rule (`test_acc` of its row in a
study's runs.csv) and under every other rule (`acc_fused_<rule>` columns, mcrlib.methods.ensemble).
This table re-pairs every method against the Ensemble under each rule, on the same units, with
the report's inference (mcrlib.analysis.inference), so a reader sees which verdicts are the rule's.
"""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from mcrlib.analysis.inference import compare
from mcrlib.methods.ensemble import RULES

RULE_NAMES = {"standardised_logits": "standardised logits", "logit_sum": "raw logit sum",
              "probabilities": "probability averaging"}


def ensemble_under(runs: pd.DataFrame, rule: str, declared: str) -> pd.DataFrame:
    """`runs` with the Ensemble rows' accuracy replaced by their accuracy under `rule`."""
    out = runs.copy()
    if rule == declared:
        return out
    column = f"acc_fused_{rule}"
    is_ens = out["method"] == "ensemble"
    if column not in out:
        out.loc[is_ens, "test_acc"] = float("nan")
    else:
        out.loc[is_ens, "test_acc"] = out.loc[is_ens, column]
    return out


def rule_table(runs: pd.DataFrame, *, cell: str, declared: str, methods: Sequence[str],
               units: Sequence[str], block: str | None, margin: float, claims: dict[str, int] | None = None,
               rules: Sequence[str] = RULES) -> pd.DataFrame:
    """One row per (cell, method, rule): method − Ensemble under that rule, with the verdict of
    the claim's direction (`claims`: method -> +1 "above the Ensemble" / -1 "below"; default +1).
    The declared rule is marked."""
    rows = []
    claims = claims or {}
    for value, part in runs.groupby(cell, sort=False):
        for rule in rules:
            under = ensemble_under(part, rule, declared)
            ensemble_acc = under.loc[under["method"] == "ensemble", "test_acc"].mean()
            for method in methods:
                row = compare(under, method=method, reference="ensemble", units=units, block=block,
                              direction=claims.get(method, +1), margin=margin)
                rows.append({cell: value, "method": method, "rule": RULE_NAMES.get(rule, rule),
                             "declared": rule == declared, "ensemble": ensemble_acc, **row})
    return pd.DataFrame(rows)


def premise_by_rule(table: pd.DataFrame, cell: str) -> pd.DataFrame:
    """The premise (joint below the Ensemble) under each rule: a compact view of `rule_table`."""
    part = table[table["method"] == "joint"]
    return part[[cell, "rule", "declared", "ensemble", "mean_diff", "low", "high", "verdict"]].reset_index(drop=True)
