"""The text of results/REPORT.md around the claims table: how to read it, the calibration, the
power of the profile, the Ensemble-rule table, and other runs as sensitivity columns."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mcrlib.analysis.inference import VERDICT4_RULE, VERDICTS4, adjust_primary, compare
from mcrlib.config import check, from_dict

BEST_RULE = ("A claim that one method is the best of several (\"MCR highest\", \"greedy best\", \"permutation best\") "
             "is checked against every rival (an intersection-union test): it HOLDS when it holds against each, is "
             "CONTRADICTED when any rival is significantly better, is EQUIVALENT when every interval lies inside ±Δ, and "
             "is INCONCLUSIVE otherwise. The row shows a contradicting rival if there is one, else the closest rival.")

DESIGN_TEXT = (
    "Differences are in accuracy points (method − reference), paired over units: a seed on the synthetic data (each "
    "seed redraws the data), a (fold, seed) unit on AV-Digits (leave-one-speaker-out folds). *design* says which "
    "interval a row uses: `folds fixed, seeds within` (seeds crossed with folds: the estimand is the mean over these "
    "folds, the error the run-to-run variation within a fold; it speaks for AV-Digits as built) or `units` (a t over "
    "the units; on AV-Digits with one seed per fold the folds are the units, so it speaks for new speakers like these "
    "six and carries the between-speaker variance). Where seeds are crossed with folds, the *speaker-level interval* "
    "(a t over the fold means) is printed beside it. *detectable* is the smallest true difference the design detects "
    "with 80% power at the 5% level.")

PRIMARY_TEXT = (
    "The claims marked `primary (Holm)` were declared primary before the runs that decide them (params.yaml, "
    "`report.primary`; docs/preregistration.md) and are adjusted together: Holm's step-down on their two-sided t "
    "p-values (p_holm). A primary claim holds or is contradicted only where p_holm < 0.05. A best-of claim's p is the "
    "largest over its rivals, as declared: the p of it holding, so in the primary family it can hold but never be "
    "contradicted; where a rival is significantly better its interval says so (docs/preregistration.md, status of "
    "round 6). Every other row is exploratory: unadjusted, to be read as a lead, not a finding.")



@dataclass(frozen=True)
class ReportConfig:
    """The `report` section (params.yaml), validated in one place (mcrlib.config.from_dict): an
    unknown key or a value of the wrong kind is a ConfigError naming its key."""
    profile: str = "smoke"
    n_classes: dict = field(default_factory=dict)          # a data label -> its number of classes (chance)
    other_runs: dict | None = None                          # a label -> another full run's claims.csv
    equivalence_margin: dict = field(default_factory=dict)  # a label fragment -> the margin (a fraction)
    counts_before: str = ""                                  # the verdict counts before these rules
    primary: tuple[str, ...] = ()                            # the primary claims, Holm-adjusted together

    def __post_init__(self):
        for label, margin in self.equivalence_margin.items():
            check(isinstance(margin, (int, float)) and 0 < margin < 1, f"report.equivalence_margin.{label}",
                  margin, "a margin in (0, 1) (a fraction: 0.02 is 2 points)")
        for label, n in self.n_classes.items():
            check(n is None or (isinstance(n, int) and n >= 2), f"report.n_classes.{label}", n,
                  "a number of classes >= 2 (or null to drop the label)")


def load_report_config(section: dict | None) -> ReportConfig:
    return from_dict(ReportConfig, {k: v for k, v in (section or {}).items()}, "report")

def load_optional(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path) if path.is_file() else None


def finalise(claims: pd.DataFrame, primary: list[str]) -> tuple[pd.DataFrame, list[str]]:
    """(the claims with the declared primary ones marked and Holm-adjusted together, the declared
    primary ids that have no result in this run: a profile run on part of its data, or a typo,
    which the report prints so that it is seen)."""
    if not len(claims):       # no section has results yet (e.g. the report alone on a fresh profile)
        return pd.DataFrame(columns=["id", "claim", "data", "verdict", "primary", "p_holm", "family"]), list(primary)
    claims = claims.copy()
    claims["primary"] = claims["id"].isin(primary)
    return adjust_primary(claims), [p for p in primary if p not in set(claims["id"])]


def power(families: pd.DataFrame) -> pd.DataFrame:
    """Per section: the median and max half-width of its intervals and the median smallest
    difference detectable with 80% power, in points."""
    table = families.groupby("section").agg(median=("half_width", "median"), max=("half_width", "max"),
                                            detectable=("detectable", "median"), count=("half_width", "count"))
    table[["median", "max", "detectable"]] *= 100
    return table.rename(columns={"median": "median half-width", "max": "max half-width",
                                 "detectable": "median detectable (80% power)"}).round(1)


def verdict_counts(claims: pd.DataFrame) -> pd.DataFrame:
    """How many claims get each verdict, primary and exploratory."""
    if not len(claims):
        return pd.DataFrame(columns=list(VERDICTS4))
    tested = claims[claims["verdict"].isin(VERDICTS4)]
    counts = tested.groupby(["family", "verdict"]).size().unstack(fill_value=0)
    return counts.reindex(columns=list(VERDICTS4), fill_value=0)


def with_other_runs(claims: pd.DataFrame, others: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Other full runs of the profile (another machine, other kernels) as sensitivity columns: their
    verdicts are shown beside this run's and decide nothing. They are not replicates (their code or
    recipe may differ; each folder's README says how), so they are not pooled into the units."""
    out = claims.copy()
    for name, other in others.items():
        verdicts = other.drop_duplicates(["claim", "data"]).set_index(["claim", "data"])["verdict"]
        out[f"sensitivity: {name}"] = [verdicts.get((c, d), "—") for c, d in zip(out["claim"], out["data"])]
    return out


