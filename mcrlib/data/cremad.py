"""CREMA-D (91 actors, 7,442 clips, 6 emotions) from its public layout to prepared tensors.

Layout (public GitHub repository CheyneyComputerScience/CREMA-D, media in Git LFS):
    <root>/AudioWAV/<clip>.wav        16 kHz mono WAV
    <root>/VideoFlash/<clip>.flv      FLV video (with an audio track, unused)
    <root>/VideoDemographics.csv      ActorID, Age, Sex, Race, Ethnicity
    <root>/SentenceFilenames.csv      optional: the clips this copy holds (Filename column)
Clip names: {actor}_{sentence}_{emotion}_{level}; label from the emotion: NEU 0, HAP 1, SAD 2,
FEA 3, DIS 4, ANG 5 (the release's order). The root is data.cremad.root, else $MCR_CREMAD_ROOT.

    python -m mcrlib.data.prepare cremad      # the DVC stage prepare@cremad (params: data.cremad)

The official metadata ship with this package (mcrlib/data/cremad_meta: the corpus'
SentenceFilenames.csv of 7,442 clips and VideoDemographics.csv; `official_clips`,
`official_actors` in mcrlib.data.cremad_clips), and `locate` checks a copy against them:
- The clips a copy must hold are those of its own SentenceFilenames.csv (the corpus ships the
  official list, so a clone must hold all 7,442; a copy whose list names fewer declares a subset,
  as the test fixtures do), else, without that file, every clip of the official list.
- expect_complete (default true): a clip the copy must hold whose WAV or FLV is absent or still a
  Git LFS pointer is an error naming how many clips lack media, the first ones with their files,
  what was expected and how to fix it (the source, `git lfs pull`). With expect_complete: false
  (a partial copy on purpose) such clips are skipped, listed in report.json's `skipped` with the
  reason, and warned about; a copy without its own list then must hold only the clips it has files for.
- Names that are not official clips are never read: listed names go into `skipped` ("not a
  CREMA-D clip name" / "not in the official CREMA-D clip list"); report.json's `unexpected` lists
  them and every file under AudioWAV/ and VideoFlash/ that is not the media of an official clip
  (a warning names them too).
- report.json counts the official clips not preprocessed because the copy lacks them
  (`official_clips_absent`, with the first names in `official_clips_absent_examples`).

Media (mcrlib.data.media): audio follows the release's ResNet route (`CramedD_Dataloader`): mono
at 22,050 Hz, tiled x3, cut to 3 s, clipped to [-1, 1], STFT (n_fft 512, hop 353, periodic Hann,
centred with zero padding), log(|S| + 1e-7) -> (1, 257, 188). The release loads with librosa
(soxr resampling); here torchaudio's sinc resampler does it, so values differ slightly, shapes and
scales do not. Video: PyAV decodes the FLV; the first frame of each second (time measured from
the first decoded frame) is kept, up to `n_frames`, resized to image_size x image_size (bilinear,
PIL, as torchvision's Resize on a PIL image), stored uint8 (T, 3, H, W).

`prepare` (PrepareConfig) writes features.pt (audio (N, 1, 257, 188) float32, visual (N, 3, 3,
H, W) uint8, label) for every usable clip, index.json (clips, actors, settings) and report.json
(what was skipped, padded or trimmed and why; clips/actors/labels per split of every fold of the
release's split and of the actor-table folds; which clips the release leaves out). `load`
(LoadConfig) cuts the actor-disjoint fold out of the prepared folder, so the folds share one
preprocessing pass.
"""
from __future__ import annotations

import functools
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from mcrlib.atomic import save_torch, write_text
from mcrlib.config import check
from mcrlib.data import media
from mcrlib.data.cremad_clips import (ACTOR_SPLIT, CLIP_NAME, EMOTIONS, SPLITS, check_split, expected_files, fold_rows,
                                      official_clips, official_files, parse_clip, read_actor_table, read_clip_list,
                                      split_report)
from mcrlib.data.spec import DatasetSpec, location, resolve_root
from mcrlib.data.tensors import TensorSplits
from mcrlib.errors import DataError

ROOT_ENV = "MCR_CREMAD_ROOT"
SOURCE = ("the public GitHub repository CheyneyComputerScience/CREMA-D "
          "(https://github.com/CheyneyComputerScience/CREMA-D; its media are in Git LFS: "
          "clone it, then run `git lfs pull`)")
