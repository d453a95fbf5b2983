"""The claims report (results/REPORT.md): one row per claim of the paper, with the paper's own
number where it gives one, our paired difference, its 95% interval and the verdict.

Everything here reads the sections' committed result files (runs.csv and friends); nothing
trains. Every comparison is paired over units (a seed, or a fold with its seed) through
`mcrlib.analysis.paired`, whose verdict rule is printed in the report before any number.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from mcrlib.analysis.paired import COMBINE_RULE, VERDICT_RULE, paired_differences, t_interval, verdict

# The paper's Table 1 (accuracy %), for the datasets this machine does not have.
PAPER_TABLE1 = {
    "MOSEI V-T": {"Ensemble": 77.4, "Joint": 80.5, "MCR": 81.2},
    "MOSEI V-A-T": {"Ensemble": 76.6, "Joint": 81.2, "MCR": 81.6},
    "MOSI V-T": {"Ensemble": 69.8, "Joint": 74.7, "MCR": 76.1},
    "MOSI V-A-T": {"Ensemble": 43.3, "Joint": 73.9, "MCR": 77.9},
    "Sth-Sth V-OF": {"Ensemble": 64.8, "Joint": 56.3, "MCR": 65.0},
}
EARLIER = ["joint", "multiloss", "ogm", "agm", "mlb", "mslr", "pmr", "mmcosine", "arm", "unipre_frozen", "unipre_finetuned"]
COST_THRESHOLD = 1.25   # "almost free": at most 25% more time per step than joint training


def _pct(x: float) -> str:
    return "—" if pd.isna(x) else f"{100 * x:+.1f}"


def _interval(row) -> str:
    return "—" if pd.isna(row["low"]) else f"[{100 * row['low']:+.1f}, {100 * row['high']:+.1f}]"


def claim_row(claim: str, source: str, data: str, paper: str, ours: str, interval: str, verdict_: str) -> dict:
    return {"claim": claim, "source": source, "data": data, "paper": paper, "ours (points)": ours,
            "95% interval": interval, "verdict": verdict_}


def _all_vs(table: pd.DataFrame) -> tuple[str, str, str]:
    """(the difference shown, its interval, the verdict) of a "best of several" family: the verdict
    by BEST_RULE; shown is a rival that contradicts the claim if one does, else the closest rival."""
    table = table.reset_index(drop=True)
    if not table["mean_diff"].notna().any():
        return "—", "—", "inconclusive"
    against = table[table["verdict"] == "contradicted"]
    shown = (against if len(against) else table)
    worst = shown.loc[shown["mean_diff"].idxmin()]
    rival = str(worst["reference"]).split("/")[-1]
    return f"{_pct(worst['mean_diff'])} (vs {rival})", _interval(worst), best_verdict(table["verdict"])


BEST_RULE = ("A claim that one method is the best of several (\"MCR highest\", \"greedy best\", \"permutation best\") "
             "is checked against every rival: it HOLDS when it holds against each, is CONTRADICTED when any rival is "
             "significantly better, and is INCONCLUSIVE otherwise. The row shows the closest rival.")


def best_verdict(verdicts) -> str:
    verdicts = list(verdicts)
    if any(v == "contradicted" for v in verdicts):
        return "contradicted"
    return "holds" if verdicts and all(v == "holds" for v in verdicts) else "inconclusive"


# --------------------------------------------------------------------------- Figure 1
def synthetic_claims(runs: pd.DataFrame) -> tuple[list[dict], pd.DataFrame]:
    runs = runs[~runs["method"].str.startswith("unimodal")]
    hi, lo = runs["ratio"].max(), runs["ratio"].min()
    others = [m for m in runs["method"].unique() if m != "mcr"]
    at_hi = runs[runs["ratio"] == hi].assign(cell=f"u1/s={hi:g}")
    # MCR highest: MCR - m > 0 for every other m (references are the others, MCR the "method")
    rows = [paired_differences(at_hi, reference=m, methods=["mcr"], cell="cell", units=("seed",)) for m in others]
    highest = pd.concat(rows, ignore_index=True)
    drop = runs.pivot_table(index=["seed", "method"], columns="ratio", values="test_acc")
    drop = (drop[lo] - drop[hi]).rename("drop").reset_index().assign(cell=f"{lo:g}->{hi:g}")
    # MCR declines slowest: drop(MCR) - drop(m) < 0 for every m
    slowest = pd.concat([paired_differences(drop, reference=m, methods=["mcr"], value="drop", cell="cell",
                                            units=("seed",), direction=-1) for m in others], ignore_index=True)
    ours, interval, v = _all_vs(highest)
    out = [claim_row("MCR is the most accurate method at the most imbalanced ratio", "Figure 1", f"synthetic, u1/s = {hi:g}",
                     "MCR highest", f"MCR − best rival: {ours}", interval, v)]
    slowest = slowest.reset_index(drop=True)
    worst = slowest.loc[slowest["mean_diff"].idxmax()]
    out.append(claim_row(f"MCR's accuracy declines slowest as u1/s grows ({lo:g} → {hi:g})", "Figure 1", "synthetic",
                         "MCR slowest, joint fastest", f"drop(MCR) − drop({worst['reference']}): {_pct(worst['mean_diff'])}",
                         _interval(worst), best_verdict(slowest["verdict"])))
    return out, pd.concat([highest.assign(family="MCR highest"), slowest.assign(family="MCR slowest decline")])


# --------------------------------------------------------------------------- Figure 4 / Table 1
def benchmark_claims(runs: pd.DataFrame) -> tuple[list[dict], pd.DataFrame]:
    runs = runs[~runs["method"].str.startswith("unimodal")]
    vs_ens = paired_differences(runs, reference="ensemble", units=("seed",))
    vs_joint = paired_differences(runs[runs["method"] != "ensemble"], reference="joint", units=("seed",))
    out = []
    for dataset, part in vs_ens.groupby("dataset"):
        mcr = part[part["method"] == "mcr"].iloc[0]
        out.append(claim_row("MCR is above the Ensemble", "Figure 4", dataset, "MCR above Ensemble on every dataset",
                             _pct(mcr["mean_diff"]), _interval(mcr), mcr["verdict"]))
        earlier = part[part["method"].isin(EARLIER)].copy()
        earlier["below"] = [verdict(l, h, -1) for l, h in zip(earlier["low"], earlier["high"])]
        n_below, n_above = (earlier["below"] == "holds").sum(), (earlier["below"] == "contradicted").sum()
        v = "holds" if n_below > len(earlier) / 2 else "contradicted" if n_above > len(earlier) / 2 else "inconclusive"
        out.append(claim_row("Most earlier methods are below the Ensemble", "Figure 4", dataset,
                             "most below", f"{n_below} of {len(earlier)} significantly below, {n_above} above",
                             "per method in the family table", v))
        joint = part[part["method"] == "joint"].iloc[0]
        out.append(claim_row("Joint training is below the Ensemble (the premise)", "Figure 4, A.1", dataset,
                             "joint below Ensemble on CREMA-D, AVE, UCF", _pct(joint["mean_diff"]), _interval(joint),
                             verdict(joint["low"], joint["high"], -1)))
    for dataset, part in vs_joint.groupby("dataset"):
        mcr = part[part["method"] == "mcr"].iloc[0]
        out.append(claim_row("MCR is above joint training", "Figure 4, Table 1", dataset, "MCR above joint everywhere",
                             _pct(mcr["mean_diff"]), _interval(mcr), mcr["verdict"]))
    for data, numbers in PAPER_TABLE1.items():
        out.append(claim_row("MCR is above the Ensemble and joint training", "Table 1", data,
                             f"MCR {numbers['MCR']}, Ensemble {numbers['Ensemble']}, joint {numbers['Joint']}",
                             "—", "—", "paper only, data not available here"))
    families = pd.concat([vs_ens.assign(family="vs Ensemble"), vs_joint.assign(family="vs joint training")])
    return out, families


# --------------------------------------------------------------------------- Tables 2-4
def ablation_claims(runs: pd.DataFrame) -> tuple[list[dict], pd.DataFrame]:
    runs = runs.assign(method=runs["table"] + "/" + runs["variant"])
    out, families = [], []

    def family(name, base, others, direction=+1):
        rows = [paired_differences(runs, reference=o, methods=[base], units=("seed",), direction=direction)
                for o in others if o in set(runs["method"])]
        return pd.concat(rows, ignore_index=True).assign(family=name) if rows else pd.DataFrame()

    greedy = family("greedy best", "table2_strategy/greedy", ["table2_strategy/collaborative", "table2_strategy/independent"])
    combo = family("L_MIPD + L_con above either", "table3_components/L_MIPD+L_con",
                   ["table3_components/L_MIPD", "table3_components/L_con"])
    permute = family("permutation best", "table4_perturbation/permute",
                     [f"table4_perturbation/{v}" for v in ("noise_input", "zero_input", "noise_latent", "zero_latent")])
    noise_rows = [paired_differences(runs, reference=f"table4_perturbation/{v}", methods=["table4_perturbation/noise_latent"],
                                     units=("seed",), direction=-1) for v in ("zero_input", "zero_latent", "permute")]
    noise = pd.concat(noise_rows, ignore_index=True).assign(family="noise worst")
    ceb = paired_differences(runs, reference="table3_components/L_MIPD+L_con",
                             methods=["table3_components/L_MIPD+L_con+L_CEB"], units=("seed",))
    for dataset in runs["dataset"].unique():
        for name, table, paper in (("Greedy is the best game strategy", greedy, "greedy best on both backbones"),
                                   ("L_MIPD + L_con beats either alone", combo, "both terms needed"),
                                   ("Permutation is the best perturbation", permute, "permutation best"),
                                   ("Latent noise is the worst perturbation", noise, "noise worst")):
            part = table[table["dataset"] == dataset].reset_index(drop=True)
            ours, interval, v = _all_vs(part) if name != "Latent noise is the worst perturbation" else (
                f"{_pct(part['mean_diff'].max())} (noise − best other)", _interval(part.loc[part["mean_diff"].idxmax()]),
                best_verdict(part["verdict"]))
            out.append(claim_row(name, {"Greedy": "Table 2", "L_MIPD": "Table 3"}.get(name.split()[0], "Table 4"),
                                 dataset, paper, ours, interval, v))
        c = ceb[ceb["dataset"] == dataset].iloc[0]
        # The paper: L_CEB helps only pretrained encoders. Testable here: it does not help these.
        out.append(claim_row("L_CEB helps only pretrained encoders (not these)", "Table 3", dataset,
                             "helps Conformer, not ResNet", _pct(c["mean_diff"]), _interval(c),
                             "contradicted" if c["low"] > 0 else "holds" if c["high"] < 0 else "inconclusive (no gain shown)"))
    families = pd.concat([greedy, combo, permute, noise, ceb.assign(family="L_CEB added")])
    return out, families


def cost_claims(cost: pd.DataFrame) -> list[dict]:
    """From the A.6 table (cost.csv: one row per variant, `<model>: time ...` columns of ratios to joint)."""
    cost = cost.set_index(cost.columns[0])
    out = []
    permute = [v for v in cost.index if "permut" in str(v) or "permute" in str(v)]
    for column in [c for c in cost.columns if c.endswith("time / joint")]:
        if not permute:
            break
        ratio = float(cost.loc[permute[0], column])
        out.append(claim_row("Latent permutation makes MCR almost free", "A.6", f"{column.split(':')[0]} (time / joint step)",
                             "almost free", f"{ratio:.2f}×", f"threshold {COST_THRESHOLD}× (one machine, medians)",
                             "holds" if ratio <= COST_THRESHOLD else "contradicted"))
    return out


# --------------------------------------------------------------------------- ConFu, three modalities
def fused_term_claims(runs: pd.DataFrame) -> tuple[list[dict], pd.DataFrame]:
    """The three-modality XOR case (results/synthetic/three_modal_runs.csv): ConFu's fused term
    (MCR + fused, "mcr_fused") against MCR's pairwise L_con, on all test samples and on those
    where only the pair (x1, x2) carries the label."""
    if not {"mcr", "mcr_fused"} <= set(runs["method"]):
        return [], pd.DataFrame()
    runs = runs.assign(dataset="synthetic XOR, 3 modalities")
    out, families = [], []
    for value, where in (("test_acc", "all test samples"), ("acc_x3-silent", "x3-silent samples")):
        diff = paired_differences(runs, reference="mcr", methods=["mcr_fused"], value=value, units=("seed",))
        row = diff.iloc[0]
        out.append(claim_row("Aligning each fused pair with the third modality helps where the label needs two "
                             "modalities together", "ConFu (arXiv 2511.21331), not the MCR paper",
                             f"synthetic XOR, {where}", "fused above pairwise",
                             f"MCR + fused − MCR: {_pct(row['mean_diff'])}", _interval(row), row["verdict"]))
        families.append(diff.assign(family=f"fused term, {where}"))
    return out, pd.concat(families, ignore_index=True)


# --------------------------------------------------------------------------- Figure 5
def error_claims(errors: pd.DataFrame) -> list[dict]:
    out = []
    errors = errors.assign(one=errors["group"].isin(["only modality 1", "only modality 2"]))
    for cell, part in errors.groupby("cell"):
        one = part[part["one"]].groupby(["seed", "method"]).apply(
            lambda g: np.average(g["acc"], weights=g["n"]) if g["n"].sum() else np.nan, include_groups=False)
        one = one.rename("test_acc").reset_index().assign(dataset=cell)
        if "mcr" not in set(one["method"]):
            continue
        others = [m for m in one["method"].unique() if m != "mcr" and not m.startswith("unimodal")]
        fam = pd.concat([paired_differences(one, reference=m, methods=["mcr"], units=("seed",)) for m in others])
        ours, interval, v = _all_vs(fam)
        out.append(claim_row("MCR is best where exactly one unimodal model is right", "Figure 5", cell,
                             "MCR best", f"MCR − best rival: {ours}", interval, v))
        both = part[part["group"] == "both wrong"].rename(columns={"acc": "test_acc"}).assign(dataset=cell)
        for m in ("agm", "mlb"):
            if m in set(both["method"]):
                rivals = [o for o in both["method"].unique() if o not in ("agm", "mlb") and not o.startswith("unimodal")]
                fam = pd.concat([paired_differences(both, reference=o, methods=[m], units=("seed",)) for o in rivals])
                ours, interval, v = _all_vs(fam)
                out.append(claim_row(f"{m.upper()} is among the best where both unimodal models are wrong", "Figure 5",
                                     cell, "AGM and MLB best", f"{m.upper()} − best rival: {ours}", interval, v))
    return out


# --------------------------------------------------------------------------- A.1
def probe_claims(curves: pd.DataFrame, n_classes: dict[str, int], near: float = 0.10) -> list[dict]:
    """In joint training, the weaker encoder's probe (last epoch) stays within `near` of chance."""
    out = []
    probes = [c for c in curves.columns if c.startswith("probe ") and c != "probe gap"]
    last = curves[curves["method"] == "joint"].sort_values("epoch").groupby(["dataset", "seed"]).tail(1)
    for dataset, part in last.groupby("dataset"):
        cols = [c for c in probes if part[c].notna().all()]
        weakest = min(cols, key=lambda c: part[c].mean())
        chance = 1 / n_classes.get(dataset, 10)
        excess = (part[weakest] - chance).to_numpy()
        low, high = t_interval(excess)
        v = "holds" if high < near else "contradicted" if low > near else "inconclusive"
        out.append(claim_row(f"In joint training one encoder's probe stays near chance (within {100 * near:.0f} points)",
                             "A.1, Figure 6", dataset, "near chance", f"{weakest} − chance: {_pct(excess.mean())}",
                             "—" if pd.isna(low) else f"[{100 * low:+.1f}, {100 * high:+.1f}]", v))
    return out


