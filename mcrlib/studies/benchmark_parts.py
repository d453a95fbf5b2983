"""The benchmarks study trained in parts, each of which lands on its own.

    python -m mcrlib.studies.benchmark_parts --part 3                  # quick profile (params.yaml)
    python -m mcrlib.studies.benchmark_parts --part 0 --profile paper

Why parts. The quick profile's 30 AV-Digits units (6 folds x 5 seeds, 18 runs each) take about
three hours on 2 CPU cores: longer than a working session, and the run cache lives on one disk
and is not in git. With P parts (params `parts.benchmarks`), part k holds the units of
seeds[k::P], each on the fold it has in the whole study; with one part per fold (P = 6 folds) that
is fold k's five seeds. A study with fewer seeds than P trains one part per seed. dvc.yaml runs each part as its own stage
(`benchmarks_part@k`), so a part is committed as soon as it is done, a rebuild resumes part by
part in a fresh checkout, and a cluster can run the parts side by side. The `benchmarks` notebook
then only assembles them (`assemble`): its tables and figures need no run cache.

A part is the folder <results>/benchmarks/parts/<k>/ with
  runs.csv        the final runs of the part's units, with their run keys (mcrlib.studies.grid)
  search.csv      the search's trials (the same in every part: every part needs the choice)
  errors.csv      unimodal-correctness groups of its runs (mcrlib.analysis.run_analyses)
  robustness.csv  each trained run with one modality perturbed (the error_analysis perturbations)
  part.json       what the part was made from: its seeds, the perturbations, the search's grid,
                  the code of the search's choice and of the analyses
runs.csv is written last, so a part killed while writing is incomplete and is never read.

A part on disk is used only while it is current (`stale_reason`): each run key in its runs.csv is
the key the study builds now for the same labels (the key covers params, code and data:
mcrlib.run_key; the search's trials share that code and data), and its part.json is what it would
be now.
Otherwise it is trained again through the run cache and rewritten. So DVC's stages and a profile
run without DVC give the same tables, a stale part is never read, and when only the stage's
other code changed (a plot), a current part is kept without training anything.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import warnings
from pathlib import Path

import pandas as pd

from mcrlib.analysis.run_analyses import study_analyses
from mcrlib.atomic import atomic_path, write_text
from mcrlib.code_closure import source_digest
from mcrlib.config import ConfigError, check, to_dict
from mcrlib.data import dataset_modalities
from mcrlib.profiles import BASE_PROFILE, load_stage, results_root
from mcrlib.run_key import run_key
from mcrlib.studies.benchmarks import BenchmarkStudyConfig, load_study, resolve_datasets, run_study
from mcrlib.studies.grid import fold_of, grid_runs
from mcrlib.studies.results import study_results

CELL = "dataset"
FRAMES = ("search", "errors", "robustness", "runs")   # the order they are written in: runs last
META = "part.json"
ANALYSES = ["mcrlib.analysis.run_analyses"]           # the code of errors.csv and robustness.csv
SEARCH = ["mcrlib.search"]                            # the code of the search's choice
STRINGS = {"run_key": str, "setting": str, "modality": str, CELL: str, "table": str, "variant": str}   # never numbers


def part_count(study, parts: int, section: str = "benchmarks") -> int:
    """How many parts a study (anything with `seeds`) trains in: `parts`, at most one per seed."""
    check(isinstance(parts, int) and parts >= 1, f"parts.{section}", parts,
          "a whole number of parts, at least 1 (one part per fold: the number of folds)")
    return min(parts, len(study.seeds))


def part_seeds(study, part: int, parts: int, section: str = "benchmarks") -> tuple[int, ...]:
    """The seeds of part `part`: seeds[part::parts] (fold k's seeds when parts is the number of folds)."""
    count = part_count(study, parts, section)
    check(isinstance(part, int) and 0 <= part < count, "part", part,
          f"a part from 0 to {count - 1} (parts.{section} is {parts}, over {len(study.seeds)} seeds)")
    return tuple(study.seeds[part::count])


def part_study(study, part: int, parts: int, section: str = "benchmarks"):
    """The study (a benchmarks or ablations config) restricted to part `part`'s seeds, each on the
    fold it has in the whole study (a dataset's `folds` become the part's seeds' folds, one each):
    its runs are the whole study's, with the same run keys."""
    seeds = part_seeds(study, part, parts, section)
    datasets = {label: {**spec, "folds": [fold_of(spec["folds"], study.seeds, s) for s in seeds]}
                if "folds" in spec else spec for label, spec in study.datasets.items()}
    return dataclasses.replace(study, seeds=seeds, datasets=datasets)


def part_meta(study: BenchmarkStudyConfig, part: int, parts: int, perturbations, perturbation_seed: int) -> dict:
    """What a part is made from, besides the run keys its tables carry."""
    return {"part": part, "parts": part_count(study, parts), "seeds": list(part_seeds(study, part, parts)),
            "perturbations": list(perturbations), "perturbation_seed": perturbation_seed,
            "search": json.loads(json.dumps(to_dict(study.search))), "search_code": source_digest(SEARCH),
            "analyses_code": source_digest(ANALYSES)}


def train_part(study: BenchmarkStudyConfig, part: int, parts: int, cache_dir: str | Path, *, perturbations,
               perturbation_seed: int) -> dict[str, pd.DataFrame]:
    """{"runs", "search", "errors", "robustness"} of part `part`, trained (or loaded) through the run cache."""
    runs, search = run_study(part_study(study, part, parts), cache_dir)
    analyses = study_analyses(runs, study_results(runs, cache_dir), CELL, perturbations, seed=perturbation_seed)
    return {"runs": runs, "search": search, "errors": analyses["errors"], "robustness": analyses["robustness"]}


def write_part(frames: dict[str, pd.DataFrame], meta: dict, folder: str | Path, names=FRAMES) -> None:
    """The part's files in `folder`, each atomically, in the order of `names`: runs.csv last
    (module docstring)."""
    folder = Path(folder)
    write_text(json.dumps(meta, indent=1) + "\n", folder / META)
    for name in names:
        with atomic_path(folder / f"{name}.csv") as tmp:
            frames[name].to_csv(tmp, index=False)


def read_part(folder: str | Path, names=FRAMES) -> tuple[dict[str, pd.DataFrame], dict] | None:
    """(frames, meta) of the part in `folder` (the CSVs `names`); None where it is missing or
    incomplete. A file that cannot be read is reported (a warning naming it) and the part counts
    as missing."""
    folder = Path(folder)
    paths = [folder / META, *(folder / f"{name}.csv" for name in names)]
    if not all(p.is_file() for p in paths):
        return None
    try:
        meta = json.loads((folder / META).read_text())
        frames = {name: _read_csv(folder / f"{name}.csv") for name in names}
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as err:
        warnings.warn(f"{folder}: cannot read this part ({type(err).__name__}: {err}); it is trained again")
        return None
    return frames, meta


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype=STRINGS, keep_default_na=False, na_values=[""])
    except pd.errors.EmptyDataError:   # a study without a search writes an empty search.csv
        return pd.DataFrame()
    for column in ("setting", "modality"):   # "" (no setting, the clean rows) reads back as NaN
        if column in frame:
            frame[column] = frame[column].fillna("")
    return frame


