"""The one media stack of the datasets (CREMA-D, AVE, UCF-51): decoding with PyAV and soundfile,
spectrograms with torchaudio, prepared folders; one error for an unusable file, `MediaError`.

Frames are taken "at 1 fps" as the paper's preprocessing does: the first frame of each second,
found by counting decoded frames (frame round(s * fps) for second s). Audio is the decoded audio
stream (AVE, UCF) or the WAV file (CREMA-D), resampled with torchaudio. A dataset's `prepare` writes its prepared
folder: `<split>.pt` tensors, `ids.json` and `report.json`, which is written last, so a folder
with a report is complete; its `load` reads only that folder.
"""
from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F
import torchaudio
from av.video.reformatter import VideoReformatter
from scipy import signal

from mcrlib.atomic import save_torch, write_text
from mcrlib.data.tensors import TensorSplits
from mcrlib.errors import DataError

SPLITS = ("train", "val", "test")
# Errors that mean "this media file cannot be used"; recorded in the data report, file skipped.
DECODE_ERRORS = (av.FFmpegError, OSError, EOFError)


class MediaError(DataError):
    """A media file that opens but cannot be used; `reason` is the data report's code for it.
    A DataError (so a ValueError too): unusable data, not a bug."""

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


# CREMA-D's route (the release's ResNet dataloader): WAV files read with soundfile, a tiled
# spectrogram, and frames chosen by timestamp and resized with PIL. Kept apart from read_frames
# and read_audio above, whose frame counting and resizing AVE and UCF-51 rely on.

