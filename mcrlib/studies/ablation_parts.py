"""The ablations study trained in parts, each of which lands on its own, as the benchmarks do.

    python -m mcrlib.studies.ablation_parts --part 3                  # quick profile (params.yaml)
    python -m mcrlib.studies.ablation_parts --part 0 --profile paper

Why parts. The quick profile's ablations (12 seeds, two datasets, every row of Tables 2-4 and the
open choices) take about an hour and a half on 2 CPU cores, and the run cache is not in git: a
session that ends mid-stage loses it. With P parts (params `parts.ablations`) part k holds the
units of seeds[k::P], each on the fold it has in the whole study (mcrlib.studies.benchmark_parts
splits the seeds; with P = 6 AV-Digits folds part k is fold k's seeds). dvc.yaml runs each part as
its own stage (`ablations_part@k`); the `ablations` notebook then only assembles them (`assemble`)
and measures the cost.

A part is the folder <results>/ablations/parts/<k>/ with
  runs.csv   one row per (dataset, seed, table row) of the part, with its run key
  part.json  its part number, number of parts and seeds
and runs.csv is written last. A part on disk is used only while it is current: its (dataset,
seed, table, variant) rows are the part's rows now, and each run key is the key the study builds
now for that row (the key covers params, code and data: mcrlib.run_key). Otherwise it is trained
again through the run cache and rewritten; a file that cannot be read is reported and retrained.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pandas as pd

from mcrlib.config import ConfigError
from mcrlib.data import dataset_modalities
from mcrlib.profiles import BASE_PROFILE, load_stage, results_root
from mcrlib.run_key import run_key
from mcrlib.studies.ablations import AblationStudyConfig, load_study, run_study, study_runs
from mcrlib.studies.benchmark_parts import part_count, part_difference, part_seeds, part_study, reuse_or_train
from mcrlib.studies.benchmarks import resolve_datasets

SECTION = "ablations"
NAMES = ("runs",)
LABELS = ("dataset", "seed", "table", "variant")   # what a row of runs.csv is


def _split(study: AblationStudyConfig, part: int, parts: int) -> AblationStudyConfig:
    return part_study(study, part, parts, SECTION)


def planned(study: AblationStudyConfig) -> list[tuple[tuple, str]]:
    """[((dataset, seed, table, variant), run key)] of every row of `study`, as it builds them now;
    nothing trains."""
    modalities = {label: dataset_modalities(study.data_config(label, study.seeds[0]).name,
                                            study.data_config(label, study.seeds[0]).params)
                  for label in study.datasets}
    return [(tuple(labels[name] for name in LABELS), run_key(config))
            for labels, config in study_runs(study, modalities.__getitem__)]


def part_meta(study: AblationStudyConfig, part: int, parts: int) -> dict:
    return {"part": part, "parts": part_count(study, parts, SECTION),
            "seeds": list(part_seeds(study, part, parts, SECTION))}


def stale_reason(study: AblationStudyConfig, part: int, parts: int, runs: pd.DataFrame, meta: dict) -> str | None:
    """Why the part read from disk cannot be used now (None: it is current)."""
    return part_difference(meta, part_meta(study, part, parts), runs, LABELS, (),
                           lambda: planned(_split(study, part, parts)))


def ensure_part(study: AblationStudyConfig, part: int, parts: int, cache_dir: str | Path, folder: str | Path, *,
                train: bool = True) -> pd.DataFrame:
    """Part `part`'s runs from `folder` where it is current, else trained through the run cache and
    written there (`train=False`: an error instead)."""
    seeds = list(part_seeds(study, part, parts, SECTION))
    return reuse_or_train(
        folder, NAMES, part_meta(study, part, parts),
        lambda frames, meta: stale_reason(study, part, parts, frames["runs"], meta),
        lambda: {"runs": run_study(_split(study, part, parts), cache_dir)}, train=train,
        name=f"ablations part {part} of {part_count(study, parts, SECTION)} (seeds {seeds})",
        command=f"python -m mcrlib.studies.ablation_parts --part {part}")["runs"]


def assemble(study: AblationStudyConfig, parts: int, cache_dir: str | Path, parts_dir: str | Path, *,
             train: bool = True) -> pd.DataFrame:
    """The whole study's runs from its parts (each `ensure_part`), in the row order one run of the
    whole study gives, so its tables are the whole study's."""
    found = pd.concat([ensure_part(study, k, parts, cache_dir, Path(parts_dir) / str(k), train=train)
                       for k in range(part_count(study, parts, SECTION))], ignore_index=True)
    order = {labels: i for i, (labels, _) in enumerate(planned(study))}
    position = [order[tuple(int(row[n]) if n == "seed" else row[n] for n in LABELS)]
                for row in found.to_dict("records")]
    return found.iloc[pd.Series(position).argsort(kind="stable").to_numpy()].reset_index(drop=True)


def load_part_inputs(profile: str, root: str | Path) -> tuple[AblationStudyConfig, int]:
    """The study (calibrated where marked, locations resolved from `root`) and its number of
    parts, as the ablations notebook loads them."""
    params = load_stage(profile, SECTION, root, reads=("parts",))
    section = {key: value for key, value in params[SECTION].items() if key != "cost"}   # the notebook's
    study = load_study({**section, "datasets": resolve_datasets(section["datasets"], root)})
    parts = (params["parts"] or {}).get(SECTION, 1)
    part_count(study, parts, SECTION)   # validated here, where the notebook and the stages start
    return study, parts


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mcrlib.studies.ablation_parts",
                                     description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", type=int, required=True, help="which part, from 0 to parts.ablations - 1")
    parser.add_argument("--profile", default=BASE_PROFILE, help="a profile (default: params.yaml itself)")
    parser.add_argument("--cache-dir", default=os.environ.get("MCR_RUN_CACHE", ".mcr-cache/runs"))
    args = parser.parse_args(argv)
    root = Path.cwd()
    try:
        study, parts = load_part_inputs(args.profile, root)
        part_seeds(study, args.part, parts, SECTION)
        folder = root / results_root(args.profile) / SECTION / "parts" / str(args.part)
        ensure_part(study, args.part, parts, args.cache_dir, folder)
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"ablations part {args.part}: {folder}")


if __name__ == "__main__":
    main()