def power(families: pd.DataFrame) -> pd.DataFrame:
    """The smallest difference each section can resolve: the median half-width of its intervals."""
    return (families.groupby("section")["half_width"].agg(["median", "max", "count"]) * [100, 100, 1]).round(1)


def render(claims: pd.DataFrame, power_table: pd.DataFrame, calibration: dict, header: str) -> str:
    lines = [header, "", "## How to read the verdicts", "", VERDICT_RULE, "", BEST_RULE, "", COMBINE_RULE, "",
             "Differences are in accuracy points (method − reference), paired over units: a seed on the synthetic data, "
             "a (fold, seed) unit on AV-Digits (leave-one-speaker-out, one seed per fold). Intervals are 95% t-intervals "
             "of the mean paired difference; Wilcoxon signed-rank p-values with Holm's adjustment per family are in "
             "`results/report/comparisons.csv`.", "",
             "## Benchmark calibration", "", calibration.get("text", ""), "",
             "## Power of this profile", "",
             "Half-width of the paired 95% intervals (points): a true difference smaller than this cannot be resolved.", "",
             power_table.to_markdown(), "", "## Claims", "", claims.to_markdown(index=False), ""]
    return "\n".join(lines)


def load_optional(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path) if path.is_file() else None


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
    return (f"Its numbers: {accs}. Joint drop − Ensemble drop {100 * row['joint drop - ensemble drop']:+.1f} "
            f"[{100 * row['low']:+.1f}, {100 * row['high']:+.1f}] over {row['units']} seeds (negative: joint falls more slowly).")


