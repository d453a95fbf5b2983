"""The paper profile's `prepare` stages on fabricated data, for the paper rehearsal
(benchmarks/paper_rehearsal.py, part 2): each dataset's real prepare, timed, its samples read back
with the dataset's own load, and the prepared bytes per sample.
"""
from __future__ import annotations

import json
import shutil
import time
import traceback
from pathlib import Path

import pandas as pd


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def count_samples(name: str, folder: Path) -> int:
    """Samples in a prepared folder, read back with the dataset's own load (all splits)."""
    from mcrlib.data import load_dataset
    data = load_dataset(name, {"prepared": str(folder)})
    return sum(len(split["label"]) for split in data.splits.values())


def prepare_all(raw: dict[str, Path], out: Path, settings: dict[str, dict], progress: bool = True) -> pd.DataFrame:
    """Every dataset's real `prepare` (mcrlib.data.prepare.prepare) on the fabricated copy."""
    from tqdm.auto import tqdm

    from mcrlib.data.prepare import prepare
    rows = []
    for name in tqdm(list(settings), desc="prepare", disable=not progress):
        cfg = {**settings[name], "root": str(raw[name])}
        if name == "cremad_faces":
            cfg.update(weights="random", device="cpu")   # no download; same cost as ImageNet weights
        folder = out / name
        shutil.rmtree(folder, ignore_errors=True)
        row = {"dataset": name, "settings": json.dumps({k: v for k, v in cfg.items() if k != "root"})}
        start = time.perf_counter()
        try:
            prepare(name, cfg, folder)
            seconds = time.perf_counter() - start
            n = count_samples(name, folder)
            size = folder_bytes(folder)
            row.update(status="ok", samples=n, seconds=round(seconds, 2), seconds_per_sample=round(seconds / n, 3),
                       disk_bytes=size, disk_bytes_per_sample=round(size / n))
        except Exception as err:   # recorded, not hidden
            row.update(status=f"error: {type(err).__name__}: {err}"[:300],
                       seconds=round(time.perf_counter() - start, 2))
            traceback.print_exc()
        rows.append(row)
    return pd.DataFrame(rows)
