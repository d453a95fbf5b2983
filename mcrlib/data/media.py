"""Shared helpers of the video datasets (AVE, UCF-51): decoding with PyAV, spectrograms, caches.

Frames are taken "at 1 fps" as the paper's preprocessing does: the first frame of each second,
found by counting decoded frames (frame round(s * fps) for second s). Audio is the
decoded audio stream, resampled with torchaudio. Cached datasets live in one folder per
(dataset, settings, root): `<split>.pt` tensors, `ids.json` and `report.json`, which is written
last, so a folder with a report is complete.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F
import torchaudio
from av.video.reformatter import VideoReformatter
from scipy import signal

from mcrlib.atomic import save_torch, write_text
from mcrlib.data.location import project_path
from mcrlib.data.tensors import TensorSplits

SPLITS = ("train", "val", "test")
# Errors that mean "this media file cannot be used"; recorded in the data report, file skipped.
DECODE_ERRORS = (av.FFmpegError, OSError, EOFError)


class MediaError(ValueError):
    """A media file that opens but cannot be used; `reason` is the data report's code for it."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def has_audio(path: str | Path) -> bool:
    """Whether the container holds an audio stream (raises a DECODE_ERRORS error if unreadable)."""
    with av.open(str(path)) as container:
        return len(container.streams.audio) > 0


def read_frames(path: str | Path, times: list[float], size: int) -> tuple[torch.Tensor, list[float]]:
    """For each time t (seconds from the first frame), the decoded frame of index round(t * fps),
    fps being the stream's average rate: the paper's frame counting (its OpenCV code keeps frame
    n when n % int(fps) == 0, i.e. the first frame of each second). Frames are RGB, resized to
    size x size (bilinear, antialiased, as torchvision's Resize); times past the last frame are
    dropped. Returns (k, 3, size, size) uint8 and the k times (index / fps) in increasing order."""
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise MediaError("unreadable", "no video stream")
        stream = container.streams.video[0]
        rate = float(stream.average_rate or stream.guessed_rate or stream.base_rate or 0)
        if rate <= 0:
            raise MediaError("unreadable", "the video stream has no frame rate")
        wanted = {round(t * rate) for t in times}
        last, picked, decoded = max(wanted, default=-1), {}, 0
        to_rgb = VideoReformatter()
        for index, frame in enumerate(container.decode(stream)):
            decoded += 1
            if index in wanted:
                picked[index] = to_rgb.reformat(frame, format="rgb24").to_ndarray()
            if index >= last:
                break
    if not decoded:
        raise MediaError("unreadable", "no decodable video frame")
    if not picked:
        return torch.empty(0, 3, size, size, dtype=torch.uint8), []
    order = sorted(picked)
    images = torch.from_numpy(np.stack([picked[i] for i in order])).permute(0, 3, 1, 2)
    return resize(images, size), [i / rate for i in order]


def resize(images: torch.Tensor, size: int) -> torch.Tensor:
    """(k, 3, H, W) uint8 -> (k, 3, size, size) uint8."""
    if images.shape[-2:] == (size, size):
        return images.contiguous()
    out = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True,
                        align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8)


def read_audio(path: str | Path, sample_rate: int, channel: str = "mean") -> torch.Tensor:
    """The first audio stream as a mono float32 waveform at `sample_rate` (torchaudio's
    resampler); `channel` "mean" averages the channels (librosa's mono), "first" keeps channel 0.
    Raises MediaError when the file has no audio stream."""
    chunks = []
    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise MediaError("no_audio", "the file has no audio stream")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp")
        rate = None
        for frame in container.decode(stream):
            rate = rate or frame.sample_rate
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray())
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray())
    if not chunks:
        return torch.zeros(0)
    wave = torch.from_numpy(np.concatenate(chunks, axis=1).astype(np.float32))
    wave = wave.mean(0) if channel == "mean" else wave[0]
    if rate != sample_rate:
        wave = _resampler(rate, sample_rate)(wave)
    return wave.contiguous()


@functools.lru_cache(maxsize=8)
def _resampler(orig: int, new: int) -> torchaudio.transforms.Resample:
    """torchaudio's windowed-sinc resampler, its kernel built once per pair of rates."""
    return torchaudio.transforms.Resample(orig, new)


def log_stft(wave: torch.Tensor, n_fft: int, hop_length: int) -> torch.Tensor:
    """log(|STFT| + 1e-7) as librosa.stft computes it (periodic Hann, centred, zero padding):
    (n_fft // 2 + 1, 1 + len // hop) float32."""
    spec = torch.stft(wave, n_fft=n_fft, hop_length=hop_length, window=torch.hann_window(n_fft),
                      center=True, pad_mode="constant", return_complex=True)
    return torch.log(spec.abs() + 1e-7).float()


def log_psd(wave: torch.Tensor, sample_rate: int, nperseg: int, noverlap: int) -> torch.Tensor:
    """log(S + 1e-7) of scipy.signal.spectrogram with its defaults (Tukey(0.25) window, constant
    detrend, power spectral density), as the AVE preprocessing of the paper's code."""
    _, _, spec = signal.spectrogram(wave.numpy(), sample_rate, nperseg=nperseg, noverlap=noverlap)
    return torch.from_numpy(np.log(np.abs(spec) + 1e-7).astype(np.float32))


# ---- extraction over files -----------------------------------------------------------------