def planned_keys(study: BenchmarkStudyConfig, part: int, parts: int, runs: pd.DataFrame) -> list:
    """[(labels, run key)] of the part's final runs at the settings its runs.csv records, as the
    study builds them now; nothing trains."""
    chosen = {(row["method"], row[CELL]): json.loads(row["setting"])
              for row in runs.to_dict("records") if row["setting"]}
    modalities = {label: dataset_modalities(spec["name"], spec.get("params", {}))
                  for label, spec in study.datasets.items()}
    labelled = grid_runs(list(study.datasets), part_seeds(study, part, parts), study.methods, study.run_config,
                         modalities.__getitem__, chosen, CELL, study.runs_on)
    return [((lab[CELL], lab["seed"], lab["method"]), run_key(c)) for lab, c in labelled]


def stale_reason(study: BenchmarkStudyConfig, part: int, parts: int, frames: dict[str, pd.DataFrame],
                 meta: dict, expected_meta: dict) -> str | None:
    """Why the part read from disk cannot be used now (None: it is current)."""
    runs = frames["runs"]
    return part_difference(meta, expected_meta, runs, (CELL, "seed", "method"), ("setting",),
                           lambda: planned_keys(study, part, parts, runs))


def part_difference(meta: dict, expected_meta: dict, runs: pd.DataFrame, labels: tuple[str, ...],
                    needed: tuple[str, ...], planned) -> str | None:
    """Why a part on disk differs from the part a study builds now (None: it does not). Its
    part.json `meta` must equal `expected_meta`, and its `runs` must be the `planned()` rows, as
    [(labels, run key)], in order and with the same keys. `labels` name a row (a "seed" column is
    read as a whole number); `needed` are further columns the check reads."""
    for key in expected_meta:
        if meta.get(key) != expected_meta[key]:
            return f"its {key} was {meta.get(key)!r}, now {expected_meta[key]!r}"
    if runs.empty or not {*labels, *needed, "run_key"} <= set(runs.columns):
        return "its runs.csv lacks the runs or their labels"
    now = planned()
    have = [(tuple(int(row[n]) if n == "seed" else row[n] for n in labels), row["run_key"])
            for row in runs.to_dict("records")]
    if [label for label, _ in have] != [label for label, _ in now]:
        return f"its rows are not the part's ({', '.join(labels)}) rows now"
    changed = sum(a != b for (_, a), (_, b) in zip(have, now))
    if changed:
        return f"{changed} of its {len(now)} run keys differ from the study's now (params, code or data changed)"
    return None