SHOWN = ["claim", "source", "data", "paper", "ours (points)", "95% interval", "verdict", "family", "p_holm",
         "detectable (points)", "design", "speaker-level interval"]


def claims_markdown(claims: pd.DataFrame) -> str:
    columns = [c for c in SHOWN if c in claims] + [c for c in claims if c.startswith("sensitivity: ")]
    shown = claims[columns].copy()
    if "p_holm" in shown:
        shown["p_holm"] = [("—" if pd.isna(p) else f"{p:.3f}") for p in shown["p_holm"]]
    return shown.to_markdown(index=False)


def rules_markdown(rules: pd.DataFrame) -> str:
    """The Ensemble-rule table: every comparison with the Ensemble under each rule."""
    if rules is None or not len(rules):
        return "No comparison with the Ensemble in this profile."
    shown = rules.assign(**{"Ensemble (%)": (100 * rules["ensemble"]).round(1),
                            "method − Ensemble": [f"{100 * d:+.1f}" for d in rules["mean_diff"]],
                            "95% interval": [f"[{100 * lo:+.1f}, {100 * hi:+.1f}]" for lo, hi in
                                             zip(rules["low"], rules["high"])],
                            "rule": [r + (" (declared)" if d else "") for r, d in zip(rules["rule"], rules["declared"])]})
    cell = rules.columns[0]
    return shown[[cell, "method", "rule", "Ensemble (%)", "method − Ensemble", "95% interval", "verdict"]].to_markdown(index=False)


def render(*, header: str, claims: pd.DataFrame, power_table: pd.DataFrame, calibration: str,
           rules: pd.DataFrame | None, counts_before: str = "", missing_primary: list[str] = (),
           against_authors: str = "") -> str:
    missing = (f"Declared primary but without a result in this run: {', '.join(missing_primary)}." if missing_primary
               else "")
    lines = [header, "", "## How to read the verdicts", "", VERDICT4_RULE, "", BEST_RULE, "", PRIMARY_TEXT, missing, "",
             DESIGN_TEXT, "", "Other runs of this profile (another machine's kernels, older code) appear as "
             "*sensitivity* columns: they show how stable a verdict is and decide nothing.", "",
             "## Verdict counts", "", verdict_counts(claims).to_markdown(), "", counts_before,
             "## Benchmark calibration", "", calibration, "",
             "## Power of this profile", "",
             "Half-width of the paired 95% intervals and the smallest difference detectable with 80% power (points): a "
             "true difference smaller than these cannot be resolved, so an *inconclusive* verdict says only that the "
             "difference, if any, is below about that size.", "", power_table.to_markdown(), "",
             "## The Ensemble's rule", "",
             "The authors combine their unimodal models by different rules: standardised logits on the real "
             "benchmarks (the release's `norm_decision: \"standardization\"`), the raw logit sum on their synthetic "
             "data (kkontras/Synergy `configs/SyntheticFCL/ens.json`, `norm_decision: false`). Each study uses the "
             "authors' rule for its data (declared); every comparison with the Ensemble is shown under each rule, so "
             "a verdict that is the rule's shows here.", "", rules_markdown(rules), "",
             "## Claims", "", claims_markdown(claims), "",
             "## Against the authors' plot values (Figure 4)", "",
             "Each method's test accuracy here (mean over the units, 95% t interval of the mean) beside the value the "
             "authors' plotting script holds for it, and the difference: a check of a user's run against theirs, fold "
             "by fold on the same release folds of CREMA-D.", "", against_authors, ""]
    return "\n".join(lines)


