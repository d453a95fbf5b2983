"""The claims report (results/REPORT.md): one row per claim of the paper, with the paper's own
number where it gives one, our paired difference, its 95% interval and the verdict.

Everything here reads the sections' committed result files (runs.csv and friends); nothing
trains. Every comparison is paired over units through `mcrlib.analysis.inference`: four verdicts
(holds, contradicted, equivalent, inconclusive) with the equivalence margin declared per dataset,
the design's own interval (AV-Digits: folds fixed, seeds within them, where seeds are crossed with
folds), the smallest difference it detects, and a t p-value for the declared primary family
(Holm; `inference.adjust_primary`). The text around the table is `mcrlib.analysis.report_text`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from mcrlib.analysis.authors_values import difference_text
from mcrlib.analysis.inference import CONTRADICTED, EQUIVALENT, HOLDS, INCONCLUSIVE, best_of, paired, verdict4
from mcrlib.analysis.paired import t_interval
from mcrlib.methods import METHODS
from mcrlib.methods.base import in_table_order

# The paper's Table 1 (accuracy %), for the datasets this machine does not have.
PAPER_TABLE1 = {
    "MOSEI V-T": {"Ensemble": 77.4, "Joint": 80.5, "MCR": 81.2},
    "MOSEI V-A-T": {"Ensemble": 76.6, "Joint": 81.2, "MCR": 81.6},
    "MOSI V-T": {"Ensemble": 69.8, "Joint": 74.7, "MCR": 76.1},
    "MOSI V-A-T": {"Ensemble": 43.3, "Joint": 73.9, "MCR": 77.9},
    "Sth-Sth V-OF": {"Ensemble": 64.8, "Joint": 56.3, "MCR": 65.0},
}
COST_THRESHOLD = 1.25   # "almost free": at most 25% more time per step than joint training


def earlier_methods() -> list[str]:
    """The methods the claims count as earlier methods (each class's `earlier_method`), in table
    order: read from the registry, so a newly registered method is counted without a list to edit."""
    return in_table_order(name for name in METHODS if METHODS[name].earlier_method)


def margin_for(data: str, margins: dict[str, float]) -> float:
    """The equivalence margin (a fraction) of a claim's data label: the first declared key that the
    label contains (e.g. "AV-Digits", "synthetic", "u1/s"); NaN where none is declared."""
    return next((float(m) for key, m in margins.items() if key in data), np.nan)


def _pct(x: float) -> str:
    return "—" if pd.isna(x) else f"{100 * x:+.1f}"


def _interval(row) -> str:
    return "—" if pd.isna(row.get("low", np.nan)) else f"[{100 * row['low']:+.1f}, {100 * row['high']:+.1f}]"


def claim_row(claim_id: str, claim: str, source: str, data: str, paper: str, ours: str, row: dict | None,
              verdict_: str, margin: float = np.nan) -> dict:
    """One row of the claims table; `row` is the comparison it rests on (interval, p, power)."""
    row = row or {}
    return {"id": f"{claim_id}@{data}", "claim": claim, "source": source, "data": data, "paper": paper,
            "ours (points)": ours, "95% interval": _interval(row) if row else "—", "verdict": verdict_,
            "p_t": row.get("p_t", np.nan), "low": row.get("low", np.nan), "high": row.get("high", np.nan),
            "n": row.get("n", np.nan), "design": row.get("design", "—"),
            "detectable (points)": "—" if pd.isna(row.get("detectable", np.nan)) else f"{100 * row['detectable']:.1f}",
            "speaker-level interval": ("—" if pd.isna(row.get("speaker_low", np.nan)) else
                                       f"[{100 * row['speaker_low']:+.1f}, {100 * row['speaker_high']:+.1f}]"),
            "margin": margin}


def _best(table: pd.DataFrame, direction: int = +1, margin: float = np.nan) -> dict:
    """A "best of several" family (`table`: the comparisons with every rival) as one row."""
    if not len(table):
        return {"verdict": INCONCLUSIVE}
    return best_of(table.to_dict("records"), direction, margin)


def _versus(row: dict) -> str:
    return f"{_pct(row.get('mean_diff', np.nan))} (vs {str(row.get('reference', '—')).split('/')[-1]})"


def _units(runs: pd.DataFrame) -> tuple[tuple[str, ...], str | None]:
    """(units, block): (fold, seed) with folds as blocks where the runs have folds, else seeds."""
    return (("fold", "seed"), "fold") if "fold" in runs.columns else (("seed",), None)


# --------------------------------------------------------------------------- Figure 1
def synthetic_claims(runs: pd.DataFrame, margins: dict) -> tuple[list[dict], pd.DataFrame]:
    runs = runs[~runs["method"].str.startswith("unimodal")]
    hi, lo = runs["ratio"].max(), runs["ratio"].min()
    others = [m for m in runs["method"].unique() if m != "mcr"]
    data = f"synthetic, u1/s = {hi:g}"
    margin = margin_for(data, margins)
    at_hi = runs[runs["ratio"] == hi].assign(cell=data)
    highest = pd.concat([paired(at_hi, reference=m, methods=["mcr"], cell="cell", margin=margin) for m in others],
                        ignore_index=True)
    drop = runs.pivot_table(index=["seed", "method"], columns="ratio", values="test_acc")
    drop = (drop[lo] - drop[hi]).rename("drop").reset_index().assign(cell=f"{lo:g}->{hi:g}")
    # MCR declines slowest: drop(MCR) - drop(m) < 0 for every m
    slowest = pd.concat([paired(drop, reference=m, methods=["mcr"], value="drop", cell="cell", direction=-1,
                                margin=margin) for m in others], ignore_index=True)
    best = _best(highest, +1, margin)
    out = [claim_row("mcr_highest", "MCR is the most accurate method at the most imbalanced ratio", "Figure 1", data,
                     "MCR highest", f"MCR − best rival: {_versus(best)}", best, best["verdict"], margin)]
    slow = _best(slowest, -1, margin)
    out.append(claim_row("mcr_slowest", f"MCR's accuracy declines slowest as u1/s grows ({lo:g} → {hi:g})", "Figure 1",
                         "synthetic", "MCR slowest, joint fastest",
                         f"drop(MCR) − drop({slow.get('reference', '—')}): {_pct(slow.get('mean_diff', np.nan))}",
                         slow, slow["verdict"], margin))
    return out, pd.concat([highest.assign(family="MCR highest"), slowest.assign(family="MCR slowest decline")])


# --------------------------------------------------------------------------- Figure 4 / Table 1
def _with_plot_values(paper: str, dataset: str, method: str, reference: str) -> str:
    """The paper's claim, with the authors' plot values of the two methods where they exist."""
    text = difference_text(dataset, method, reference)
    return f"{paper}; {text}" if text else paper


def benchmark_claims(runs: pd.DataFrame, margins: dict) -> tuple[list[dict], pd.DataFrame]:
    runs = runs[~runs["method"].str.startswith("unimodal")]
    units, block = _units(runs)
    out, families = [], []
    for dataset, part in runs.groupby("dataset", sort=False):
        margin = margin_for(dataset, margins)
        vs_ens = paired(part, reference="ensemble", units=units, block=block, margin=margin)
        below = paired(part, reference="ensemble", units=units, block=block, margin=margin, direction=-1)
        vs_joint = paired(part[part["method"] != "ensemble"], reference="joint", units=units, block=block, margin=margin)
        mcr = vs_ens[vs_ens["method"] == "mcr"].iloc[0].to_dict()
        out.append(claim_row("mcr_vs_ensemble", "MCR is above the Ensemble", "Figure 4", dataset,
                             _with_plot_values("MCR above Ensemble on every dataset", dataset, "mcr", "ensemble"),
                             _pct(mcr["mean_diff"]), mcr, mcr["verdict"], margin))
        earlier = below[below["method"].isin(earlier_methods())]
        n_below, n_above = (earlier["verdict"] == HOLDS).sum(), (earlier["verdict"] == CONTRADICTED).sum()
        n_equiv = (earlier["verdict"] == EQUIVALENT).sum()
        v = HOLDS if n_below > len(earlier) / 2 else CONTRADICTED if n_above + n_equiv > len(earlier) / 2 else INCONCLUSIVE
        out.append(claim_row("earlier_below", "Most earlier methods are below the Ensemble", "Figure 4", dataset,
                             "most below", f"{n_below} of {len(earlier)} significantly below, {n_above} above, "
                             f"{n_equiv} equivalent", None, v, margin))
        joint = below[below["method"] == "joint"].iloc[0].to_dict()
        out.append(claim_row("premise", "Joint training is below the Ensemble (the premise)", "Figure 4, A.1", dataset,
                             _with_plot_values("joint below Ensemble on CREMA-D, AVE, UCF", dataset, "joint", "ensemble"),
                             _pct(joint["mean_diff"]), joint, joint["verdict"], margin))
        mj = vs_joint[vs_joint["method"] == "mcr"].iloc[0].to_dict()
        out.append(claim_row("mcr_vs_joint", "MCR is above joint training", "Figure 4, Table 1", dataset,
                             _with_plot_values("MCR above joint everywhere", dataset, "mcr", "joint"),
                             _pct(mj["mean_diff"]), mj, mj["verdict"], margin))
        families += [vs_ens.assign(family="vs Ensemble"), vs_joint.assign(family="vs joint training")]
    for data, numbers in PAPER_TABLE1.items():
        out.append(claim_row("table1", "MCR is above the Ensemble and joint training", "Table 1", data,
                             f"MCR {numbers['MCR']}, Ensemble {numbers['Ensemble']}, joint {numbers['Joint']}",
                             "—", None, "paper only, data not available here"))
    return out, pd.concat(families, ignore_index=True)


# --------------------------------------------------------------------------- Tables 2-4
def ablation_claims(runs: pd.DataFrame, margins: dict) -> tuple[list[dict], pd.DataFrame]:
    runs = runs.assign(method=runs["table"] + "/" + runs["variant"])
    units, block = _units(runs)
    out, families = [], []
    for dataset, part in runs.groupby("dataset", sort=False):
        margin = margin_for(dataset, margins)
        present = set(part["method"])

        def family(name, base, others, direction=+1):
            rows = [paired(part, reference=o, methods=[base], units=units, block=block, direction=direction,
                           margin=margin) for o in others if o in present]
            return pd.concat(rows, ignore_index=True).assign(family=name) if rows else pd.DataFrame()

        tables = {
            "greedy_best": ("Greedy is the best game strategy", "Table 2", "greedy best on both backbones", +1,
                            family("greedy best", "table2_strategy/greedy",
                                   ["table2_strategy/collaborative", "table2_strategy/independent"])),
            "both_terms": ("L_MIPD + L_con beats either alone", "Table 3", "both terms needed", +1,
                           family("L_MIPD + L_con above either", "table3_components/L_MIPD+L_con",
                                  ["table3_components/L_MIPD", "table3_components/L_con"])),
            "permutation_best": ("Permutation is the best perturbation", "Table 4", "permutation best", +1,
                                 family("permutation best", "table4_perturbation/permute",
                                        [f"table4_perturbation/{v}" for v in
                                         ("noise_input", "zero_input", "noise_latent", "zero_latent")])),
            "noise_worst": ("Latent noise is the worst perturbation", "Table 4", "noise worst", -1,
                            family("noise worst", "table4_perturbation/noise_latent",
                                   [f"table4_perturbation/{v}" for v in ("zero_input", "zero_latent", "permute")], -1)),
        }
        for claim_id, (claim, source, paper, direction, table) in tables.items():
            best = _best(table, direction, margin)
            out.append(claim_row(claim_id, claim, source, dataset, paper, f"{_versus(best)}", best, best["verdict"], margin))
            families.append(table)
        ceb = paired(part, reference="table3_components/L_MIPD+L_con", methods=["table3_components/L_MIPD+L_con+L_CEB"],
                     units=units, block=block, margin=margin)
        if len(ceb):
            c = ceb.iloc[0].to_dict()
            # The paper: L_CEB helps only pretrained encoders. Testable here: it does not help these.
            v = {HOLDS: CONTRADICTED, CONTRADICTED: HOLDS}.get(c["verdict"], c["verdict"])
            out.append(claim_row("ceb_only_pretrained", "L_CEB helps only pretrained encoders (not these)", "Table 3",
                                 dataset, "helps Conformer, not ResNet", _pct(c["mean_diff"]), c, v, margin))
            families.append(ceb.assign(family="L_CEB added"))
    return out, pd.concat(families, ignore_index=True)


def cost_claims(cost: pd.DataFrame) -> list[dict]:
    """From the A.6 table (cost.csv: one row per variant, `<model>: time ...` columns of ratios to joint)."""
    cost = cost.set_index(cost.columns[0])
    out = []
    permute = [v for v in cost.index if "permut" in str(v) or "permute" in str(v)]
    for column in [c for c in cost.columns if c.endswith("time / joint")]:
        if not permute:
            break
        ratio = float(cost.loc[permute[0], column])
        row = claim_row("almost_free", "Latent permutation makes MCR almost free", "A.6",
                        f"{column.split(':')[0]} (time / joint step)", "almost free", f"{ratio:.2f}×", None,
                        HOLDS if ratio <= COST_THRESHOLD else CONTRADICTED)
        row["95% interval"] = f"threshold {COST_THRESHOLD}× (one machine, medians)"
        out.append(row)
    return out


# --------------------------------------------------------------------------- ConFu, three modalities
def fused_term_claims(runs: pd.DataFrame, margins: dict) -> tuple[list[dict], pd.DataFrame]:
    """The three-modality XOR case (results/synthetic/three_modal_runs.csv): ConFu's fused term
    (MCR + fused, "mcr_fused") against MCR's pairwise L_con, on all test samples and on those
    where only the pair (x1, x2) carries the label."""
    if not {"mcr", "mcr_fused"} <= set(runs["method"]):
        return [], pd.DataFrame()
    runs = runs.assign(dataset="synthetic XOR, 3 modalities")
    out, families = [], []
    for value, where in (("test_acc", "all test samples"), ("acc_x3-silent", "x3-silent samples")):
        data = f"synthetic XOR, {where}"
        margin = margin_for(data, margins)
        diff = paired(runs, reference="mcr", methods=["mcr_fused"], value=value, margin=margin)
        row = diff.iloc[0].to_dict()
        out.append(claim_row("fused_term", "Aligning each fused pair with the third modality helps where the label "
                             "needs two modalities together", "ConFu (arXiv 2511.21331), not the MCR paper", data,
                             "fused above pairwise", f"MCR + fused − MCR: {_pct(row['mean_diff'])}", row,
                             row["verdict"], margin))
        families.append(diff.assign(family=f"fused term, {where}"))
    return out, pd.concat(families, ignore_index=True)


# --------------------------------------------------------------------------- ConFu as its own family
CONFU_SOURCE = "ConFu (arXiv 2511.21331), not the MCR paper"
# (claim id, claim, task, metric, data label): ConFu − pairwise (λ = 0) on each method's own
# two-to-one score, from the `confu` stage's runs (mcrlib.confu.experiment)
CONFU_XOR = [
    ("confu_retrieval", "ConFu's fused embedding retrieves what depends on two modalities only jointly, which "
     "pairwise alignment cannot", "x1+x2 (native) → x3", "R@1", "synthetic XOR (ConFu study), (x1, x2) → x3"),
    ("confu_probe", "A linear probe of ConFu's fused embedding reads the joint label (u + v) mod C",
     "x1+x2 (native) → (u + v) mod C", "acc", "synthetic XOR (ConFu study), probe of the pair"),
]
CONFU_AVDIGITS = [
    ("confu_zero_shot", "ConFu's fused (image, audio) embedding classifies zero-shot above pairwise alignment "
     "(AV-MNIST protocol)", "image+audio (native) → caption", "acc@1", "AV-Digits + captions, zero-shot"),
]


def _confu_claims(runs: pd.DataFrame, margins: dict, declared: list) -> tuple[list[dict], pd.DataFrame]:
    if not {"confu", "pairwise"} <= set(runs["method"]):
        return [], pd.DataFrame()
    units, block = (("fold", "seed"), "fold") if runs["fold"].nunique() > 1 else (("seed",), None)
    out, families = [], []
    for claim_id, claim, task, metric, data in declared:
        part = runs[(runs["task"] == task) & (runs["metric"] == metric)].assign(cell=data)
        margin = margin_for(data, margins)
        diff = paired(part, reference="pairwise", value="value", cell="cell", units=units, block=block, margin=margin)
        row = diff[diff["method"] == "confu"].iloc[0].to_dict()
        rivals = ", ".join(f"{m} {_pct(r)}" for m, r in zip(diff["method"], diff["mean_diff"]) if m != "confu")
        out.append(claim_row(claim_id, claim, CONFU_SOURCE, data, "fused above pairwise (ConFu's central claim)",
                             f"ConFu − pairwise: {_pct(row['mean_diff'])}" + (f" ({rivals} vs pairwise)" if rivals else ""),
                             row, row["verdict"], margin))
        families.append(diff.assign(family=f"ConFu family, {data}"))
    return out, pd.concat(families, ignore_index=True)


def confu_xor_claims(runs: pd.DataFrame, margins: dict) -> tuple[list[dict], pd.DataFrame]:
    """ConFu's XOR case (results/confu/xor_runs.csv): each method − pairwise over seeds."""
    return _confu_claims(runs, margins, CONFU_XOR)


def confu_avdigits_claims(runs: pd.DataFrame, margins: dict) -> tuple[list[dict], pd.DataFrame]:
    """ConFu's AV-MNIST protocol on AV-Digits (results/confu/avdigits_runs.csv): over (fold, seed)."""
    return _confu_claims(runs, margins, CONFU_AVDIGITS)


# --------------------------------------------------------------------------- Figure 5
def error_claims(errors: pd.DataFrame, margins: dict) -> list[dict]:
    out = []
    errors = errors.assign(one=errors["group"].isin(["only modality 1", "only modality 2"]))
    for cell, part in errors.groupby("cell"):
        margin = margin_for(str(cell), margins)
        one = part[part["one"]].groupby(["seed", "method"]).apply(
            lambda g: np.average(g["acc"], weights=g["n"]) if g["n"].sum() else np.nan, include_groups=False)
        one = one.rename("test_acc").reset_index().assign(dataset=cell)
        if "mcr" not in set(one["method"]):
            continue
        others = [m for m in one["method"].unique() if m != "mcr" and not m.startswith("unimodal")]
        best = _best(pd.concat([paired(one, reference=m, methods=["mcr"], margin=margin) for m in others]), +1, margin)
        out.append(claim_row("mcr_best_one_right", "MCR is best where exactly one unimodal model is right", "Figure 5",
                             str(cell), "MCR best", f"MCR − best rival: {_versus(best)}", best, best["verdict"], margin))
        both = part[part["group"] == "both wrong"].rename(columns={"acc": "test_acc"}).assign(dataset=cell)
        for m in ("agm", "mlb"):
            if m in set(both["method"]):
                rivals = [o for o in both["method"].unique() if o not in ("agm", "mlb") and not o.startswith("unimodal")]
                best = _best(pd.concat([paired(both, reference=o, methods=[m], margin=margin) for o in rivals]), +1, margin)
                out.append(claim_row(f"{m}_best_both_wrong", f"{m.upper()} is among the best where both unimodal models "
                                     "are wrong", "Figure 5", str(cell), "AGM and MLB best",
                                     f"{m.upper()} − best rival: {_versus(best)}", best, best["verdict"], margin))
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
        v = HOLDS if high < near else CONTRADICTED if low > near else INCONCLUSIVE
        out.append(claim_row("probe_near_chance", f"In joint training one encoder's probe stays near chance (within "
                             f"{100 * near:.0f} points)", "A.1, Figure 6", dataset, "near chance",
                             f"{weakest} − chance: {_pct(excess.mean())}",
                             {"low": low, "high": high, "n": excess.size, "design": "units"}, v))
    return out


__all__ = ["PAPER_TABLE1", "COST_THRESHOLD", "earlier_methods", "margin_for", "synthetic_claims", "benchmark_claims",
           "ablation_claims", "cost_claims", "fused_term_claims", "error_claims", "probe_claims", "verdict4"]
