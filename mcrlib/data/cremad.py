"""CREMA-D (91 actors, 7,442 clips, 6 emotions) from its public layout to cached tensors.

Layout (public GitHub repository CheyneyComputerScience/CREMA-D, media in Git LFS):
    <root>/AudioWAV/<clip>.wav        16 kHz mono WAV
    <root>/VideoFlash/<clip>.flv      FLV video (with an audio track, unused)
    <root>/VideoDemographics.csv      ActorID, Age, Sex, Race, Ethnicity
    <root>/SentenceFilenames.csv      optional: the list of every clip (Filename column)
Clip names: {actor}_{sentence}_{emotion}_{level}; label from the emotion: NEU 0, HAP 1, SAD 2,
FEA 3, DIS 4, ANG 5 (the release's order).

    python -m mcrlib.data.prepare cremad      # the DVC stage prepare@cremad (params: data.cremad)

`preprocess` writes features.pt (audio (N, 1, 257, 188) float32, visual (N, 3, 3, H, W) uint8,
label) for every usable clip, index.json (clips, actors, settings) and report.json (what was
skipped, padded or trimmed and why; clips/actors/labels per split of every fold). `load` cuts
the actor-disjoint fold out of that cache, so the three folds share one preprocessing pass.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from mcrlib.atomic import save_torch, write_text
from mcrlib.config import check
from mcrlib.data.cremad_clips import (CLIP_NAME, EMOTIONS, SPLITS, MediaSettings, actor_folds, expected_files,
                                      parse_clip, process_clip, read_actor_table, read_clip_list, split_rows)
from mcrlib.data.location import project_path
from mcrlib.data.tensors import TensorSplits

SOURCE = ("the public GitHub repository CheyneyComputerScience/CREMA-D "
          "(https://github.com/CheyneyComputerScience/CREMA-D; its media are in Git LFS: "
          "clone it, then run `git lfs pull`)")
LAYOUT = ("<root>/AudioWAV/<clip>.wav, <root>/VideoFlash/<clip>.flv and <root>/VideoDemographics.csv "
          "(ActorID column); optionally <root>/SentenceFilenames.csv (Filename column) listing every clip")
# The corpus' own README names these files; each one's outcome is always in the report.
KNOWN_DEFECTS = {
    "1076_MTI_SAD_XX": "no audio, very short (WAV and FLV)",
    "1076_MTI_NEU_XX": "FLV very short with no audio (the WAV is fine)",
    "1064_TIE_SAD_XX": "no duration",
    "1064_IEO_DIS_MD": "about one minute long, holding every emotion for that sentence",
}
LONG_CLIP_S = 10.0      # clips longer than this are listed as trimmed (the 3 s window cuts them)
FEATURES_VERSION = 1


@dataclass(frozen=True)
class CremadConfig:
    root: str = field(default_factory=lambda: os.environ.get("MCR_CREMAD_ROOT", ""))
    processed: str = "data/processed/cremad"   # the cache `build` fills and reads
    fold: int = 0               # which of the n_folds actor-disjoint folds
    n_folds: int = 3
    split_seed: int = 0         # partitions the actors; the folds are fixed by it
    val_share: float = 0.1      # share of each fold's non-test actors held out for validation
    sample_rate: int = 22050    # paper A.2 / release ResNet route
    seconds: float = 3.0
    tile: int = 3               # the waveform is tiled this many times before the cut
    n_fft: int = 512
    hop_length: int = 353
    n_frames: int = 3           # 1-fps frames per clip
    fps: float = 1.0
    image_size: int = 224

    def __post_init__(self):
        check(isinstance(self.root, str), "data.params.root", self.root, "a folder path")
        check(self.n_folds >= 2, "data.params.n_folds", self.n_folds, "an integer >= 2")
        check(0 <= self.fold < self.n_folds, "data.params.fold", self.fold,
              f"an integer in [0, n_folds={self.n_folds})")
        check(0 < self.val_share < 1, "data.params.val_share", self.val_share, "a share in (0, 1)")
        check(self.sample_rate >= 1000, "data.params.sample_rate", self.sample_rate, "a rate in Hz >= 1000")
        check(self.seconds > 0, "data.params.seconds", self.seconds, "a duration in seconds > 0")
        check(self.tile >= 1, "data.params.tile", self.tile, "an integer >= 1")
        check(self.n_fft >= 16, "data.params.n_fft", self.n_fft, "an integer >= 16")
        check(1 <= self.hop_length <= self.n_fft, "data.params.hop_length", self.hop_length,
              f"an integer in [1, n_fft={self.n_fft}]")
        check(self.n_fft <= self.seconds * self.sample_rate, "data.params.n_fft", self.n_fft,
              "at most seconds * sample_rate samples")
        check(self.n_frames >= 1, "data.params.n_frames", self.n_frames, "an integer >= 1")
        check(self.fps > 0, "data.params.fps", self.fps, "frames per second > 0")
        check(self.image_size >= 8, "data.params.image_size", self.image_size, "an integer >= 8")

    def media(self) -> MediaSettings:
        return MediaSettings(sample_rate=self.sample_rate, seconds=self.seconds, n_fft=self.n_fft,
                             hop_length=self.hop_length, tile=self.tile, n_frames=self.n_frames,
                             fps=self.fps, image_size=self.image_size)


# ---------------------------------------------------------------- the raw folder
def _missing_error(what: str, root: Path, missing: list[str], hint: str = "") -> FileNotFoundError:
    shown = ", ".join(missing[:5]) + (f", ... ({len(missing)} in all)" if len(missing) > 5 else "")
    return FileNotFoundError(f"CREMA-D at {root}: {what}: {shown}. Expected layout: {LAYOUT}. "
                             f"{hint}The corpus comes from {SOURCE}.")


def _is_lfs_pointer(path: Path) -> bool:
    if path.stat().st_size > 1024:
        return False
    return path.read_bytes().startswith(b"version https://git-lfs")


def locate(root: str) -> tuple[Path, list[str], dict[int, str], list[str]]:
    """(root, clips to read, actor table, names that are not clip names). Raises
    FileNotFoundError naming the layout, what is missing and where the corpus comes from."""
    if not root:
        raise FileNotFoundError(f"CREMA-D root is not set: set data.params.root (or MCR_CREMAD_ROOT) to "
                                f"a folder laid out as {LAYOUT}. The corpus comes from {SOURCE}.")
    base = Path(root).expanduser()
    if not base.is_dir():
        raise _missing_error("the root folder does not exist", base, [str(base)])
    needed = ["AudioWAV", "VideoFlash", "VideoDemographics.csv"]
    absent = [n for n in needed if not (base / n).exists()]
    if absent:
        raise _missing_error("missing", base, absent)
    actors = read_actor_table(base / "VideoDemographics.csv")
    listing = base / "SentenceFilenames.csv"
    if listing.exists():
        names = read_clip_list(listing)
    else:
        names = sorted({p.stem for p in (base / "AudioWAV").glob("*.wav")}
                       | {p.stem for p in (base / "VideoFlash").glob("*.flv")})
    if not names:
        raise _missing_error("no clips", base, ["AudioWAV/*.wav", "VideoFlash/*.flv"])
    clips, bad_names = [], []
    for name in names:
        (clips if CLIP_NAME.match(name) else bad_names).append(name)
    files = [f for c in clips for f in expected_files(c)]
    missing = [f for f in files if not (base / f).is_file()]
    if missing:
        raise _missing_error(f"{len(missing)} of {len(files)} media files are missing", base, missing)
    pointers = [f for f in files if _is_lfs_pointer(base / f)]
    if pointers:
        raise _missing_error(f"{len(pointers)} media files are Git LFS pointers, not media", base, pointers,
                             "Run `git lfs pull` in the clone. ")
    strangers = sorted({parse_clip(c)[0] for c in clips} - set(actors))
    if strangers:
        raise ValueError(f"{base / 'VideoDemographics.csv'} lacks actors {strangers[:5]} "
                         f"({len(strangers)} in all) that name clips: the actor table and the media disagree")
    return base, clips, actors, bad_names


# ---------------------------------------------------------------- preprocess and load
def _run(jobs, workers: int, progress: bool):
    """Results in job order. Threads: soundfile, PyAV, PIL and torch release the GIL while
    they decode, resize and transform, and threads cost no process start."""
    from tqdm.auto import tqdm
    bar = {"total": len(jobs), "desc": "CREMA-D clips", "unit": "clip", "disable": not progress}
    if workers <= 1:
        yield from tqdm(map(process_clip, jobs), **bar)
        return
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(workers) as pool:
        yield from tqdm(pool.map(process_clip, jobs), **bar)


def _settings(cfg: CremadConfig) -> dict:
    return {**asdict(cfg.media()), "version": FEATURES_VERSION}


def _split_summary(labels: list[int], clip_actors: list[int], folds) -> dict:
    names = {v: k for k, v in EMOTIONS.items()}
    summary = {}
    for f, fold in enumerate(folds):
        rows = split_rows(clip_actors, fold)
        summary[str(f)] = {s: {"clips": len(rows[s]), "actors": fold[s],
                               "labels": {names[k]: n for k, n in
                                          sorted(Counter(labels[i] for i in rows[s]).items())}}
                           for s in SPLITS}
    return summary


def preprocess(cfg: CremadConfig, out_dir: str | Path, *, workers: int | None = None,
               progress: bool = True) -> Path:
    """Read every clip under cfg.root, write features.pt, index.json and report.json (last, so
    its presence marks a complete cache) into out_dir; returns out_dir."""
    out = Path(out_dir)
    base, clips, actors, bad_names = locate(cfg.root)
    if workers is None:
        workers = int(os.environ.get("MCR_DATA_WORKERS", min(8, os.cpu_count() or 1)))
    media = cfg.media()
    jobs = [(c, *(str(base / f) for f in expected_files(c)), media) for c in clips]
    n = len(jobs)
    n_time = 1 + round(cfg.seconds * cfg.sample_rate) // cfg.hop_length
    audio = torch.empty((n, 1, cfg.n_fft // 2 + 1, n_time), dtype=torch.float32)
    visual = torch.empty((n, cfg.n_frames, 3, cfg.image_size, cfg.image_size), dtype=torch.uint8)
    kept, skipped, padded_video, padded_audio, long_clips, notes = [], [], [], [], [], []
    skipped += [{"clip": b, "reason": "not a CREMA-D clip name"} for b in bad_names]
    outcome, n_cut = {}, 0
    for r in _run(jobs, workers, progress):
        clip = r["clip"]
        if not r["ok"]:
            skipped.append({"clip": clip, "reason": r["reason"]})
            outcome[clip] = f"skipped: {r['reason']}"
            continue
        k = len(kept)
        audio[k] = torch.from_numpy(r["audio"])
        visual[k] = torch.from_numpy(r["visual"])
        kept.append(clip)
        said = []
        if r["frames_found"] < cfg.n_frames:
            padded_video.append({"clip": clip, "frames_found": r["frames_found"]})
            said.append(f"{r['frames_found']} of {cfg.n_frames} frames, the rest zero")
        if r["audio_padded"]:
            padded_audio.append({"clip": clip, "audio_s": round(r["audio_s"], 3)})
            said.append(f"audio of {r['audio_s']:.2f} s zero-padded")
        n_cut += r["audio_s"] > cfg.seconds
        long_s = max(r["audio_s"], r["duration_s"] or 0.0)
        if long_s > LONG_CLIP_S:
            long_clips.append({"clip": clip, "audio_s": round(r["audio_s"], 2),
                               "video_s": None if r["duration_s"] is None else round(r["duration_s"], 2)})
            said.append(f"{long_s:.1f} s long, trimmed to the first {cfg.seconds:g} s")
        if not r["has_audio_stream"]:
            notes.append({"clip": clip, "note": "the FLV has no audio stream (audio comes from the WAV)"})
            said.append("FLV without audio stream")
        if r["duration_s"] is None:
            notes.append({"clip": clip, "note": "the FLV reports no duration (frames taken by timestamp)"})
            said.append("FLV without duration")
        outcome[clip] = "kept" + (f": {'; '.join(said)}" if said else "")
    if not kept:
        raise ValueError(f"CREMA-D at {base}: no usable clip among {n}: {skipped[:3]}")
    if len(kept) < n:           # torch.save writes whole storages: drop the unused tail
        audio, visual = audio[:len(kept)].clone(), visual[:len(kept)].clone()
    parsed = [parse_clip(c) for c in kept]
    labels, clip_actors = [p[1] for p in parsed], [p[0] for p in parsed]
    save_torch({"audio": audio, "visual": visual, "label": torch.tensor(labels)}, out / "features.pt")
    write_text(json.dumps({"root": str(base), "settings": _settings(cfg), "clips": kept,
                           "actors": {str(a): s for a, s in sorted(actors.items())}}, indent=0),
               out / "index.json")
    folds = actor_folds(actors, cfg.n_folds, cfg.split_seed, cfg.val_share)
    report = {
        "dataset": "CREMA-D", "source": SOURCE, "root": str(base), "settings": _settings(cfg),
        "clips_listed": n + len(bad_names), "clips_kept": len(kept), "skipped": skipped,
        "padded_video": padded_video, "padded_audio": padded_audio, "trimmed_long": long_clips,
        "notes": notes,
        "audio_longer_than_window": n_cut,
        "known_defects": {c: {"readme": why, "outcome": outcome.get(c, "not in this copy")}
                          for c, why in KNOWN_DEFECTS.items()},
        "split": {"n_folds": cfg.n_folds, "split_seed": cfg.split_seed, "val_share": cfg.val_share},
        "folds": _split_summary(labels, clip_actors, folds),
    }
    write_text(json.dumps(report, indent=1), out / "report.json")
    return out


def _check_cache(cfg: CremadConfig, cache: Path) -> dict:
    absent = [n for n in ("features.pt", "index.json", "report.json") if not (cache / n).is_file()]
    if absent:
        raise FileNotFoundError(f"no complete CREMA-D cache at {cache} (missing {', '.join(absent)}): "
                                f"run `python -m mcrlib.data.prepare cremad` (dvc repro prepare@cremad) first")
    index = json.loads((cache / "index.json").read_text())
    if index["settings"] != _settings(cfg):
        changed = sorted(k for k in _settings(cfg) if index["settings"].get(k) != _settings(cfg)[k])
        raise ValueError(f"the CREMA-D cache at {cache} was made with other settings ({changed}): "
                         f"preprocess again")
    return index


def load(cfg: CremadConfig, cache_dir: str | Path) -> TensorSplits:
    """The fold cfg.fold of the cache written by `preprocess`: modalities "audio" (1, 257, 188)
    float32 and "visual" (n_frames, 3, H, W) uint8, "label" long in 0..5."""
    cache = Path(cache_dir)
    index = _check_cache(cfg, cache)
    actors = {int(a): s for a, s in index["actors"].items()}
    folds = actor_folds(actors, cfg.n_folds, cfg.split_seed, cfg.val_share)
    feats = torch.load(cache / "features.pt", mmap=True, weights_only=True)
    rows = split_rows([parse_clip(c)[0] for c in index["clips"]], folds[cfg.fold])
    splits = {}
    for s in SPLITS:
        idx = torch.tensor(rows[s], dtype=torch.long)
        splits[s] = {k: feats[k].index_select(0, idx) for k in ("audio", "visual", "label")}
    return TensorSplits(splits, modalities=("audio", "visual"), n_classes=len(EMOTIONS))


def build(cfg: CremadConfig) -> TensorSplits:
    """The registry's builder: preprocess into cfg.processed unless a cache made from the same
    root with the same settings is there, then load cfg.fold."""
    cache = project_path(cfg.processed)
    try:
        index = _check_cache(cfg, cache)
        fresh = bool(cfg.root) and Path(index["root"]) != Path(cfg.root).expanduser()
    except (FileNotFoundError, ValueError):
        fresh = True
    if fresh:
        preprocess(cfg, cache)
    return load(cfg, cache)
