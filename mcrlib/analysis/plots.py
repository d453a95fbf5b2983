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


def lines_with_bands(summary: pd.DataFrame, *, x: str, line: str, order=None, styles=None,
                     xlabel: str = "", ylabel: str = "", title: str = "", logx: bool = False):
    """One line per `line` value: mean against `x` with a ± std band."""
    fig, ax = plt.subplots(figsize=(7.6, 4.2))
    for name in order or summary[line].unique():
        part = summary[summary[line] == name].sort_values(x)
        if part.empty:
            continue
        std = part["std"].fillna(0)
        style = (styles or {}).get(name, {})
        ax.plot(part[x], part["mean"], marker="o", label=name, **style)
        ax.fill_between(part[x], part["mean"] - std, part["mean"] + std, alpha=0.15,
                        color=ax.lines[-1].get_color())
    if logx:
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(summary[x].unique()), [f"{v:g}" for v in sorted(summary[x].unique())])
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, loc="center left", bbox_to_anchor=(1.01, 0.5))  # keep the lines visible
    fig.tight_layout()
    return fig
