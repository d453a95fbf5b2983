"""Figures, saved atomically as PNG and PDF."""
from __future__ import annotations

from pathlib import Path

# No backend is forced here: in a notebook (Jupyter Lab, papermill, nbval) the kernel's inline
# backend shows every figure and the executed notebook keeps it as an image; without a display
# matplotlib falls back to Agg by itself.
import matplotlib.pyplot as plt
import pandas as pd

from mcrlib.atomic import atomic_path


def save_figure(fig, stem: str | Path) -> list[Path]:
    paths = [Path(stem).with_suffix(s) for s in (".png", ".pdf")]
    for path in paths:
        with atomic_path(path) as tmp:
            # no creation date in the PDF: a rebuilt figure is byte-identical, so git sees no change
            fig.savefig(tmp, dpi=160, bbox_inches="tight", format=path.suffix[1:],
                        metadata={"CreationDate": None} if path.suffix == ".pdf" else None)
    return paths


def finish(fig, title: str = "", caption: str = ""):
    """A figure's title, its caption drawn inside it (so a saved figure stands alone), and layout."""
    if title:
        fig.suptitle(title, fontsize=11.5)
    if caption:
        fig.text(0.01, -0.01, caption, wrap=True, fontsize=8.5, ha="left", va="top")
    fig.tight_layout()
    return fig


# The references every figure marks the same way, so a reader finds them at once.
REFERENCE_STYLES = {
    "ensemble": {"color": "#1f4e9c", "lw": 2.6, "ls": "-", "marker": "s"},
    "joint": {"color": "#c0392b", "lw": 2.6, "ls": "-", "marker": "v"},
    "mcr": {"color": "black", "lw": 2.6, "ls": "-", "marker": "o"},
}
UNIMODAL_STYLES = ({"color": "0.45", "ls": ":", "lw": 1.6, "marker": ""}, {"color": "0.45", "ls": "--", "lw": 1.6, "marker": ""})


def mean_interval(summary: pd.DataFrame, confidence: float = 0.95) -> pd.Series:
    """Half-width of the t interval of each row's mean (columns mean, std, count): what the bands
    of the figures show, the 95% interval of the mean over the units, not ± one std."""
    from scipy.stats import t
    count = summary["count"].astype(float)
    half = t.ppf(0.5 + confidence / 2, (count - 1).clip(lower=1)) * summary["std"].fillna(0) / count.clip(lower=1) ** 0.5
    return half.where(count > 1, 0.0)