LAYOUT = ("<root>/AudioWAV/<clip>.wav, <root>/VideoFlash/<clip>.flv and <root>/VideoDemographics.csv "
          "(ActorID column); optionally <root>/SentenceFilenames.csv (Filename column) listing the clips "
          "the copy holds (else it must hold every clip of the official list)")
OFFICIAL_META = "mcrlib/data/cremad_meta"    # package data: the corpus' SentenceFilenames.csv, VideoDemographics.csv
FIX = ("To fix: the corpus comes from {source}. In a clone, install Git LFS (`git lfs install`), run "
       "`git lfs pull` in it and check that AudioWAV/ and VideoFlash/ hold every file. To preprocess a partial "
       "copy on purpose, set data.cremad.expect_complete: false (the clips without media are then skipped "
       "and listed in report.json).")
SHOWN = 5               # names quoted in an error or warning message
EXAMPLES = 20           # names of absent official clips kept in report.json
# The corpus' own README names these files; each one's outcome is always in the report.
KNOWN_DEFECTS = {
    "1076_MTI_SAD_XX": "no audio, very short (WAV and FLV)",
    "1076_MTI_NEU_XX": "FLV very short with no audio (the WAV is fine)",
    "1064_TIE_SAD_XX": "no duration",
    "1064_IEO_DIS_MD": "about one minute long, holding every emotion for that sentence",
}
LONG_CLIP_S = 10.0      # clips longer than this are listed as trimmed (the 3 s window cuts them)
FEATURES_VERSION = 1
PREPARED_FILES = ("features.pt", "index.json", "report.json")
# The preprocessing settings recorded in index.json and report.json, in their order there.
MEDIA_SETTINGS = ("sample_rate", "seconds", "n_fft", "hop_length", "tile", "n_frames", "fps", "image_size")


@dataclass(frozen=True)
class PrepareConfig:
    """What `prepare` reads (params.yaml's data.cremad)."""
    root: str = ""              # the corpus folder (LAYOUT); empty: $MCR_CREMAD_ROOT
    sample_rate: int = 22050    # Hz; paper A.2 / release ResNet route
    seconds: float = 3.0        # the audio window cut after tiling
    tile: int = 3               # the waveform is tiled this many times before the cut
    n_fft: int = 512            # STFT window: n_fft // 2 + 1 = 257 frequency bins
    hop_length: int = 353       # STFT hop: 188 frames in 3 s at 22,050 Hz
    n_frames: int = 3           # frames per clip, the first of each 1/fps-second slot
    fps: float = 1.0            # frame slots per second
    image_size: int = 224       # frames are resized to image_size x image_size
    expect_complete: bool = True   # every clip the copy must hold needs its media (see the module docstring)

    def __post_init__(self):
        check(isinstance(self.root, str), "data.cremad.root", self.root, "a folder path")
        check(isinstance(self.expect_complete, bool), "data.cremad.expect_complete", self.expect_complete,
              "true or false")
        check(self.sample_rate >= 1000, "data.cremad.sample_rate", self.sample_rate, "a rate in Hz >= 1000")
        check(self.seconds > 0, "data.cremad.seconds", self.seconds, "a duration in seconds > 0")
        check(self.tile >= 1, "data.cremad.tile", self.tile, "an integer >= 1")
        check(self.n_fft >= 16, "data.cremad.n_fft", self.n_fft, "an integer >= 16")
        check(1 <= self.hop_length <= self.n_fft, "data.cremad.hop_length", self.hop_length,
              f"an integer in [1, n_fft={self.n_fft}]")
        check(self.n_fft <= self.seconds * self.sample_rate, "data.cremad.n_fft", self.n_fft,
              "at most seconds * sample_rate samples")
        check(self.n_frames >= 1, "data.cremad.n_frames", self.n_frames, "an integer >= 1")
        check(self.fps > 0, "data.cremad.fps", self.fps, "frames per second > 0")
        check(self.image_size >= 8, "data.cremad.image_size", self.image_size, "an integer >= 8")


@dataclass(frozen=True)
class LoadConfig:
    """What a run reads (its data.params): the prepared folder, the split and the fold.

    split "release" (the default): the MCR authors' 5 actor-disjoint folds of 5,820 clips
    (mcrlib.data.cremad_clips.release_folds; fold f is their `--fold f`, the paper's runs use
    0-2), so a run compares with the paper fold by fold; clips the release leaves out are in no
    split. split "actors": n_folds folds built here from the actor table (split_seed, val_share)."""
    prepared: str = location("data/processed/cremad")   # written by `prepare`
    fold: int = 0               # which fold of the split
    split: str = "release"      # "release" (the authors' folds) or "actors" (built from the actor table)
    n_folds: int = ACTOR_SPLIT["n_folds"]          # "actors" only: how many actor-disjoint folds
    split_seed: int = ACTOR_SPLIT["split_seed"]    # "actors" only: partitions the actors, fixing the folds
    val_share: float = ACTOR_SPLIT["val_share"]    # "actors" only: each fold's non-test actors held out for val

    def __post_init__(self):
        check_split(self)