def _chosen_numbers(results: Path, name: str) -> str:
    """The chosen setting's numbers, in words (accuracies in %, differences in points)."""
    path = results / "calibrate" / f"calibration_{name}.csv"
    if not path.is_file():
        return ""
    table = pd.read_csv(path)
    row = table[table["chosen"]].iloc[0]
    pct = lambda c: f"{100 * row[c]:.1f}"
    if "joint - ensemble" in row:
        alone = ", ".join(f"{c} {pct(c)}" for c in table.columns if c.endswith(" alone"))
        return (f"Its numbers: {alone}, Ensemble {pct('ensemble')}, joint {pct('joint')}; joint − Ensemble "
                f"{100 * row['joint - ensemble']:+.1f} [{100 * row['low']:+.1f}, {100 * row['high']:+.1f}] over {row['units']} units.")
    ends = [c.split(" @ ")[1] for c in table.columns if c.startswith("joint @ ")]
    accs = "; ".join(f"u1/s = {e}: " + ", ".join(f"{m} {pct(f'{m} @ {e}')}" for m in
                     [c.split(" @ ")[0] for c in table.columns if c.endswith(f" @ {e}")]) for e in ends)
    if "probe - unimodal" not in row:   # a table of the earlier criterion (joint falling faster)
        return (f"Its numbers: {accs}. Joint drop − Ensemble drop {100 * row['joint drop - ensemble drop']:+.1f} "
                f"[{100 * row['low']:+.1f}, {100 * row['high']:+.1f}] over {row['units']} seeds (negative: joint falls more slowly).")
    weak = row["probed modality"]
    return (f"Its numbers: {accs}. The {weak} encoder's probe inside joint training − the {weak} unimodal model, at the "
            f"highest u1/s: {100 * row['probe - unimodal']:+.1f} [{100 * row['low']:+.1f}, {100 * row['high']:+.1f}] "
            f"over {row['units']} seeds (negative: suppressed). Shown only: joint drop − Ensemble drop "
            f"{100 * row['joint drop - ensemble drop']:+.1f} [{100 * row['drop low']:+.1f}, {100 * row['drop high']:+.1f}].")


def _seeds_text(seeds: dict) -> str:
    if not seeds:
        return ("The settings were judged on the studies' own seeds (no selection seeds), so the chosen setting's "
                "numbers are not a fresh confirmation of the premise.")
    return ("The settings were judged on selection seeds (" + "; ".join(f"{k}: {v[0]}–{v[-1]}" for k, v in seeds.items())
            + ") apart from the studies' seeds; the benchmarks and synthetic sections then run the chosen setting on "
            "fresh seeds, which confirm or not (below, and the premise in the claims).")


def _confirmation(results: Path) -> str:
    """The premise's numbers on the benchmark seeds (fresh against the selection seeds)."""
    path = results / "benchmarks" / "runs.csv"
    if not path.is_file():
        return ""
    runs = pd.read_csv(path)
    out = []
    for dataset, part in runs.groupby("dataset", sort=False):
        units = ["fold", "seed"] if "fold" in part else ["seed"]
        gap = compare(part, method="joint", reference="ensemble", units=units, block="fold")
        means = part.groupby("method")["test_acc"].mean()
        alone = ", ".join(f"{m.removeprefix('unimodal-')} alone {100 * means[m]:.1f}" for m in means.index
                          if m.startswith("unimodal-"))
        out.append(f"- **confirmation, {dataset}** (benchmark seeds): {alone}, Ensemble {100 * means['ensemble']:.1f}, "
                   f"joint {100 * means['joint']:.1f}; joint − Ensemble {100 * gap['mean_diff']:+.1f} "
                   f"[{100 * gap['low']:+.1f}, {100 * gap['high']:+.1f}] over {gap['n']} units ({gap['design']}).")
    return "\n".join(out)


def calibration_text(results: Path) -> str:
    chosen_path = results / "calibrate" / "chosen.json"
    if not chosen_path.is_file():
        return "No calibration was run."
    chosen = json.loads(chosen_path.read_text())
    c = chosen.get("criterion", {})
    parts = [f"Criterion, fixed before any run and judged from unimodal, Ensemble and joint runs only: (a) each unimodal "
             f"accuracy in [{c.get('unimodal_min')}, {c.get('unimodal_max')}]; (b) the Ensemble at least "
             f"{100 * c.get('ensemble_gain_min', 0):.0f} points above the best unimodal model; (c) joint training at "
             f"least {100 * c.get('joint_gap_min', 0):.0f} points below the Ensemble with the paired 95% interval "
             f"excluding zero. Synthetic generator: both unimodal models at least {c.get('synthetic_unimodal_min')} at "
             f"both ends, and " + (
                 f"{c.get('probe_modality', 'x2')} suppressed inside joint training at the highest u1/s (a linear probe "
                 f"of its encoder at least {100 * c['probe_gap_min']:.0f} points below its unimodal model, the paired "
                 f"95% interval excluding zero)" if "probe_gap_min" in c else
                 "joint training falling faster than the Ensemble (paired interval above zero)") +
             ". The first declared setting meeting every criterion is chosen. "
             f"{_seeds_text(chosen.get('selection_seeds', {}))}", ""]
    for name, v in chosen.items():
        if name in ("criterion", "selection_seeds"):
            continue
        met = "meets the criterion" if v["meets_criterion"] else "**no declared setting met the criterion; the closest is kept**"
        parts.append(f"- **{name}**: chosen {v['params']}; {met} "
                     f"([table](calibrate/calibration_{name}.md)). {_chosen_numbers(results, name)}")
    confirmation = _confirmation(results)
    return "\n".join(parts + ([confirmation] if confirmation else []))