def accuracy_against(runs: pd.DataFrame, *, x: str, methods, chance: float | None, xlabel: str, title: str,
                     value: str = "test_acc", unit: str = "seed", reference: str = "ensemble",
                     caption: str = "", logx: bool = False, label=None):
    """Two panels against `x`. Left, accuracy (%) of the unimodal models (grey), the Ensemble,
    joint training and MCR, with bands of the 95% t interval of each mean over the units, and a
    chance line. Right, every method's paired difference from `reference` (points; mean over the
    units of method − reference at the same x and unit), so differences of a point are visible:
    joint training and MCR thick with their 95% bands, every other method a thin line of its own
    colour (tab20: no colour twice). `caption` is drawn inside the figure, so it stands alone.
    `runs`: one row per run with columns x, unit, method and `value`; `label(method)` the legend name."""
    from matplotlib import colormaps
    label = label or (lambda m: m)
    unimodal = [m for m in methods if m.startswith("unimodal-")]
    key = [m for m in REFERENCE_STYLES if m in methods]
    fig, (left, right) = plt.subplots(1, 2, figsize=(13.0, 5.2))
    palette = colormaps["tab20"].colors

    def draw(ax, part, name, style, band):
        part = part.sort_values(x)
        ax.plot(part[x], part["mean"] * 100, label=label(name), markersize=4, **style)
        if band:
            half = mean_interval(part) * 100
            ax.fill_between(part[x], (part["mean"] * 100 - half), (part["mean"] * 100 + half),
                            alpha=0.18, color=style["color"], lw=0)

    summary = runs.groupby(["method", x])[value].agg(["mean", "std", "count"]).reset_index()
    for k, name in enumerate(unimodal):
        draw(left, summary[summary["method"] == name], name, UNIMODAL_STYLES[k % 2], band=False)
    for name in key:
        draw(left, summary[summary["method"] == name], name, REFERENCE_STYLES[name], band=True)
    if chance is not None:
        left.axhline(chance * 100, color="0.3", lw=0.9, ls=(0, (1, 3)))
        left.annotate(f"chance {chance * 100:.0f}%", (0.99, chance * 100), xycoords=("axes fraction", "data"),
                      xytext=(0, 3), textcoords="offset points", fontsize=8, color="0.3", ha="right")
    left.set_ylabel("test accuracy (%)")
    left.set_title("accuracy (bands: 95% interval of the mean)", fontsize=10)
    left.legend(frameon=False, fontsize=8, loc="lower left")

    wide = runs.pivot_table(index=[x, unit], columns="method", values=value)
    rivals = [m for m in methods if m not in unimodal and m != reference and m in wide.columns]
    others = [m for m in rivals if m not in key]
    for k, name in enumerate(others):
        diff = (wide[name] - wide[reference]).groupby(level=x).agg(["mean", "std", "count"]).reset_index()
        draw(right, diff, name, {"color": palette[k % len(palette)], "lw": 1.2, "marker": ".", "ls": "-"}, band=False)
    for name in [m for m in key if m in rivals]:
        diff = (wide[name] - wide[reference]).groupby(level=x).agg(["mean", "std", "count"]).reset_index()
        draw(right, diff, name, REFERENCE_STYLES[name], band=True)
    right.axhline(0, color=REFERENCE_STYLES.get(reference, {}).get("color", "0.2"), lw=1.4)
    right.annotate(f"= {label(reference)}", (0.99, 0), xycoords=("axes fraction", "data"), xytext=(0, 3),
                   textcoords="offset points", fontsize=8, ha="right",
                   color=REFERENCE_STYLES.get(reference, {}).get("color", "0.2"))
    right.set_ylabel(f"method − {label(reference)} (points, paired)")
    right.set_title(f"every method against the {label(reference)} (bands: joint and MCR)", fontsize=10)
    right.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    for ax in (left, right):
        if logx:
            ax.set_xscale("log", base=2)
            values = sorted(runs[x].unique())
            ax.set_xticks(values, [f"{v:g}" for v in values])
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    return finish(fig, title, caption)


def profile_stamp(fig, profile: str) -> None:
    """The smoke profile written across the figure ("smoke profile: not a result"), so that a
    notebook's default run, on seconds of tiny data, cannot pass for a result."""
    if profile == "smoke":
        fig.text(0.5, 0.5, "smoke profile: not a result", fontsize=34, color="0.5", alpha=0.25, ha="center",
                 va="center", rotation=20, transform=fig.transFigure, zorder=10)


def gain_bars(runs: pd.DataFrame, *, panels: dict, order, reference: str = "ensemble", label=None,
              title: str = "", caption: str = "", margin: dict | None = None):
    """Figure 4: per dataset (a panel; `panels` maps a heading to a dataset label), each method's
    paired difference from `reference` (points) with the 95% interval REPORT.md uses for it
    (mcrlib.analysis.inference.compare: folds as fixed blocks where a dataset has several seeds per
    fold), the reference's own accuracy in the panel's title, and the equivalence band ±Δ where
    `margin` gives one (a dataset label -> Δ). Joint training and MCR in their reference colours,
    every other method one neutral colour."""
    from mcrlib.analysis.inference import compare
    label = label or (lambda m: m)
    fig, axes = plt.subplots(1, len(panels), figsize=(1.2 + 0.5 * len(order) * len(panels), 4.6), squeeze=False)
    for ax, (heading, dataset) in zip(axes[0], panels.items()):
        part = runs[runs["dataset"] == dataset]
        units = ["fold", "seed"] if "fold" in part and part["fold"].notna().all() else ["seed"]
        rows = [compare(part, method=m, reference=reference, units=units, block="fold") for m in order]
        mean = [100 * r["mean_diff"] for r in rows]
        err = [[100 * (r["mean_diff"] - r["low"]) for r in rows], [100 * (r["high"] - r["mean_diff"]) for r in rows]]
        colours = [REFERENCE_STYLES.get(m, {}).get("color", "#7f9bbf") for m in order]
        ax.bar(range(len(order)), mean, yerr=err, color=colours, capsize=3, error_kw={"lw": 1.0})
        ax.axhline(0, color=REFERENCE_STYLES.get(reference, {}).get("color", "0.3"), lw=1.2)
        delta = (margin or {}).get(dataset)
        if delta:
            ax.axhspan(-100 * delta, 100 * delta, color="0.85", zorder=0, lw=0)
        ax.set_xticks(range(len(order)), [label(m) for m in order], rotation=60, ha="right")
        accuracy = 100 * part.loc[part["method"] == reference, "test_acc"].mean()
        n, design = rows[0]["n"], rows[0]["design"]
        ax.set_title(f"{heading}\n{label(reference)} {accuracy:.1f}%; {n} units ({design})", fontsize=9)
        ax.set_ylabel(f"accuracy − {label(reference)} (points, paired)")
        ax.grid(axis="y", alpha=0.3)
    return finish(fig, title, caption)