# ---------------------------------------------------------------- the raw folder
def _count(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def _shown(names: list[str]) -> str:
    return ", ".join(names[:SHOWN]) + (f", ... ({len(names):,} in all)" if len(names) > SHOWN else "")


def _missing_error(what: str, root: Path, missing: list[str]) -> DataError:
    return DataError(f"CREMA-D at {root}: {what}: {_shown(missing)}. Expected layout: {LAYOUT}. "
                     f"The corpus comes from {SOURCE}.")


def _is_lfs_pointer(path: Path) -> bool:
    """A small file (real media are far larger) that starts as a Git LFS pointer does."""
    return path.stat().st_size <= 1024 and path.read_bytes().startswith(b"version https://git-lfs")


@dataclass
class Copy:
    """What `locate` found in a copy of the corpus."""
    root: Path
    clips: list[str]                  # the clips to read, in order
    actors: dict[int, str]            # its VideoDemographics.csv
    skipped: list[dict]               # {"clip", "reason"}: names of the copy that are not read
    unexpected: list[str]             # names and files that are not part of the official corpus
    official_absent: list[str]        # official clips the copy does not hold (in the official order)
    expected_from: str                # where the clips it must hold come from (for messages)


def _lacking(base: Path, clip: str) -> list[tuple[str, str]]:
    """(file, what is wrong) for each media file of clip that is absent or a Git LFS pointer."""
    wrong = []
    for f in expected_files(clip):
        path = base / f
        if not path.is_file():
            wrong.append((f, "missing"))
        elif _is_lfs_pointer(path):
            wrong.append((f, "a Git LFS pointer, not media"))
    return wrong


def _media_error(base: Path, lacking: dict[str, list[tuple[str, str]]], n_expected: int,
                 expected_from: str) -> DataError:
    flat = [w for ws in lacking.values() for _, w in ws]
    n_missing, n_pointers = flat.count("missing"), len(flat) - flat.count("missing")
    facts = []
    if n_missing:
        facts.append(f"{n_missing:,} of {2 * n_expected:,} media files {'is' if n_missing == 1 else 'are'} missing")
    if n_pointers:
        facts.append(_count(n_pointers, "media file is a Git LFS pointer", "media files are Git LFS pointers")
                     + ", not media")
    first = [f"{c} ({', '.join(f if w == 'missing' else f'{f}: Git LFS pointer' for f, w in ws)})"
             for c, ws in lacking.items()]
    return DataError(
        f"CREMA-D at {base}: {len(lacking):,} of the {n_expected:,} clips expected "
        f"{'lacks' if len(lacking) == 1 else 'lack'} media "
        f"({' and '.join(facts)}): {_shown(first)}. The clips expected are {expected_from}. "
        f"{FIX.format(source=SOURCE)} Expected layout: {LAYOUT}.")


def locate(base: Path, *, expect_complete: bool = True) -> Copy:
    """The copy of the corpus in the folder base (from resolve_root), checked against the official
    clip list (module docstring). Raises DataError naming the layout, what is missing and where
    the corpus comes from."""
    needed = ["AudioWAV", "VideoFlash", "VideoDemographics.csv"]
    absent = [n for n in needed if not (base / n).exists()]
    if absent:
        raise _missing_error("missing", base, absent)
    actors = read_actor_table(base / "VideoDemographics.csv")
    official = official_clips()
    official_set, known_files = set(official), official_files()
    listing = base / "SentenceFilenames.csv"
    present = [p for d in ("AudioWAV", "VideoFlash") for p in sorted((base / d).iterdir())
               if p.is_file() and not p.name.startswith(".")]      # hidden files (.DS_Store) aside
    if listing.exists():
        names = read_clip_list(listing)
        expected_from = f"those of {listing} ({len(names):,} clips)"
    else:
        names = sorted({p.stem for p in present if p.suffix in (".wav", ".flv")})
        expected_from = (f"the official clip list shipped with mcrlib ({OFFICIAL_META}/SentenceFilenames.csv, "
                         f"{len(official):,} clips), as {base} has no SentenceFilenames.csv of its own")
    if not names:
        raise _missing_error("no clips", base, ["AudioWAV/*.wav", "VideoFlash/*.flv"])
    skipped = [{"clip": n, "reason": "not a CREMA-D clip name" if not CLIP_NAME.match(n) else
                f"not in the official CREMA-D clip list ({OFFICIAL_META}/SentenceFilenames.csv)"}
               for n in names if n not in official_set]
    held = [n for n in names if n in official_set]
    must_hold = held if listing.exists() or not expect_complete else sorted(official)
    unexpected = sorted({s["clip"] for s in skipped} if listing.exists() else set()) + sorted(
        f"{p.parent.name}/{p.name}" for p in present if f"{p.parent.name}/{p.name}" not in known_files)
    lacking = {c: w for c in must_hold if (w := _lacking(base, c))}
    if lacking and expect_complete:
        raise _media_error(base, lacking, len(must_hold), expected_from)
    if lacking:
        warnings.warn(f"CREMA-D at {base}: {len(lacking):,} of the {len(must_hold):,} clips expected "
                      f"{'lacks media and is' if len(lacking) == 1 else 'lack media and are'} skipped "
                      f"(expect_complete: false): {_shown(list(lacking))}", stacklevel=2)
        skipped += [{"clip": c, "reason": "; ".join(f"{f}: {w}" for f, w in ws) +
                     (" (run `git lfs pull`)" if any(w != "missing" for _, w in ws) else "")}
                    for c, ws in lacking.items()]
    if unexpected:
        warnings.warn(f"CREMA-D at {base}: {_count(len(unexpected), 'name is', 'names are')} not part of the "
                      f"official corpus "
                      f"({OFFICIAL_META}/SentenceFilenames.csv) and not read: {_shown(unexpected)}",
                      stacklevel=2)
    clips = [c for c in must_hold if c not in lacking]
    strangers = sorted({parse_clip(c)[0] for c in clips} - set(actors))
    if strangers:
        raise DataError(f"{base / 'VideoDemographics.csv'} lacks actors {strangers[:5]} "
                         f"({len(strangers)} in all) that name clips: the actor table and the media disagree")
    read = set(clips)
    return Copy(root=base, clips=clips, actors=actors, skipped=skipped, unexpected=unexpected,
                official_absent=[c for c in official if c not in read], expected_from=expected_from)


# ---------------------------------------------------------------- prepare and load
def process_clip(clip: str, *, base: Path, cfg: PrepareConfig) -> dict:
    """Features of one clip, or the reason it is skipped. Never raises for a bad file."""
    wav, flv = expected_files(clip)
    result = {"clip": clip, "ok": False}
    try:
        wave, rate = media.read_wav(base / wav)
    except media.MediaError as err:
        return {**result, "reason": f"{wav}: {err}"}
    try:
        frames, facts = media.read_frames_at_fps(base / flv, n_frames=cfg.n_frames, fps=cfg.fps,
                                                 size=cfg.image_size)
    except media.MediaError as err:
        return {**result, "reason": f"{flv}: {err}"}
    spec, padded = media.log_spectrogram(wave, rate, sample_rate=cfg.sample_rate, seconds=cfg.seconds,
                                         tile=cfg.tile, n_fft=cfg.n_fft, hop_length=cfg.hop_length)
    return {**result, "ok": True, "audio": spec.numpy(), "visual": frames,
            "audio_s": len(wave) / rate, "audio_padded": padded, **facts}


def _run(clips: list[str], base: Path, cfg: PrepareConfig, workers: int, progress: bool):
    """Results in clip order. Threads: soundfile, PyAV, PIL and torch release the GIL while
    they decode, resize and transform, and threads cost no process start."""
    from tqdm.auto import tqdm
    one = functools.partial(process_clip, base=base, cfg=cfg)
    bar = {"total": len(clips), "desc": "CREMA-D clips", "unit": "clip", "disable": not progress}
    if workers <= 1:
        yield from tqdm(map(one, clips), **bar)
        return
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(workers) as pool:
        yield from tqdm(pool.map(one, clips), **bar)


def _settings(cfg: PrepareConfig) -> dict:
    return {**{k: getattr(cfg, k) for k in MEDIA_SETTINGS}, "version": FEATURES_VERSION}


def prepare(cfg: PrepareConfig, out_dir: str | Path, *, workers: int | None = None,
            progress: bool = True) -> Path:
    """Read every clip of the copy at cfg.root (else $MCR_CREMAD_ROOT), write features.pt,
    index.json and report.json (last) into out_dir; returns out_dir. `workers` decoding threads
    (default $MCR_DATA_WORKERS, else up to 8)."""
    out = Path(out_dir)
    copy = locate(resolve_root(cfg.root, ROOT_ENV, layout=LAYOUT, source=SOURCE, key="data.cremad.root"),
                  expect_complete=cfg.expect_complete)
    base, clips, actors = copy.root, copy.clips, copy.actors
    if workers is None:
        workers = int(os.environ.get("MCR_DATA_WORKERS", min(8, os.cpu_count() or 1)))
    n = len(clips)
    n_time = 1 + round(cfg.seconds * cfg.sample_rate) // cfg.hop_length
    audio = torch.empty((n, 1, cfg.n_fft // 2 + 1, n_time), dtype=torch.float32)
    visual = torch.empty((n, cfg.n_frames, 3, cfg.image_size, cfg.image_size), dtype=torch.uint8)
    kept, skipped, padded_video, padded_audio, long_clips, notes = [], [], [], [], [], []
    skipped += copy.skipped
    outcome, n_cut = {s["clip"]: f"skipped: {s['reason']}" for s in copy.skipped}, 0
    for r in _run(clips, base, cfg, workers, progress):
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
        raise DataError(f"CREMA-D at {base}: no usable clip among {n}: {skipped[:3]}")
    if len(kept) < n:           # torch.save writes whole storages: drop the unused tail
        audio, visual = audio[:len(kept)].clone(), visual[:len(kept)].clone()
    parsed = [parse_clip(c) for c in kept]
    labels = [p[1] for p in parsed]
    save_torch({"audio": audio, "visual": visual, "label": torch.tensor(labels)}, out / "features.pt")
    write_text(json.dumps({"settings": _settings(cfg), "clips": kept,
                           "actors": {str(a): s for a, s in sorted(actors.items())}}, indent=0),
               out / "index.json")
    report = {
        "dataset": "CREMA-D", "source": SOURCE, "root": str(base), "settings": _settings(cfg),
        "clips_listed": n + len(copy.skipped), "clips_kept": len(kept), "skipped": skipped,
        "expect_complete": cfg.expect_complete, "official_clips": len(official_clips()),
        "official_clips_absent": len(copy.official_absent),
        "official_clips_absent_examples": copy.official_absent[:EXAMPLES],
        "unexpected": copy.unexpected,
        "padded_video": padded_video, "padded_audio": padded_audio, "trimmed_long": long_clips,
        "notes": notes,
        "audio_longer_than_window": n_cut,
        "known_defects": {c: {"readme": why, "outcome": outcome.get(c, "not in this copy")}
                          for c, why in KNOWN_DEFECTS.items()},
        **split_report(labels, kept, actors),
    }
    write_text(json.dumps(report, indent=1), out / "report.json")
    return out


def load(cfg: LoadConfig) -> TensorSplits:
    """The fold cfg.fold of the folder written by `prepare` (cfg.prepared): modalities "audio"
    (1, 257, 188) float32 and "visual" (n_frames, 3, H, W) uint8, "label" long in 0..5."""
    folder = Path(cfg.prepared).expanduser()
    absent = [n for n in PREPARED_FILES if not (folder / n).is_file()]
    if absent:
        raise DataError(f"no complete prepared CREMA-D folder at {folder} (missing {', '.join(absent)}): "
                        f"run `python -m mcrlib.data.prepare cremad` (dvc repro prepare@cremad) first")
    index = json.loads((folder / "index.json").read_text())
    actors = {int(a): s for a, s in index["actors"].items()}
    feats = torch.load(folder / "features.pt", mmap=True, weights_only=True)
    rows = fold_rows(cfg, index["clips"], actors)
    splits = {}
    for s in SPLITS:
        idx = torch.tensor(rows[s], dtype=torch.long)
        splits[s] = {k: feats[k].index_select(0, idx) for k in ("audio", "visual", "label")}
    return TensorSplits(splits, modalities=("audio", "visual"), n_classes=len(EMOTIONS))


SPEC = DatasetSpec(name="cremad", load_config=LoadConfig, load=load, prepare_config=PrepareConfig,
                   prepare=prepare, encoders={"audio": "resnet2d", "visual": "frames"},
                   root_env=ROOT_ENV, source=SOURCE)