def extract(items: list[dict], fn: Callable[[dict], dict], desc: str, progress: bool = True):
    """Runs `fn(item) -> {"audio", "visual", "notes"}` over the items (dicts with "id", "split",
    "path") with a progress bar. A file that cannot be decoded, or that `fn` rejects with a
    MediaError, is skipped and recorded. Returns (kept items with their tensors, skipped records,
    note records)."""
    from tqdm.auto import tqdm
    kept, skipped, notes = [], [], []
    for item in tqdm(items, desc=desc, unit="file", disable=not progress):
        where = {"id": item["id"], "split": item["split"]}
        try:
            out = fn(item)
        except MediaError as err:
            skipped.append({**where, "reason": err.reason, "detail": err.detail})
            continue
        except DECODE_ERRORS as err:
            skipped.append({**where, "reason": "unreadable", "detail": f"{type(err).__name__}: {err}"})
            continue
        notes.extend({**where, "note": note} for note in out.pop("notes", []))
        kept.append({**item, **out})
    return kept, skipped, notes


def stack(kept: list[dict], label_of: Callable[[dict], int]) -> dict[str, torch.Tensor]:
    if not kept:
        raise ValueError("no usable sample left in a split (see the skipped files)")
    return {"audio": torch.stack([k["audio"] for k in kept]),
            "visual": torch.stack([k["visual"] for k in kept]),
            "label": torch.tensor([label_of(k) for k in kept], dtype=torch.long)}


def count(split_items: dict[str, list], kept: dict[str, list], skipped: list[dict]) -> dict:
    """Per split: files listed, kept, and skipped by reason."""
    out = {}
    for split, listed in split_items.items():
        reasons: dict[str, int] = {}
        for s in skipped:
            if s["split"] == split:
                reasons[s["reason"]] = reasons.get(s["reason"], 0) + 1
        out[split] = {"listed": len(listed), "kept": len(kept[split]), "skipped": reasons}
    return out


# ---- roots, errors and caches -----------------------------------------------------------------

def missing_error(what: str, root: Path, layout: str, missing: list[str], source: str) -> FileNotFoundError:
    shown = "\n  ".join(missing[:5])
    more = f"\n  ... and {len(missing) - 5} more" if len(missing) > 5 else ""
    return FileNotFoundError(
        f"{what}: {len(missing)} expected file(s) missing under {root}:\n  {shown}{more}\n"
        f"Expected layout:\n{layout}\nSource: {source}")


def resolve_root(root: str, env: str, layout: str, source: str, key: str = "data.params.root") -> Path:
    """`root`, else the environment variable `env`; an existing folder, or a clear error."""
    value = root or os.environ.get(env, "")
    if not value:
        raise FileNotFoundError(f"no data root: set {key} or the environment variable {env}.\n"
                                f"Expected layout:\n{layout}\nSource: {source}")
    path = Path(value).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"data root {path} is not a folder.\nExpected layout:\n{layout}\n"
                                f"Source: {source}")
    return path


def settings(cfg) -> dict:
    """The preprocessing settings of a config: every field but the data root and the cache folder."""
    return {k: v for k, v in asdict(cfg).items() if k not in ("root", "processed")}


def write_cache(out_dir: Path, tensors: dict[str, dict[str, torch.Tensor]],
                ids: dict[str, list[str]], report: dict) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").unlink(missing_ok=True)   # incomplete until the report is back
    for split, data in tensors.items():
        save_torch(data, out_dir / f"{split}.pt")
    write_text(json.dumps(ids, indent=1), out_dir / "ids.json")
    write_text(json.dumps(report, indent=1, default=str), out_dir / "report.json")
    return out_dir


def read_report(cache_dir: str | Path) -> dict:
    path = Path(cache_dir) / "report.json"
    if not path.is_file():
        raise FileNotFoundError(f"no complete cache in {cache_dir} (report.json is missing): "
                                "run preprocess(cfg, cache_dir) first")
    return json.loads(path.read_text())


def load_cache(cfg, cache_dir: str | Path, dataset: str) -> TensorSplits:
    cache_dir = Path(cache_dir)
    report = read_report(cache_dir)
    if report.get("dataset") != dataset or report.get("settings") != json.loads(json.dumps(settings(cfg))):
        raise ValueError(f"the cache in {cache_dir} was built for {report.get('dataset')!r} with "
                         f"settings {report.get('settings')}, not {dataset!r} with {settings(cfg)}: "
                         "run preprocess again or point to another folder")
    splits = {s: torch.load(cache_dir / f"{s}.pt", mmap=True) for s in SPLITS}
    return TensorSplits(splits, modalities=("audio", "visual"), n_classes=report["n_classes"])


def load_ids(cache_dir: str | Path) -> dict[str, list[str]]:
    """The sample ids (video ids / clip names) of each cached split, in row order."""
    return json.loads((Path(cache_dir) / "ids.json").read_text())


def cache_folder(dataset: str, cfg, root: Path) -> Path:
    """$MCR_DATA_CACHE (default .mcr-cache/data) / <dataset>-<hash of settings and root>."""
    key = json.dumps({"settings": settings(cfg), "root": str(root.resolve())}, sort_keys=True)
    base = Path(os.environ.get("MCR_DATA_CACHE", ".mcr-cache/data"))
    return base / f"{dataset}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def cached_build(dataset: str, cfg, locate: Callable, preprocess: Callable, load: Callable) -> TensorSplits:
    """Load cfg.processed (the `prepare` stage's output: the raw data need not be here) or the
    cache folder of these settings and root, preprocessing into it first if it holds no cache."""
    folder = project_path(cfg.processed) if cfg.processed else cache_folder(dataset, cfg, locate(cfg))
    if not (folder / "report.json").is_file():
        locate(cfg)   # a missing root is reported as such, not as a missing cache
        preprocess(cfg, folder)
    return load(cfg, folder)
