"""What the error analysis (notebooks/05) needs from a study's runs, computed by the study's own
stage while its runs are in the run cache, and written beside its runs table.

The error analysis used to read every run of the synthetic and benchmarks stages back from the
run cache (their predictions and weights). The cache lives on one machine and is not in git, so
that analysis could only run in the same session and on the same disk as both studies: on a
2-core machine the three stages together outlast a working session, and a fresh clone had to
retrain both studies to redo it. Here each study writes, at the end of its stage:

  errors.csv      accuracy inside each unimodal-correctness group (mcrlib.analysis.errors.error_frame)
  generator.csv   the synthetic study only: accuracy inside each generator group (generator_frame)
  robustness.csv  each trained multimodal run with one modality perturbed (mcrlib.analysis.robustness)

and the error analysis reads these files only: its stage depends on them, not on the cache.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from mcrlib.analysis.errors import error_frame, generator_frame
from mcrlib.analysis.robustness import robustness_frame
from mcrlib.atomic import atomic_path

FILES = {"errors": "errors.csv", "generator": "generator.csv", "robustness": "robustness.csv"}


def study_analyses(runs: pd.DataFrame, results: Sequence, cell: str, perturbations: Sequence[str], *,
                   seed: int = 0, generator_groups: bool = False) -> dict[str, pd.DataFrame]:
    """{"errors", "robustness"[, "generator"]}: the frames of one study's runs (the rows of its
    runs table and their RunResults, in the same order)."""
    frames = {"errors": error_frame(runs, results, cell),
              "robustness": robustness_frame(runs, results, cell, perturbations, seed=seed)}
    if generator_groups:
        frames["generator"] = generator_frame(runs, results, cell)
    return frames


def write_analyses(frames: dict[str, pd.DataFrame], results_dir: str | Path) -> list[Path]:
    """Each frame to its file in `results_dir`, atomically; the paths written."""
    written = []
    for name, frame in frames.items():
        path = Path(results_dir) / FILES[name]
        with atomic_path(path) as tmp:
            frame.to_csv(tmp, index=False)
        written.append(path)
    return written


def read_analyses(results_dir: str | Path) -> dict[str, pd.DataFrame]:
    """The frames a study's stage wrote (those present), for the error analysis. A study folder
    without errors.csv was written before its stage wrote analyses: rerun that stage."""
    folder = Path(results_dir)
    if not (folder / FILES["errors"]).is_file():
        raise FileNotFoundError(f"{folder / FILES['errors']} is missing: the study's stage writes it with its "
                                "runs (mcrlib.analysis.run_analyses); rerun that stage (dvc repro)")
    frames = {name: pd.read_csv(folder / file) for name, file in FILES.items() if (folder / file).is_file()}
    if "robustness" in frames:   # its clean rows name no modality (""), which the CSV read turns into NaN
        frames["robustness"]["modality"] = frames["robustness"]["modality"].fillna("")
    return frames
