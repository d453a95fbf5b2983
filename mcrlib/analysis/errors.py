"""Error analysis (paper Figure 5): test samples grouped by which unimodal models are right, and
each multimodal method's accuracy inside each group.

The groups of a (cell, seed) come from that seed's own unimodal runs, so a method is always
compared with the unimodal models trained on the same data draw and seed. On the synthetic data
the generator's groups (shared / unique-1 / unique-2) give a second, ground-truth split: a method
that learned modality m's unique information is right on the unique-m samples.
"""
from __future__ import annotations

import itertools
from collections.abc import Sequence

import pandas as pd
import torch

from mcrlib.data.synthetic import GROUPS


def group_name(right: Sequence[bool]) -> str:
    """The paper's names for two modalities ('only modality 1', ...); 'right: 1+3' style beyond."""
    if len(right) == 2:
        return {(False, False): "both wrong", (True, False): "only modality 1",
                (False, True): "only modality 2", (True, True): "both right"}[tuple(map(bool, right))]
    which = [str(i + 1) for i, r in enumerate(right) if r]
    return "none right" if not which else "all right" if len(which) == len(right) else "right: " + "+".join(which)


def is_classification(predictions: dict) -> bool:
    """Regression runs (CMU-MOSI/MOSEI) have one output and no notion of a right/wrong sample here."""
    return predictions["fused"].dim() == 2 and predictions["fused"].shape[-1] > 1


def correct(predictions: dict, head: str = "fused") -> torch.Tensor:
    """Whether each sample's arg-max class of `head` is its label."""
    return predictions[head].argmax(-1) == predictions["label"]


def unimodal_correctness(unimodal: Sequence[dict]) -> pd.DataFrame:
    """One row per sample: its label, and right_1..right_M, whether modality m's unimodal run (its
    test predictions, in modality order) is right on it."""
    labels = unimodal[0]["label"]
    for preds in unimodal[1:]:
        if not torch.equal(preds["label"], labels):
            raise ValueError("the unimodal runs were evaluated on different test sets (labels differ)")
    frame = pd.DataFrame({"label": labels.numpy()})
    for m, preds in enumerate(unimodal, start=1):
        frame[f"right_{m}"] = correct(preds).numpy()
    return frame


def group_accuracy(predictions: dict, right: pd.DataFrame) -> pd.DataFrame:
    """Accuracy of `predictions` (one method's test predictions) inside every unimodal-correctness
    group, empty groups included (n = 0, acc NaN). Columns: right_1..right_M, group, n, acc."""
    if not torch.equal(predictions["label"], torch.from_numpy(right["label"].to_numpy(copy=True))):
        raise ValueError("the method's test predictions and the unimodal runs' are not on the same samples")
    keys = [c for c in right.columns if c.startswith("right_")]
    frame = right[keys].assign(correct=correct(predictions).numpy())
    stats = frame.groupby(keys)["correct"].agg(n="size", acc="mean")
    every = pd.MultiIndex.from_tuples(list(itertools.product([False, True], repeat=len(keys))), names=keys)
    stats = stats.reindex(every).fillna({"n": 0}).astype({"n": int}).reset_index()
    stats.insert(len(keys), "group", [group_name(r) for r in stats[keys].itertuples(index=False)])
    return stats


def generator_group_accuracy(predictions: dict, names: Sequence[str] = GROUPS) -> pd.DataFrame:
    """n and accuracy of the fused head inside each of the synthetic generator's sample groups
    (predictions["group"]: 0 shared, 1 unique-1, 2 unique-2). Columns: group, n, acc."""
    frame = pd.DataFrame({"group": pd.Categorical.from_codes(predictions["group"].numpy(), categories=list(names)),
                          "correct": correct(predictions).numpy()})
    stats = frame.groupby("group", observed=False)["correct"].agg(n="size", acc="mean").reset_index()
    return stats.astype({"group": str})