def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Mono float32 waveform (channels averaged, as librosa's mono=True) and its sample rate.
    MediaError for a WAV that is unreadable, empty, silent or not finite."""
    import soundfile as sf      # here, not above: only the WAV corpora need libsndfile
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError) as err:
        raise MediaError("unreadable WAV", str(err)) from None
    if data.shape[0] == 0:
        raise MediaError("empty audio", "the WAV holds 0 samples")
    wave = data.mean(axis=1)
    if not np.any(wave):
        raise MediaError("silent audio", f"all {len(wave)} samples are 0")
    if not np.all(np.isfinite(wave)):
        raise MediaError("corrupt audio", "non-finite samples")
    return wave, int(rate)


def log_spectrogram(wave: np.ndarray, rate: int, *, sample_rate: int, seconds: float, tile: int,
                    n_fft: int, hop_length: int) -> tuple[torch.Tensor, bool]:
    """The waveform at sample_rate (torchaudio's sinc resampler), tiled `tile` times, cut to
    `seconds`, clipped to [-1, 1], then log_stft: (1, n_fft // 2 + 1, 1 + samples // hop)
    float32, and whether zeros had to be appended (a clip shorter than seconds / tile)."""
    x = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
    if rate != sample_rate:
        x = torchaudio.functional.resample(x, rate, sample_rate)
    n = round(seconds * sample_rate)
    x = x.repeat(tile)[:n]
    padded = len(x) < n
    if padded:
        x = F.pad(x, (0, n - len(x)))
    return log_stft(x.clamp(-1.0, 1.0), n_fft, hop_length).unsqueeze(0), padded


def _pil_resized(frame: av.VideoFrame, size: int) -> np.ndarray:
    """(3, size, size) uint8: bilinear with PIL, as torchvision's Resize on a PIL image."""
    image = frame.to_image()  # RGB PIL image
    if image.size != (size, size):
        from PIL import Image
        image = image.resize((size, size), Image.BILINEAR)
    return np.asarray(image, dtype=np.uint8).transpose(2, 0, 1)


def read_frames_at_fps(path: str | Path, *, n_frames: int, fps: float, size: int) -> tuple[np.ndarray, dict]:
    """The first decoded frame of each 1/fps-second slot, time measured from the first decoded
    frame (its timestamp, else index / rate), up to n_frames, resized to size x size with PIL.
    Decoding stops after the last slot needed, so a long file costs no more than a short one.
    Returns (n_frames, 3, size, size) uint8 (slots without a frame stay zero) and facts for the
    report: frames_found, has_audio_stream, duration_s (None when the container gives none).
    MediaError when the file has no video stream, does not decode, or yields no frame."""
    out = np.zeros((n_frames, 3, size, size), dtype=np.uint8)
    found, slots = 0, set()
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError("unreadable", "no video stream")
            stream = container.streams.video[0]
            rate = float(stream.average_rate or stream.guessed_rate or 30)
            duration = container.duration / 1e6 if container.duration else None
            has_audio_stream = bool(container.streams.audio)
            t0 = None
            for i, frame in enumerate(container.decode(stream)):
                t = float(frame.time) if frame.time is not None else i / rate
                t0 = t if t0 is None else t0
                slot = math.floor((t - t0) * fps + 1e-6)
                if slot >= n_frames:
                    break
                if slot < 0 or slot in slots:
                    continue
                slots.add(slot)
                out[found] = _pil_resized(frame, size)
                found += 1
    except MediaError:          # a ValueError too: not to be reworded below
        raise
    except (av.FFmpegError, OSError, ValueError) as err:
        raise MediaError("undecodable video", str(err)) from None
    if found == 0:
        raise MediaError("unreadable", "no decodable video frame")
    return out, {"frames_found": found, "has_audio_stream": has_audio_stream, "duration_s": duration}


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


# ---- errors and prepared folders --------------------------------------------------------------

def missing_error(what: str, root: Path, layout: str, missing: list[str], source: str) -> DataError:
    """Expected files absent under a data root: the first five, the layout and where to get it."""
    shown = "\n  ".join(missing[:5])
    more = f"\n  ... and {len(missing) - 5} more" if len(missing) > 5 else ""
    return DataError(
        f"{what}: {len(missing)} expected file(s) missing under {root}:\n  {shown}{more}\n"
        f"Expected layout:\n{layout}\nSource: {source}")


def _redo(dataset: str) -> str:
    return f"run `python -m mcrlib.data.prepare {dataset}` (DVC: `dvc repro prepare@{dataset}`)"


def write_cache(out_dir: Path, tensors: dict[str, dict[str, torch.Tensor]],
                ids: dict[str, list[str]], report: dict) -> Path:
    """Write a prepared folder: `<split>.pt`, ids.json, then report.json (last: a folder with a
    report is complete; each file is written atomically)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "report.json").unlink(missing_ok=True)   # incomplete until the report is back
    for split, data in tensors.items():
        save_torch(data, out_dir / f"{split}.pt")
    write_text(json.dumps(ids, indent=1), out_dir / "ids.json")
    write_text(json.dumps(report, indent=1, default=str), out_dir / "report.json")
    return out_dir


def read_report(prepared: str | Path, dataset: str) -> dict:
    """The data report of a prepared folder of `dataset`; a DataError if the folder is not one."""
    path = Path(prepared) / "report.json"
    if not path.is_file():
        raise DataError(f"no complete prepared {dataset} data in {prepared} (report.json is missing): "
                        f"{_redo(dataset)}")
    try:
        report = json.loads(path.read_text())
    except ValueError as err:
        raise DataError(f"{path} is unreadable ({err}): {_redo(dataset)}") from None
    if not isinstance(report, dict) or report.get("dataset") != dataset:
        found = report.get("dataset") if isinstance(report, dict) else None
        raise DataError(f"{prepared} holds prepared data of {found!r}, not {dataset!r}: "
                        f"point to {dataset}'s prepared folder or {_redo(dataset)}")
    return report


def load_cache(prepared: str | Path, dataset: str) -> TensorSplits:
    """The splits of a prepared folder (memory-mapped); its settings are not checked here: the
    folder's content fingerprint (mcrlib.data.fingerprint) stands for them."""
    prepared = Path(prepared)
    report = read_report(prepared, dataset)
    missing = [f"{s}.pt" for s in SPLITS if not (prepared / f"{s}.pt").is_file()]
    if missing:
        raise DataError(f"prepared {dataset} data in {prepared} lack {', '.join(missing)}: {_redo(dataset)}")
    splits = {s: torch.load(prepared / f"{s}.pt", mmap=True) for s in SPLITS}
    return TensorSplits(splits, modalities=("audio", "visual"), n_classes=report["n_classes"])


def load_ids(prepared: str | Path, dataset: str) -> dict[str, list[str]]:
    """The sample ids (video ids / clip names) of each prepared split, in row order."""
    path = Path(prepared) / "ids.json"
    if not path.is_file():
        raise DataError(f"no ids.json in {prepared}: {_redo(dataset)}")
    return json.loads(path.read_text())
