"""Mean ± std tables over seeds, exported as CSV, Markdown and LaTeX."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from mcrlib.atomic import atomic_path, write_text


def mean_std(runs: pd.DataFrame, *, index: str, columns: str, value: str) -> pd.DataFrame:
    """Long table of mean, std and n of `value` per (index, columns) cell."""
    grouped = runs.groupby([index, columns], sort=False)[value]
    return grouped.agg(["mean", "std", "count"]).reset_index()


def format_pm(summary: pd.DataFrame, *, index: str, columns: str, scale: float = 100.0,
              digits: int = 1, order=None) -> pd.DataFrame:
    """Wide table of 'mean ± std' strings (percent by default)."""
    text = summary.assign(_text=[f"{m * scale:.{digits}f} ± {0 if pd.isna(s) else s * scale:.{digits}f}"
                                for m, s in zip(summary["mean"], summary["std"])])
    wide = text.pivot(index=index, columns=columns, values="_text")
    if order is not None:
        wide = wide.reindex([o for o in order if o in wide.index])
    return wide


def export_table(table: pd.DataFrame, stem: str | Path, caption: str = "") -> list[Path]:
    """Write stem.csv, stem.md and stem.tex atomically; returns the paths."""
    stem = Path(stem)
    paths = [stem.with_suffix(s) for s in (".csv", ".md", ".tex")]
    with atomic_path(paths[0]) as tmp:
        table.to_csv(tmp)
    markdown = table.fillna("—").to_markdown()   # a cell with no runs (a modality a dataset lacks)
    write_text((f"{caption}\n\n" if caption else "") + markdown + "\n", paths[1])
    latex = table.to_latex(escape=True, caption=caption or None, na_rep="—")
    write_text(latex, paths[2])
    return paths
