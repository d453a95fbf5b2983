"""Figure 4's numbers as the MCR authors' own plotting script holds them ("the authors' plot
values"), and a paper-profile run's accuracies against them.

The paper gives Figure 4 only as bars. The authors' development repository kkontras/Synergy
(file `lineplot_accuracies_neurips.py`, commit 0cade23, 2026-01-03) hard-codes the values it
plots: accuracy in %, mean ± std over folds (3 folds on CREMA-D; their folds are the release's,
which `cremad` and `cremad_faces` use by default). They are drafts of the authors' figure, not a
table of the paper, and are quoted as such. Values the script leaves at 0 (missing) are left out;
its AVE lists are shorter than their labels and cannot be matched to methods, so AVE has none.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from mcrlib.analysis.paired import t_interval

SOURCE = ("the authors' plot values (kkontras/Synergy, lineplot_accuracies_neurips.py, commit 0cade23: drafts of "
          "Figure 4, not a table of the paper)")

# data label of the paper profile -> method -> (mean %, std % over folds or None)
FIGURE4 = {
    "CREMA-D": {"ensemble": (71.70, None), "unimodal-visual": (55.38, 2.31), "unimodal-audio": (60.60, 2.97),
                "joint": (62.56, 1.36), "mmcosine": (58.83, 1.57), "mslr": (56.53, 2.24), "pmr": (53.74, 2.34),
                "ogm": (65.57, 3.84), "agm": (69.28, 1.39), "multiloss": (69.22, 1.82), "mlb": (71.17, 1.31),
                "unipre_frozen": (72.28, 1.76), "unipre_finetuned": (73.27, 2.82), "mcr": (76.01, 2.07)},
    "CREMA-D (Conformer)": {"ensemble": (84.57, None), "unimodal-visual": (69.42, 2.75),
                            "unimodal-audio": (76.82, 1.97), "joint": (75.13, 1.70), "mmcosine": (73.48, 2.12),
                            "mslr": (77.05, 2.40), "pmr": (80.49, 0.20), "ogm": (82.41, None), "agm": (78.54, 2.56),
                            "multiloss": (82.59, 0.92), "mlb": (85.16, 0.85), "unipre_frozen": (82.43, 2.04),
                            "unipre_finetuned": (84.09, 0.90)},
    "UCF-51": {"unimodal-visual": (30.33, 1.49), "unimodal-audio": (38.34, 0.83), "joint": (47.70, 1.47),
               "mmcosine": (46.9, 3.61), "mslr": (47.91, 3.80), "pmr": (40.86, 2.01), "ogm": (51.79, 1.93),
               "agm": (50.46, 1.48), "multiloss": (51.12, 1.79), "mlb": (51.99, 2.23)},
}


def difference_text(dataset: str, method: str, reference: str) -> str:
    """"method a, reference b (a − b)" in the authors' plot values, or "" where either is missing."""
    values = FIGURE4.get(dataset, {})
    if method not in values or reference not in values:
        return ""
    a, b = values[method][0], values[reference][0]
    return f"the authors' plot values: {method} {a:.1f}, {reference} {b:.1f} ({a - b:+.1f})"


def against_authors(runs: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per dataset with plot values and per method in both: our mean test accuracy (%) with the t
    interval of the mean over our units, the authors' mean ± std, and ours − theirs. Empty where
    no dataset of `runs` has plot values (the quick profile)."""
    rows = []
    for dataset, part in runs.groupby("dataset", sort=False):
        for method, values in part.groupby("method", sort=False)["test_acc"]:
            if method not in FIGURE4.get(dataset, {}):
                continue
            theirs, spread = FIGURE4[dataset][method]
            ours = 100 * values.to_numpy(dtype=float)
            low, high = t_interval(ours, confidence)
            rows.append({"dataset": dataset, "method": method, "units": len(ours), "ours (%)": ours.mean(),
                         "ours low": low, "ours high": high, "theirs (%)": theirs,
                         "theirs std": np.nan if spread is None else spread, "ours − theirs": ours.mean() - theirs})
    columns = ["dataset", "method", "units", "ours (%)", "ours low", "ours high", "theirs (%)", "theirs std",
               "ours − theirs"]
    return pd.DataFrame(rows, columns=columns)


def against_authors_markdown(table: pd.DataFrame) -> str:
    if table.empty:
        return ("No dataset of this profile has the authors' plot values (CREMA-D with both families and UCF-51 "
                "have them: the paper profile).")
    shown = pd.DataFrame({
        "dataset": table["dataset"], "method": table["method"], "units": table["units"],
        "ours (%)": [f"{m:.1f} [{lo:.1f}, {hi:.1f}]" if pd.notna(lo) else f"{m:.1f}"
                     for m, lo, hi in zip(table["ours (%)"], table["ours low"], table["ours high"])],
        "theirs (%)": [f"{m:.2f}" + ("" if pd.isna(s) else f" ± {s:.2f}") for m, s in zip(table["theirs (%)"], table["theirs std"])],
        "ours − theirs": [f"{d:+.1f}" for d in table["ours − theirs"]]})
    return f"Source: {SOURCE}.\n\n" + shown.to_markdown(index=False, disable_numparse=True)   # "+1.0" stays text