def error_frame(runs: pd.DataFrame, results: Sequence, cell: str) -> pd.DataFrame:
    """For every multimodal run of a study (the rows of its runs table, and their RunResults in the
    same order): the accuracy and size of each unimodal-correctness group of its (cell, seed).
    Columns: cell, seed, method, right_1..right_M, group, n, acc. Regression cells are left out."""
    parts = []
    labelled = runs.assign(_result=list(results))
    for (cell_value, seed), rows in labelled.groupby([cell, "seed"], sort=False):
        found = dict(zip(rows["method"], rows["_result"]))
        # In modality order: the study lists the unimodal runs as the dataset lists its modalities.
        unimodal = [r.predictions["test"] for m, r in found.items() if m.startswith("unimodal-")]
        if len(unimodal) < 2 or not is_classification(unimodal[0]):
            continue
        right = unimodal_correctness(unimodal)
        for method, result in found.items():
            if not method.startswith("unimodal-"):
                part = group_accuracy(result.predictions["test"], right)
                parts.append(part.assign(**{cell: cell_value, "seed": seed, "method": method}))
    frame = pd.concat(parts, ignore_index=True)
    return frame[[cell, "seed", "method", *[c for c in frame.columns if c not in (cell, "seed", "method")]]]


def generator_frame(runs: pd.DataFrame, results: Sequence, cell: str) -> pd.DataFrame:
    """Accuracy inside each synthetic generator group for every run (unimodal ones included), rows
    of the runs table and their RunResults in the same order. Columns: cell, seed, method, group, n, acc."""
    parts = [generator_group_accuracy(result.predictions["test"]).assign(
                 **{cell: row[cell], "seed": row["seed"], "method": row["method"]})
             for (_, row), result in zip(runs.iterrows(), results)]
    frame = pd.concat(parts, ignore_index=True)
    return frame[[cell, "seed", "method", "group", "n", "acc"]]


def summarise(frame: pd.DataFrame, cell: str) -> pd.DataFrame:
    """Mean and std over seeds of each group's accuracy, and its mean size, per cell and method.
    A group that is empty for a seed counts for its size, not for its accuracy."""
    keys = [cell, "method", "group", *[c for c in frame.columns if c.startswith("right_")]]
    return (frame.groupby(keys, sort=False, dropna=False)
            .agg(mean=("acc", "mean"), std=("acc", "std"), n=("n", "mean"), seeds=("seed", "nunique"))
            .reset_index())


def plot_error_matrices(summary: pd.DataFrame, cell: str, methods: Sequence[str], modalities: dict,
                        title: str = ""):
    """The paper's Figure 5 layout: per cell (a row) and method (a column) a 2x2 matrix, rows
    modality 1 right / wrong, columns modality 2 right / wrong; each square shows the method's
    accuracy in that group (mean ± std over seeds) and the group's mean size."""
    import matplotlib.pyplot as plt

    cells = [c for c in summary[cell].unique() if len(modalities[c]) == 2]
    methods = [m for m in methods if m in set(summary["method"])]
    fig, axes = plt.subplots(len(cells), len(methods), figsize=(2.3 * len(methods) + 1.2, 2.3 * len(cells) + 0.6),
                             squeeze=False, constrained_layout=True)
    image = None
    for row, (axs, c) in enumerate(zip(axes, cells)):
        for col, (ax, method) in enumerate(zip(axs, methods)):
            part = summary[(summary[cell] == c) & (summary["method"] == method)].set_index(["right_1", "right_2"])
            if part.empty:   # this method did not run in this cell
                ax.axis("off")
                continue
            order = [(True, True), (True, False), (False, True), (False, False)]   # [[m1 right: m2 r, w], [m1 wrong: ...]]
            cells2x2 = [part.loc[k] for k in order]
            grid = [[cells2x2[0]["mean"], cells2x2[1]["mean"]], [cells2x2[2]["mean"], cells2x2[3]["mean"]]]
            image = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis")
            for k, (i, j) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
                s = cells2x2[k]
                text = "—" if pd.isna(s["mean"]) else f"{s['mean']:.0%}\n± {0 if pd.isna(s['std']) else s['std']:.0%}"
                ax.text(j, i, f"{text}\nn={s['n']:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if pd.isna(s["mean"]) or s["mean"] < 0.6 else "black")
            m1, m2 = modalities[c]
            ax.set_xticks([0, 1], [f"{m2} right", f"{m2} wrong"], fontsize=7)
            ax.set_yticks([0, 1], [f"{m1} right", f"{m1} wrong"], fontsize=7)
            if row == 0:
                ax.set_title(method, fontsize=9)
            if col == 0:
                ax.set_ylabel(str(c), fontsize=8)
    fig.colorbar(image, ax=axes, shrink=0.6, label="multimodal accuracy")
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
