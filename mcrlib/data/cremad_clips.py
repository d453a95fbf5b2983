"""CREMA-D's metadata: clip names (actor, label), actor tables, clip lists, the official
lists shipped with mcrlib, and the actor-disjoint folds. The media are decoded by
mcrlib.data.media (read_wav, log_spectrogram, read_frames_at_fps).

Names: {actor}_{sentence}_{emotion}_{level}; label NEU 0, HAP 1, SAD 2, FEA 3, DIS 4, ANG 5.
"""
from __future__ import annotations

import csv
import functools
import re
from collections import Counter
from importlib import resources
from pathlib import Path

import numpy as np

from mcrlib.config import check
from mcrlib.errors import DataError

EMOTIONS = {"NEU": 0, "HAP": 1, "SAD": 2, "FEA": 3, "DIS": 4, "ANG": 5}
SPLITS = ("train", "val", "test")
CLIP_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_(NEU|HAP|SAD|FEA|DIS|ANG)_(LO|MD|HI|XX)$")


# ---------------------------------------------------------------- names, actors and clip lists
def parse_clip(name: str) -> tuple[int, int]:
    """(actor id, label) of a clip name such as 1001_DFA_ANG_XX."""
    match = CLIP_NAME.match(name)
    if not match:
        raise DataError(f"{name!r} is not a CREMA-D clip name ({{actor}}_{{sentence}}_{{emotion}}_{{level}}, "
                         f"emotion one of {list(EMOTIONS)})")
    return int(match.group(1)), EMOTIONS[match.group(3)]


def expected_files(clip: str) -> tuple[str, str]:
    return f"AudioWAV/{clip}.wav", f"VideoFlash/{clip}.flv"


def read_actor_table(path: Path) -> dict[int, str]:
    """ActorID -> sex (the stratum used to balance the folds; "" when the column is absent)."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "ActorID" not in rows[0]:
        raise DataError(f"{path} has no ActorID column: expected the corpus' VideoDemographics.csv")
    return {int(r["ActorID"]): (r.get("Sex") or "").strip() for r in rows}


def read_clip_list(path: Path) -> list[str]:
    with open(path, newline="") as fh:
        return [r["Filename"].strip() for r in csv.DictReader(fh) if r.get("Filename", "").strip()]


# ---------------------------------------------------------------- the official metadata
def _official_file(name: str):
    return resources.files("mcrlib.data") / "cremad_meta" / name


@functools.cache
def official_clips() -> tuple[str, ...]:
    """The corpus' 7,442 clip names, in the order of its SentenceFilenames.csv (package data)."""
    with resources.as_file(_official_file("SentenceFilenames.csv")) as path:
        return tuple(read_clip_list(path))


@functools.cache
def _official_actors() -> tuple[tuple[int, str], ...]:
    with resources.as_file(_official_file("VideoDemographics.csv")) as path:
        return tuple(read_actor_table(path).items())


def official_actors() -> dict[int, str]:
    """ActorID -> sex of the corpus' 91 actors (its VideoDemographics.csv, package data)."""
    return dict(_official_actors())


@functools.cache
def official_files() -> frozenset[str]:
    """AudioWAV/<clip>.wav and VideoFlash/<clip>.flv of every official clip."""
    return frozenset(f for c in official_clips() for f in expected_files(c))


# ---------------------------------------------------------------- the release's folds
RELEASE_FOLDS = 5
RELEASE_CLIPS = 5820


@functools.cache
def release_folds() -> dict[str, tuple[str, ...]]:
    """The MCR authors' CREMA-D split (package data `release_folds.tsv`, from their
    data_splits_VALV): clip stem -> its split (train/val/test) in each of the 5 folds. Fold f is
    the release's key f + 1, as its `--fold f` reads it. Only the release's 5,820 clips appear."""
    with resources.as_file(_official_file("release_folds.tsv")) as path:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
    columns = [f"fold{f + 1}" for f in range(RELEASE_FOLDS)]
    return {r["clip"]: tuple(r[c] for c in columns) for r in rows}


def release_split_rows(clips: list[str], fold: int) -> dict[str, list[int]]:
    """Row numbers of each split of release fold `fold`, given each row's clip stem; a clip the
    release does not list is in no split (see `outside_release`)."""
    assignment = release_folds()
    rows = {s: [] for s in SPLITS}
    for i, clip in enumerate(clips):
        if clip in assignment:
            rows[assignment[clip][fold]].append(i)
    return rows


def outside_release(clips: list[str]) -> dict:
    """Which of a prepared corpus' clips the release's folds leave out, and which release clips
    the corpus lacks, with why (for the data report)."""
    assignment = release_folds()
    kept = set(clips)
    outside = [c for c in clips if c not in assignment]
    absent = sorted(set(assignment) - kept)
    return {"release_clips": len(assignment), "clips_in_release": len(clips) - len(outside),
            "clips_outside_release": len(outside), "outside_examples": outside[:10],
            "outside_why": "the release keeps a clip only where its WAV, its 1-fps frames and its face features all "
                           "exist (its preprocessing found no face, or no frames, in the others); these clips are "
                           "in no split of the release folds",
            "release_clips_absent": len(absent), "absent_examples": absent[:10],
            "absent_why": "listed by the release but not prepared from this copy (missing from the copy, or "
                          "skipped by prepare: see `skipped`); its folds are smaller by these clips"}


