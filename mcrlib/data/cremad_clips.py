"""One CREMA-D clip: its name (actor, label), the actor-disjoint folds, and its media
(WAV -> log-magnitude spectrogram, FLV -> 1-fps frames).

Names: {actor}_{sentence}_{emotion}_{level}; label NEU 0, HAP 1, SAD 2, FEA 3, DIS 4, ANG 5.

Audio follows the release's ResNet route (`CramedD_Dataloader`): mono at 22,050 Hz, tiled x3,
cut to 3 s, clipped to [-1, 1], STFT (n_fft 512, hop 353, periodic Hann, centred with zero
padding), log(|S| + 1e-7) -> (1, 257, 188). The release loads with librosa (soxr resampling);
here torchaudio's sinc resampler does it, so values differ slightly, shapes and scales do not.

Video: PyAV decodes the FLV; the first frame of each second (time measured from the first
decoded frame) is kept, up to `n_frames`, resized to image_size x image_size (bilinear, PIL, as
torchvision's Resize on a PIL image), stored uint8 (T, 3, H, W). Decoding stops after the
last needed second, so a one-minute file costs no more than a short one.
"""
from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import soundfile as sf
import torch
import torchaudio

from mcrlib.config import check

EMOTIONS = {"NEU": 0, "HAP": 1, "SAD": 2, "FEA": 3, "DIS": 4, "ANG": 5}
SPLITS = ("train", "val", "test")
CLIP_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_(NEU|HAP|SAD|FEA|DIS|ANG)_(LO|MD|HI|XX)$")


# ---------------------------------------------------------------- names, actors and folds
def parse_clip(name: str) -> tuple[int, int]:
    """(actor id, label) of a clip name such as 1001_DFA_ANG_XX."""
    match = CLIP_NAME.match(name)
    if not match:
        raise ValueError(f"{name!r} is not a CREMA-D clip name ({{actor}}_{{sentence}}_{{emotion}}_{{level}}, "
                         f"emotion one of {list(EMOTIONS)})")
    return int(match.group(1)), EMOTIONS[match.group(3)]


def expected_files(clip: str) -> tuple[str, str]:
    return f"AudioWAV/{clip}.wav", f"VideoFlash/{clip}.flv"


def read_actor_table(path: Path) -> dict[int, str]:
    """ActorID -> sex (the stratum used to balance the folds; "" when the column is absent)."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows or "ActorID" not in rows[0]:
        raise ValueError(f"{path} has no ActorID column: expected the corpus' VideoDemographics.csv")
    return {int(r["ActorID"]): (r.get("Sex") or "").strip() for r in rows}


def read_clip_list(path: Path) -> list[str]:
    with open(path, newline="") as fh:
        return [r["Filename"].strip() for r in csv.DictReader(fh) if r.get("Filename", "").strip()]


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


# ---------------------------------------------------------------- media
class MediaError(Exception):
    """A file that cannot be used; the message says why (it goes into the data report)."""


@dataclass(frozen=True)
class MediaSettings:
    sample_rate: int = 22050
    seconds: float = 3.0
    n_fft: int = 512
    hop_length: int = 353
    tile: int = 3
    n_frames: int = 3
    fps: float = 1.0
    image_size: int = 224


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 waveform (channels averaged, as librosa's mono=True) and its sample rate."""
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as err:
        raise MediaError(f"unreadable WAV: {err}") from None
    if data.shape[0] == 0:
        raise MediaError("empty audio: the WAV holds 0 samples")
    wave = data.mean(axis=1)
    if not np.any(wave):
        raise MediaError(f"silent audio: all {len(wave)} samples are 0")
    if not np.all(np.isfinite(wave)):
        raise MediaError("corrupt audio: non-finite samples")
    return wave, int(rate)


def log_spectrogram(wave: np.ndarray, rate: int, s: MediaSettings) -> tuple[torch.Tensor, bool]:
    """(1, n_fft // 2 + 1, 1 + samples // hop) float32, and whether zeros had to be appended
    (a clip shorter than seconds / tile)."""
    x = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
    if rate != s.sample_rate:
        x = torchaudio.functional.resample(x, rate, s.sample_rate)
    n = round(s.seconds * s.sample_rate)
    x = x.repeat(s.tile)[:n]
    padded = len(x) < n
    if padded:
        x = torch.nn.functional.pad(x, (0, n - len(x)))
    x = x.clamp(-1.0, 1.0)
    spec = torch.stft(x, n_fft=s.n_fft, hop_length=s.hop_length, window=torch.hann_window(s.n_fft),
                      center=True, pad_mode="constant", return_complex=True).abs()
    return torch.log(spec + 1e-7).unsqueeze(0).float(), padded


def _resized(frame: av.VideoFrame, size: int) -> np.ndarray:
    image = frame.to_image()  # RGB PIL image
    if image.size != (size, size):
        from PIL import Image
        image = image.resize((size, size), Image.BILINEAR)
    return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)


def read_frames(path: Path, s: MediaSettings) -> tuple[np.ndarray, dict]:
    """(n_frames, 3, H, W) uint8 (slots without a frame stay zero) and facts for the report:
    frames_found, has_audio_stream, duration_s (None when the container gives none)."""
    out = np.zeros((s.n_frames, 3, s.image_size, s.image_size), dtype=np.uint8)
    found, slots = 0, set()
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError("no video stream in the file")
            stream = container.streams.video[0]
            rate = float(stream.average_rate or stream.guessed_rate or 30)
            duration = container.duration / 1e6 if container.duration else None
            has_audio = bool(container.streams.audio)
            t0 = None
            for i, frame in enumerate(container.decode(stream)):
                t = float(frame.time) if frame.time is not None else i / rate
                t0 = t if t0 is None else t0
                slot = math.floor((t - t0) * s.fps + 1e-6)
                if slot >= s.n_frames:
                    break
                if slot < 0 or slot in slots:
                    continue
                slots.add(slot)
                out[found] = _resized(frame, s.image_size)
                found += 1
    except MediaError:
        raise
    except (av.FFmpegError, OSError, ValueError) as err:
        raise MediaError(f"undecodable video: {err}") from None
    if found == 0:
        raise MediaError("no decodable video frame")
    return out, {"frames_found": found, "has_audio_stream": has_audio, "duration_s": duration}


def process_clip(job: tuple[str, str, str, MediaSettings]) -> dict:
    """Features of one clip, or the reason it is skipped. Never raises for a bad file."""
    clip, wav, flv, s = job
    result = {"clip": clip, "ok": False}
    try:
        wave, rate = read_wav(Path(wav))
    except MediaError as err:
        return {**result, "reason": f"AudioWAV/{clip}.wav: {err}"}
    try:
        frames, facts = read_frames(Path(flv), s)
    except MediaError as err:
        return {**result, "reason": f"VideoFlash/{clip}.flv: {err}"}
    spec, padded = log_spectrogram(wave, rate, s)
    return {**result, "ok": True, "audio": spec.numpy(), "visual": frames,
            "audio_s": len(wave) / rate, "audio_padded": padded, **facts}