def calibration_text(results: Path) -> str:
    chosen_path = results / "calibrate" / "chosen.json"
    if not chosen_path.is_file():
        return "No calibration was run."
    chosen = json.loads(chosen_path.read_text())
    c = chosen.get("criterion", {})
    parts = [f"Criterion, fixed before any run and judged from unimodal, Ensemble and joint runs only: (a) each unimodal "
             f"accuracy in [{c.get('unimodal_min')}, {c.get('unimodal_max')}]; (b) the Ensemble at least "
             f"{100 * c.get('ensemble_gain_min', 0):.0f} points above the best unimodal model; (c) joint training below "
             f"the Ensemble with the paired 95% interval excluding zero. Synthetic generator: both unimodal models at "
             f"least {c.get('synthetic_unimodal_min')} at both ends, and joint training falling faster than the Ensemble "
             f"(paired interval above zero). The first declared setting meeting every criterion is chosen.", ""]
    for name, v in chosen.items():
        if name == "criterion":
            continue
        met = "meets the criterion" if v["meets_criterion"] else "**no declared setting met the criterion; the closest is kept**"
        parts.append(f"- **{name}**: chosen {v['params']}; {met} "
                     f"([table](calibrate/calibration_{name}.md)). {_chosen_numbers(results, name)}")
    return "\n".join(parts)


def with_other_runs(claims: pd.DataFrame, others: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The claims of this run beside the verdicts of other full runs of the same profile (another
    machine, other CPU threads: other kernel paths, so other floating-point orders). A verdict that
    changes between runs was inconclusive: the final verdict is the common one, or inconclusive."""
    if not others:
        return claims
    out = claims.copy()
    key = ["claim", "data"]
    finals = out["verdict"].tolist()
    for name, other in others.items():
        verdicts = other.drop_duplicates(key).set_index(key)["verdict"]
        theirs = [verdicts.get((c, d), "—") for c, d in zip(out["claim"], out["data"])]
        out[f"verdict ({name})"] = theirs
        finals = [f if t in ("—", f) else "inconclusive (differs between runs)" for f, t in zip(finals, theirs)]
    out["verdict, all runs"] = finals
    return out