def release_summary(labels: list[int], clips: list[str]) -> dict:
    """Per release fold and split: clips, actors and clips per emotion (the data report's `folds`)."""
    names = {v: k for k, v in EMOTIONS.items()}
    summary = {}
    for f in range(RELEASE_FOLDS):
        rows = release_split_rows(clips, f)
        summary[str(f)] = {s: {"clips": len(rows[s]), "actors": sorted({parse_clip(clips[i])[0] for i in rows[s]}),
                               "labels": {names[k]: n for k, n in sorted(Counter(labels[i] for i in rows[s]).items())}}
                           for s in SPLITS}
    return summary


# the loaders' defaults for split "actors" (cremad's and cremad_faces' LoadConfig)
ACTOR_SPLIT = {"n_folds": 3, "split_seed": 0, "val_share": 0.1}


def check_split(cfg) -> None:
    """The split fields of a CREMA-D LoadConfig (cremad's and cremad_faces'), one validation path."""
    check(cfg.split in ("release", "actors"), "data.params.split", cfg.split,
          "'release' (the MCR authors' 5 folds) or 'actors' (n_folds folds from the actor table)")
    check(cfg.n_folds >= 2, "data.params.n_folds", cfg.n_folds, "an integer >= 2")
    folds = RELEASE_FOLDS if cfg.split == "release" else cfg.n_folds
    check(0 <= cfg.fold < folds, "data.params.fold", cfg.fold,
          f"an integer in [0, {folds})" + (" (the release has 5 folds)" if cfg.split == "release" else
                                           f" (n_folds={cfg.n_folds})"))
    check(0 < cfg.val_share < 1, "data.params.val_share", cfg.val_share, "a share in (0, 1)")


def fold_rows(cfg, clips: list[str], actors: dict[int, str]) -> dict[str, list[int]]:
    """Row numbers of each split of the fold `cfg` names, for a prepared folder's clips."""
    if cfg.split == "release":
        return release_split_rows(clips, cfg.fold)
    folds = actor_folds(actors, cfg.n_folds, cfg.split_seed, cfg.val_share)
    return split_rows([parse_clip(c)[0] for c in clips], folds[cfg.fold])


def split_report(labels: list[int], clips: list[str], actors: dict[int, str]) -> dict:
    """The data report's account of the splits: the release's folds (the default) with the clips it
    leaves out, and the actor-table folds of the loaders' defaults (ACTOR_SPLIT)."""
    folds = actor_folds(actors, ACTOR_SPLIT["n_folds"], ACTOR_SPLIT["split_seed"], ACTOR_SPLIT["val_share"])
    return {"split": "release (the MCR authors' data_splits_VALV; mcrlib/data/cremad_meta/README.md)",
            "release": outside_release(clips), "folds": release_summary(labels, clips),
            "actor_split": ACTOR_SPLIT, "actor_folds": split_summary(labels, [parse_clip(c)[0] for c in clips], folds)}



# ---------------------------------------------------------------- folds from the actor table
def actor_folds(actors: dict[int, str], n_folds: int = 3, seed: int = 0,
                val_share: float = 0.1) -> list[dict[str, list[int]]]:
    """Per fold, the train/val/test actor ids. The actors are shuffled by `seed`, grouped by
    sex (so every test group gets its share of each) and dealt round-robin into n_folds test
    groups; fold f tests on group f, validates on round(val_share * rest) of the other actors
    (at least one, drawn by (seed, f)) and trains on the remaining ones."""
    ids = sorted(actors)
    check(len(ids) >= n_folds + 2, "data.params.n_folds", n_folds,
          f"at most {max(len(ids) - 2, 0)} folds for {len(ids)} actors")
    order = np.random.default_rng(seed).permutation(ids).tolist()
    order.sort(key=lambda a: actors[a])                    # stable: random within each stratum
    groups = [sorted(order[g::n_folds]) for g in range(n_folds)]
    folds = []
    for f, test in enumerate(groups):
        rest = [a for a in ids if a not in set(test)]
        n_val = min(max(1, round(val_share * len(rest))), len(rest) - 1)
        val = sorted(np.random.default_rng([seed, f]).choice(rest, n_val, replace=False).tolist())
        folds.append({"train": [a for a in rest if a not in set(val)], "val": val, "test": test})
    return folds


def split_rows(clip_actors: list[int], fold: dict[str, list[int]]) -> dict[str, list[int]]:
    """Row numbers of each split, given each row's actor."""
    where = {a: s for s in SPLITS for a in fold[s]}
    rows = {s: [] for s in SPLITS}
    for i, a in enumerate(clip_actors):
        rows[where[a]].append(i)
    return rows


def split_summary(labels: list[int], clip_actors: list[int], folds) -> dict:
    """Per fold and split: clips, actors and clips per emotion (the data report's `folds`)."""
    names = {v: k for k, v in EMOTIONS.items()}
    summary = {}
    for f, fold in enumerate(folds):
        rows = split_rows(clip_actors, fold)
        summary[str(f)] = {s: {"clips": len(rows[s]), "actors": fold[s],
                               "labels": {names[k]: n for k, n in
                                          sorted(Counter(labels[i] for i in rows[s]).items())}}
                           for s in SPLITS}
    return summary