def reuse_or_train(folder: str | Path, names, expected_meta: dict, stale, train_frames, *, train: bool,
                   name: str, command: str) -> dict[str, pd.DataFrame]:
    """The part's frames `names` from `folder` where it is current (`stale(frames, meta)` gives
    None), else `train_frames()`, written there with `expected_meta`. With `train=False` a part that
    cannot be used is an error naming the reason and `command`. `name` says which part it is."""
    found = read_part(folder, names)
    reason = "it is missing" if found is None else stale(*found)
    if reason is None:
        return found[0]
    if not train:
        raise FileNotFoundError(f"{name} in {folder} cannot be used: {reason}; train it with `{command}` "
                                "(or `dvc repro`)")
    print(f"{name}: {reason}; training it", flush=True)
    frames = train_frames()
    write_part(frames, expected_meta, folder, names)
    return frames


def ensure_part(study: BenchmarkStudyConfig, part: int, parts: int, cache_dir: str | Path, folder: str | Path, *,
                perturbations, perturbation_seed: int, train: bool = True) -> dict[str, pd.DataFrame]:
    """Part `part` from `folder` where it is current, else trained through the run cache and written
    there (`train=False`: an error instead)."""
    expected = part_meta(study, part, parts, perturbations, perturbation_seed)
    return reuse_or_train(
        folder, FRAMES, expected, lambda frames, meta: stale_reason(study, part, parts, frames, meta, expected),
        lambda: train_part(study, part, parts, cache_dir, perturbations=perturbations,
                           perturbation_seed=perturbation_seed),
        train=train, name=f"part {part} of {part_count(study, parts)} (seeds {list(part_seeds(study, part, parts))})",
        command=f"python -m mcrlib.studies.benchmark_parts --part {part}")


def assemble(study: BenchmarkStudyConfig, parts: int, cache_dir: str | Path, parts_dir: str | Path, *,
             perturbations, perturbation_seed: int, train: bool = True) -> dict[str, pd.DataFrame]:
    """{"runs", "search", "errors", "robustness"} of the whole study from its parts (each
    `ensure_part`), in the order one run of the whole study gives: dataset, then seed, then method."""
    found = [ensure_part(study, k, parts, cache_dir, Path(parts_dir) / str(k), perturbations=perturbations,
                         perturbation_seed=perturbation_seed, train=train) for k in range(part_count(study, parts))]
    order = {CELL: list(study.datasets), "seed": list(study.seeds)}

    def in_study_order(frame: pd.DataFrame) -> pd.DataFrame:
        if frame.empty:
            return frame
        position = frame[CELL].map(order[CELL].index) * len(order["seed"]) + frame["seed"].map(order["seed"].index)
        return frame.iloc[position.argsort(kind="stable")].reset_index(drop=True)

    joined = {name: in_study_order(pd.concat([p[name] for p in found], ignore_index=True))
              for name in ("runs", "errors", "robustness")}
    return {**joined, "search": found[0]["search"]}   # every part ran the same search


def load_part_inputs(profile: str, root: str | Path) -> tuple[BenchmarkStudyConfig, int, dict]:
    """The study (calibrated where marked, locations resolved from `root`), its number of parts and
    the error analysis's section, as the benchmarks notebook loads them."""
    params = load_stage(profile, "benchmarks", root, reads=("parts", "error_analysis"))
    section = params["benchmarks"]
    study = load_study({**section, "datasets": resolve_datasets(section["datasets"], root)})
    parts = (params["parts"] or {}).get("benchmarks", 1)
    part_count(study, parts)   # validated here, where the notebook and the stages start
    return study, parts, params["error_analysis"]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mcrlib.studies.benchmark_parts",
                                     description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", type=int, required=True, help="which part, from 0 to parts.benchmarks - 1")
    parser.add_argument("--profile", default=BASE_PROFILE, help="a profile (default: params.yaml itself)")
    parser.add_argument("--cache-dir", default=os.environ.get("MCR_RUN_CACHE", ".mcr-cache/runs"))
    args = parser.parse_args(argv)
    root = Path.cwd()
    try:
        study, parts, errors_section = load_part_inputs(args.profile, root)
        folder = root / results_root(args.profile) / "benchmarks" / "parts" / str(args.part)
        part_seeds(study, args.part, parts)
        ensure_part(study, args.part, parts, args.cache_dir, folder, perturbations=errors_section["perturbations"],
                    perturbation_seed=errors_section["perturbation_seed"])
    except (ConfigError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"part {args.part}: {folder}")


if __name__ == "__main__":
    main()
