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
    if order is not None:   # rows in `order` first; a row `order` lacks is kept, after them, never dropped
        wide = wide.reindex([o for o in order if o in wide.index] + [r for r in wide.index if r not in order])
    return wide


def method_order(labels) -> list[str]:
    """Method labels in the tables' order: the unimodal models ("unimodal-<modality>") first, then
    every method by its registry rank (mcrlib.methods: each method's own `rank`). A label that is
    neither is an error (a ConfigError naming the registered methods), not a silently dropped row."""
    from mcrlib.methods.base import in_table_order
    labels = list(dict.fromkeys(labels))
    unimodal = sorted(label for label in labels if label.startswith("unimodal-"))
    return unimodal + in_table_order([label for label in labels if not label.startswith("unimodal-")])


def display_names(labels) -> list[str]:
    """Figure labels: each method's `display` name; unimodal models as "Unimodal <modality>"."""
    from mcrlib.methods import METHODS
    return [f"Unimodal {label.removeprefix('unimodal-')}" if label.startswith("unimodal-") else METHODS[label].display
            for label in labels]


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


def stable_summary(table: pd.DataFrame | pd.Series, *, low: float = 0.0, high: float = 1.0) -> str:
    """What a notebook's nbval-checked cell prints: the table's shape (its rows and columns), how
    many cells are filled, and whether every value lies in [low, high]. Never the trained numbers
    themselves: CPUs round differently (AVX2 and AVX-512 kernels accumulate in other orders), a
    training trajectory amplifies the last bit, and a printed accuracy then differs in its third
    digit on a user's machine. The numbers are shown in the cell before, unchecked."""
    frame = table.to_frame() if isinstance(table, pd.Series) else table
    values = frame.to_numpy(dtype=float)
    filled = int(pd.notna(values).sum())
    inside = bool(((values[pd.notna(values)] >= low) & (values[pd.notna(values)] <= high)).all())
    rows = [" / ".join(map(str, r)) if isinstance(r, tuple) else str(r) for r in frame.index]
    return (f"rows: {rows}\ncolumns: {[str(c) for c in frame.columns]}\n"
            f"filled: {filled} of {values.size}; every value in [{low:g}, {high:g}]: {inside}")
