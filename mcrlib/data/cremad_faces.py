"""CREMA-D for the pretrained-encoder ("Conformer") family: raw waveforms and per-frame face
descriptors (paper appendix A.3 and the release).

The copy of the corpus is found and checked as mcrlib.data.cremad does (`locate`: the same
layout, root data.cremad_faces.root, else $MCR_CREMAD_ROOT, the official clip list, expect_complete,
skipped and unexpected names), and the folds are cremad's (the release's by default).

    python -m mcrlib.data.prepare cremad_faces     # params: data.cremad_faces

Per clip:
- audio: the WAV (mcrlib.data.media.read_wav), mono, resampled to sample_rate (16 kHz: the
  corpus' own rate, so normally untouched), cut or zero-padded to `seconds` (default 4.0 s:
  CREMA-D's clips last about 2.5 s on average and rarely more than 4 s, so almost every clip is
  kept whole; report.json counts the clips cut and padded). Stored raw; `load` z-scores it with
  the train split's scalar mean and std (over the stored windows, padding included).
- video: every frame of VideoFlash/<clip>.flv (PyAV), up to max_frames (150, as the release
  truncates), through mcrlib.data.face_features: MTCNN's largest face per frame (its no-face
  rule), the crop described by a frozen EfficientNet-B2 (1,408 features a frame). Stored
  (max_frames, 1408) float32, zero past the clip's frames; `load` z-scores each feature with the
  train split's mean and std over valid frames only (padding stays 0).

`prepare` writes features.pt (audio (N, L) float32, visual (N, max_frames, 1408) float32,
n_frames (N,) long, label (N,) long), index.json (clips, actors, settings) and report.json
(cremad's skipped / unexpected / official-absent facts, the audio cut and padded, and the face
facts: frames with a face, frames filled by the no-face rule, clips without any face). The full
corpus makes a visual tensor of about 6.3 GB (7,442 x 150 x 1,408 float32).
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch
import torchaudio

from mcrlib.atomic import save_torch, write_text
from mcrlib.config import check
from mcrlib.data import media
from mcrlib.data.cremad import KNOWN_DEFECTS, LAYOUT, ROOT_ENV, SOURCE, locate
from mcrlib.data.cremad_clips import (ACTOR_SPLIT, EMOTIONS, SPLITS, check_split, expected_files, fold_rows, parse_clip,
                                      split_report)
from mcrlib.data.face_features import FACE_SIZE, N_FEATURES, FacePipeline
from mcrlib.data.spec import DatasetSpec, location, resolve_root
from mcrlib.data.tensors import TensorSplits
from mcrlib.errors import DataError

FEATURES_VERSION = 1
PREPARED_FILES = ("features.pt", "index.json", "report.json")
SETTINGS = ("sample_rate", "seconds", "max_frames", "weights", "face_size", "thresholds", "min_face_size",
            "factor")
STD_FLOOR = 1e-6        # a constant feature keeps std 1 (it is only centred)


@dataclass(frozen=True)
class PrepareConfig:
    """What `prepare` reads (params.yaml's data.cremad_faces)."""
    root: str = ""                  # the corpus folder (cremad's LAYOUT); empty: $MCR_CREMAD_ROOT
    sample_rate: int = 16000        # Hz; the raw waveform (CREMA-D's WAVs are 16 kHz)
    seconds: float = 4.0            # the waveform window: cut or zero-padded (module docstring)
    max_frames: int = 150           # frames per clip kept (the release truncates to 150)
    weights: str = "IMAGENET1K_V1"  # EfficientNet-B2: a torchvision weights name, a state-dict file, or "random"
    face_size: int = FACE_SIZE      # crops resized / centre-cropped to this (288: the weights' transforms)
    thresholds: tuple[float, ...] = (0.6, 0.7, 0.7)   # MTCNN's P-, R-, O-net thresholds (facenet-pytorch's defaults)
    min_face_size: int = 20         # MTCNN: smallest face searched for, in pixels
    factor: float = 0.709           # MTCNN: image pyramid scale step
    device: str = "auto"            # "auto" (CUDA when available), "cpu" or "cuda"; not a setting of the data
    batch_size: int = 32            # frames per MTCNN / EfficientNet batch
    expect_complete: bool = True    # every clip the copy must hold needs its media (as data.cremad)

    def __post_init__(self):
        key = "data.cremad_faces."
        check(isinstance(self.root, str), key + "root", self.root, "a folder path")
        check(isinstance(self.expect_complete, bool), key + "expect_complete", self.expect_complete, "true or false")
        check(self.sample_rate >= 1000, key + "sample_rate", self.sample_rate, "a rate in Hz >= 1000")
        check(self.seconds > 0, key + "seconds", self.seconds, "a duration in seconds > 0")
        check(self.max_frames >= 1, key + "max_frames", self.max_frames, "an integer >= 1")
        check(isinstance(self.weights, str) and self.weights != "", key + "weights", self.weights,
              "a torchvision EfficientNet_B2_Weights name, a state-dict file or 'random'")
        check(self.face_size >= 16, key + "face_size", self.face_size, "an integer >= 16")
        check(isinstance(self.thresholds, tuple) and len(self.thresholds) == 3
              and all(0 < t < 1 for t in self.thresholds), key + "thresholds", self.thresholds,
              "three probabilities in (0, 1)")
        check(self.min_face_size >= 1, key + "min_face_size", self.min_face_size, "an integer >= 1")
        check(0 < self.factor < 1, key + "factor", self.factor, "a scale in (0, 1)")
        check(self.device in ("auto", "cpu", "cuda"), key + "device", self.device, "'auto', 'cpu' or 'cuda'")
        check(self.batch_size >= 1, key + "batch_size", self.batch_size, "an integer >= 1")


@dataclass(frozen=True)
class LoadConfig:
    """What a run reads (its data.params): the prepared folder, the split and the fold, as cremad's
    (split "release", the default: the MCR authors' 5 folds; "actors": folds from the actor table)."""
    prepared: str = location("data/processed/cremad_faces")   # written by `prepare`
    fold: int = 0
    split: str = "release"
    n_folds: int = ACTOR_SPLIT["n_folds"]
    split_seed: int = ACTOR_SPLIT["split_seed"]
    val_share: float = ACTOR_SPLIT["val_share"]

    def __post_init__(self):
        check_split(self)


# ---------------------------------------------------------------- one clip
def read_video(path: Path, max_frames: int) -> tuple[np.ndarray, int]:
    """The first max_frames decoded frames, RGB (T, H, W, 3) uint8, and how many frames were
    decoded (max_frames + 1 when the clip has more). MediaError when nothing decodes."""
    frames = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise media.MediaError("unreadable", "no video stream")
            for frame in container.decode(container.streams.video[0]):
                if len(frames) == max_frames:
                    return np.stack(frames), max_frames + 1
                frames.append(frame.to_ndarray(format="rgb24"))
    except media.MediaError:
        raise
    except (av.FFmpegError, OSError, ValueError) as err:
        raise media.MediaError("undecodable video", str(err)) from None
    if not frames:
        raise media.MediaError("unreadable", "no decodable video frame")
    return np.stack(frames), len(frames)


def read_audio(path: Path, cfg: PrepareConfig) -> tuple[np.ndarray, float]:
    """The raw waveform at cfg.sample_rate, cut or zero-padded to cfg.seconds, and its length in s."""
    wave, rate = media.read_wav(path)
    x = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
    if rate != cfg.sample_rate:
        x = torchaudio.functional.resample(x, rate, cfg.sample_rate)
    n = round(cfg.seconds * cfg.sample_rate)
    out = np.zeros(n, dtype=np.float32)
    out[:min(n, len(x))] = x[:n].numpy()
    return out, len(wave) / rate


def decode_clip(clip: str, *, base: Path, cfg: PrepareConfig) -> dict:
    """The waveform and frames of one clip, or the reason it is skipped. Never raises for a bad file."""
    wav, flv = expected_files(clip)
    try:
        audio, audio_s = read_audio(base / wav, cfg)
    except media.MediaError as err:
        return {"clip": clip, "ok": False, "reason": f"{wav}: {err}"}
    try:
        frames, decoded = read_video(base / flv, cfg.max_frames)
    except media.MediaError as err:
        return {"clip": clip, "ok": False, "reason": f"{flv}: {err}"}
    return {"clip": clip, "ok": True, "audio": audio, "audio_s": audio_s, "frames": frames,
            "truncated": decoded > cfg.max_frames}


def _decoded(clips: list[str], base: Path, cfg: PrepareConfig, progress: bool, ahead: int = 4):
    """decode_clip over the clips in order, `ahead` clips decoded by threads while the face
    pipeline works (bounded: a clip's frames take tens of MB)."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm
    with ThreadPoolExecutor(2) as pool, tqdm(total=len(clips), desc="CREMA-D faces", unit="clip",
                                             disable=not progress) as bar:
        pending, todo = deque(), iter(clips)
        for clip in todo:
            pending.append(pool.submit(decode_clip, clip, base=base, cfg=cfg))
            if len(pending) >= ahead:
                yield pending.popleft().result()
                bar.update()
        while pending:
            yield pending.popleft().result()
            bar.update()


def _settings(cfg: PrepareConfig) -> dict:
    return {**{k: list(v) if isinstance(v := getattr(cfg, k), tuple) else v for k in SETTINGS},
            "n_features": N_FEATURES, "version": FEATURES_VERSION}


# ---------------------------------------------------------------- prepare and load
def prepare(cfg: PrepareConfig, out_dir: str | Path, *, progress: bool = True,
            pipeline: FacePipeline | None = None) -> Path:
    """Read every clip of the copy at cfg.root (else $MCR_CREMAD_ROOT), write features.pt,
    index.json and report.json (last) into out_dir; returns out_dir. `pipeline`: a FacePipeline
    built already (else one is built from cfg)."""
    out = Path(out_dir)
    copy = locate(resolve_root(cfg.root, ROOT_ENV, layout=LAYOUT, source=SOURCE, key="data.cremad_faces.root"),
                  expect_complete=cfg.expect_complete)
    base, clips, actors = copy.root, copy.clips, copy.actors
    pipeline = pipeline or FacePipeline.build(weights=cfg.weights, thresholds=cfg.thresholds,
                                              min_face_size=cfg.min_face_size, factor=cfg.factor,
                                              face_size=cfg.face_size, device=cfg.device,
                                              batch_size=cfg.batch_size)
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").unlink(missing_ok=True)       # incomplete until the report is back
    n, n_samples = len(clips), round(cfg.seconds * cfg.sample_rate)
    audio = torch.zeros((n, n_samples), dtype=torch.float32)
    visual = torch.zeros((n, cfg.max_frames, N_FEATURES), dtype=torch.float32)
    n_frames = torch.zeros(n, dtype=torch.long)
    kept, skipped = [], list(copy.skipped)
    outcome = {s["clip"]: f"skipped: {s['reason']}" for s in copy.skipped}
    faces = {"frames": 0, "frames_with_face": 0, "frames_filled": 0, "clips_with_filled_frames": 0,
             "no_face_clips": []}
    padded_audio, cut_audio, truncated = [], [], []
    for r in _decoded(clips, base, cfg, progress):
        clip = r["clip"]
        if not r["ok"]:
            skipped.append({"clip": clip, "reason": r["reason"]})
            outcome[clip] = f"skipped: {r['reason']}"
            continue
        features, facts = pipeline(r["frames"])
        k, t = len(kept), len(features)
        audio[k] = torch.from_numpy(r["audio"])
        visual[k, :t] = torch.from_numpy(features)
        n_frames[k] = t
        kept.append(clip)
        for key in ("frames", "frames_with_face", "frames_filled"):
            faces[key] += facts[key]
        faces["clips_with_filled_frames"] += facts["frames_filled"] > 0
        said = []
        if facts["no_face_clip"]:
            faces["no_face_clips"].append(clip)
            said.append(f"no face in any of its {t} frames: centre crops")
        elif facts["frames_filled"]:
            said.append(f"{facts['frames_filled']} of {t} frames without a face took a neighbour's box")
        if r["truncated"]:
            truncated.append(clip)
            said.append(f"more than {cfg.max_frames} frames: the first {cfg.max_frames} kept")
        if r["audio_s"] < cfg.seconds:
            padded_audio.append(clip)
        elif r["audio_s"] > cfg.seconds:
            cut_audio.append({"clip": clip, "audio_s": round(r["audio_s"], 3)})
            said.append(f"audio of {r['audio_s']:.2f} s cut to {cfg.seconds:g} s")
        outcome[clip] = "kept" + (f": {'; '.join(said)}" if said else "")
    if not kept:
        raise DataError(f"CREMA-D at {base}: no usable clip among {n}: {skipped[:3]}")
    if faces["no_face_clips"]:
        warnings.warn(f"CREMA-D at {base}: {len(faces['no_face_clips'])} clip(s) without a face in any frame "
                      f"(described from centre crops, listed in report.json): {faces['no_face_clips'][:5]}",
                      stacklevel=2)
    if len(kept) < n:           # torch.save writes whole storages: drop the unused tail
        audio, visual, n_frames = (x[:len(kept)].clone() for x in (audio, visual, n_frames))
    labels = [parse_clip(c)[1] for c in kept]
    save_torch({"audio": audio, "visual": visual, "n_frames": n_frames, "label": torch.tensor(labels)},
               out / "features.pt")
    write_text(json.dumps({"settings": _settings(cfg), "clips": kept,
                           "actors": {str(a): s for a, s in sorted(actors.items())}}, indent=0),
               out / "index.json")
    report = {
        "dataset": "CREMA-D faces", "source": SOURCE, "root": str(base), "settings": _settings(cfg),
        "clips_listed": n + len(copy.skipped), "clips_kept": len(kept), "skipped": skipped,
        "expect_complete": cfg.expect_complete, "official_clips_absent": len(copy.official_absent),
        "official_clips_absent_examples": copy.official_absent[:20], "unexpected": copy.unexpected,
        "faces": faces, "frames_truncated": truncated,
        "audio_padded": len(padded_audio), "audio_cut": cut_audio,
        "known_defects": {c: {"readme": why, "outcome": outcome.get(c, "not in this copy")}
                          for c, why in KNOWN_DEFECTS.items()},
        **split_report(labels, kept, actors),
    }
    write_text(json.dumps(report, indent=1), out / "report.json")
    return out


def _zscore_audio(splits: dict) -> None:
    train = splits["train"]["audio"]
    mean, std = train.mean(), train.std()
    std = std if std > STD_FLOOR else torch.ones(())
    for s in SPLITS:
        splits[s]["audio"] = (splits[s]["audio"] - mean) / std


def _zscore_faces(splits: dict, n_frames: dict) -> None:
    """Per feature, with the train split's valid frames; padded frames stay 0."""
    train, t = splits["train"]["visual"], n_frames["train"]
    valid = torch.arange(train.shape[1])[None, :] < t[:, None]          # (N, T)
    frames = train[valid]                                                # (frames, 1408)
    mean = frames.mean(0)
    std = frames.std(0) if len(frames) > 1 else torch.ones_like(mean)
    std = torch.where(std > STD_FLOOR, std, torch.ones_like(std))
    for s in SPLITS:
        x = splits[s]["visual"]
        mask = (torch.arange(x.shape[1])[None, :] < n_frames[s][:, None]).unsqueeze(-1)
        splits[s]["visual"] = torch.where(mask, (x - mean) / std, torch.zeros(()))


def load(cfg: LoadConfig) -> TensorSplits:
    """The fold cfg.fold of the folder written by `prepare` (cfg.prepared): "audio" (L,) and
    "visual" (max_frames, 1408) float32, z-scored with the train split's statistics, "label"
    long in 0..5."""
    folder = Path(cfg.prepared).expanduser()
    absent = [n for n in PREPARED_FILES if not (folder / n).is_file()]
    if absent:
        raise DataError(f"no complete prepared CREMA-D faces folder at {folder} (missing {', '.join(absent)}): "
                        f"run `python -m mcrlib.data.prepare cremad_faces` (dvc repro prepare@cremad_faces) first")
    index = json.loads((folder / "index.json").read_text())
    actors = {int(a): s for a, s in index["actors"].items()}
    feats = torch.load(folder / "features.pt", mmap=True, weights_only=True)
    rows = fold_rows(cfg, index["clips"], actors)
    splits, n_frames = {}, {}
    for s in SPLITS:
        idx = torch.tensor(rows[s], dtype=torch.long)
        splits[s] = {k: feats[k].index_select(0, idx) for k in ("audio", "visual", "label")}
        n_frames[s] = feats["n_frames"].index_select(0, idx)
    if not len(splits["train"]["label"]):
        raise DataError(f"{folder}: fold {cfg.fold} has no training clip: its train statistics are undefined")
    _zscore_audio(splits)
    _zscore_faces(splits, n_frames)
    return TensorSplits(splits, modalities=("audio", "visual"), n_classes=len(EMOTIONS))


SPEC = DatasetSpec(name="cremad_faces", load_config=LoadConfig, load=load, prepare_config=PrepareConfig,
                   prepare=prepare, encoders={"audio": "waveform", "visual": "sequence"},
                   root_env=ROOT_ENV, source=SOURCE)