def competition_curves(curves: pd.DataFrame, ensemble: pd.DataFrame, *, chance: dict, label=None,
                       title: str = "", caption: str = ""):
    """Figure 6: per dataset (a row) and method (a column), the fused test accuracy and a linear
    probe of each encoder per epoch, with the Ensemble's accuracy and chance as lines; a last
    column the probe gap (the stronger encoder's probe minus the weaker's, in points) of every
    method. Each row has its own legend (its own modalities). The means run only over the epochs
    that every seed reached: early stopping ends runs at different epochs, and a mean over the
    few runs left would make artefacts at the tails. `chance`: a dataset label -> 1/classes."""
    label = label or (lambda m: m)
    datasets, methods = list(curves["dataset"].unique()), list(curves["method"].unique())
    fig, axes = plt.subplots(len(datasets), len(methods) + 1, figsize=(4.0 * (len(methods) + 1) + 1.6,
                                                                         3.4 * len(datasets)), squeeze=False)
    probe_colours = ["#2a9d8f", "#e9c46a", "#9d4edd"]
    for row, dataset in zip(axes, datasets):
        part = curves[curves["dataset"] == dataset]
        probes = [c for c in part.columns if c.startswith("probe ") and c != "probe gap" and part[c].notna().any()]
        reached = part.groupby(["method", "seed"])["epoch"].max().min()   # every seed has these epochs
        part = part[part["epoch"] <= reached]
        reference = 100 * ensemble.loc[ensemble["dataset"] == dataset, "ensemble"].mean()
        for ax, method in zip(row, methods):
            mean = part[part["method"] == method].groupby("epoch")[["fused", *probes]].mean() * 100
            ax.plot(mean.index, mean["fused"], color=REFERENCE_STYLES.get(method, {}).get("color", "black"), lw=2.4,
                    label=f"fused ({label(method)})")
            for colour, column in zip(probe_colours, probes):
                ax.plot(mean.index, mean[column], color=colour, lw=1.6, label=f"{column.removeprefix('probe ')} encoder, probed")
            ax.axhline(reference, color=REFERENCE_STYLES["ensemble"]["color"], ls="--", lw=1.2, label="Ensemble")
            if dataset in chance and chance[dataset]:
                ax.axhline(100 * chance[dataset], color="0.3", ls=(0, (1, 3)), lw=0.9, label="chance")
            ax.set(title=f"{dataset}: {label(method)}", xlabel="epoch", ylabel="test accuracy (%)")
            ax.grid(alpha=0.3)
        gap_ax = row[-1]
        for method in methods:
            gap = part[part["method"] == method].groupby("epoch")["probe gap"].mean() * 100
            gap_ax.plot(gap.index, gap.values, color=REFERENCE_STYLES.get(method, {}).get("color", "black"), lw=2,
                        label=label(method))
        gap_ax.axhline(0, color="0.3", lw=0.8)
        gap_ax.set(title=f"{dataset}: probe gap", xlabel="epoch", ylabel="stronger − weaker probe (points)")
        gap_ax.grid(alpha=0.3)
        handles, names = row[0].get_legend_handles_labels()
        handles += gap_ax.get_legend_handles_labels()[0]
        names += [f"gap, {n}" for n in gap_ax.get_legend_handles_labels()[1]]
        gap_ax.legend(handles, names, frameon=False, fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    return finish(fig, title, caption)
