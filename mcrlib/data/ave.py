"""AVE, the Audio-Visual Event dataset (Tian et al., ECCV 2018): 4,143 ten-second YouTube videos,
28 event classes, each video with one annotated event segment [Start, End) in whole seconds, and
the official train/val/test lists, used as they are (the paper's 3 runs differ by seed only).

Preprocessing of the paper's code (ResNet family):
- audio: the decoded audio (channels averaged) at 16 kHz, the event segment
  [16000 * Start, 16000 * End), tiled to 10 s, clipped to [-1, 1], then
  scipy.signal.spectrogram(nperseg=512, noverlap=353) (hop 159) and log(S + 1e-7), no
  normalisation -> (1, 257, 1004) float32;
- frames: 1 fps (the first frame of each second) at seconds Start..End inside the event, the
  first 4, resized to 224 x 224 -> (4, 3, 224, 224) uint8 RGB.
The release tops events with fewer saved frames up with random frames of the event; here an event
with fewer than `num_frames` 1-fps frames takes `num_frames` evenly spaced frames of the event
instead (deterministic; recorded as a note in the data report).

    python -m mcrlib.data.prepare ave         # the DVC stage prepare@ave (params: data.ave)

`prepare` (settings: PrepareConfig) decodes the videos under the data root (`root`, else
$MCR_AVE_ROOT) into the prepared folder: train/val/test.pt, ids.json, report.json. `load`
(LoadConfig) reads only that folder (`prepared`, default data/processed/ave); the official
splits are fixed, so there is nothing else to choose at load time.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from mcrlib.config import check
from mcrlib.data import media
from mcrlib.data.spec import DatasetSpec, location, resolve_root
from mcrlib.data.tensors import TensorSplits
from mcrlib.errors import DataError

ROOT_ENV = "MCR_AVE_ROOT"
SOURCE = ("AVE_Dataset.zip of Tian et al., 'Audio-Visual Event Localization in Unconstrained "
          "Videos' (ECCV 2018), linked from https://github.com/YapengTian/AVE-ECCV18")
LAYOUT = """  <root>/                      the unpacked AVE_Dataset folder (or its parent)
    AVE/<VideoID>.mp4          the 4,143 videos
    trainSet.txt valSet.txt testSet.txt   official lists, lines Category&VideoID&Quality&Start&End
    Annotations.txt            all videos, same format with a header line (not needed)"""
LISTS = {"train": "trainSet.txt", "val": "valSet.txt", "test": "testSet.txt"}
# Label order of the paper's code (datasets/AVE/AVE_Dataset.py).
CLASSES = (
    "Church bell", "Male speech, man speaking", "Bark", "Fixed-wing aircraft, airplane",
    "Race car, auto racing", "Female speech, woman speaking", "Helicopter", "Violin, fiddle",
    "Flute", "Ukulele", "Frying (food)", "Truck", "Shofar", "Motorcycle", "Acoustic guitar",
    "Train horn", "Clock", "Banjo", "Goat", "Baby cry, infant cry", "Bus", "Chainsaw", "Cat",
    "Horse", "Toilet flush", "Rodents, rats, mice", "Accordion", "Mandolin")


@dataclass(frozen=True)
class PrepareConfig:
    """The settings of `prepare` (params.yaml: data.ave)."""
    root: str = ""               # AVE_Dataset folder (or its parent); empty: $MCR_AVE_ROOT
    sample_rate: int = 16000     # audio resampled to this rate
    audio_seconds: float = 10.0  # the event segment is tiled to this length
    nperseg: int = 512           # spectrogram window
    noverlap: int = 353          # window overlap (hop = nperseg - noverlap = 159)
    num_frames: int = 4          # 1-fps frames kept per event (ResNet: 4; ViViT: 10)
    # "spectrogram": the ResNet route's log spectrogram (1, 257, 1004); "waveform": the tiled
    # segment itself (audio_seconds * sample_rate,), for HuBERT (mcrlib.data.ave_pretrained).
    audio: Literal["spectrogram", "waveform"] = "spectrogram"
    frame_size: int = 224        # frames stored resized to frame_size x frame_size
    allow_missing: bool = False  # listed videos absent from AVE/: skip and report instead of failing

    def __post_init__(self):
        check(self.sample_rate >= 1000, "data.ave.sample_rate", self.sample_rate, "a rate >= 1000 Hz")
        check(self.audio_seconds > 0, "data.ave.audio_seconds", self.audio_seconds, "a duration > 0")
        check(self.nperseg >= 2, "data.ave.nperseg", self.nperseg, "an integer >= 2")
        check(0 <= self.noverlap < self.nperseg, "data.ave.noverlap", self.noverlap,
              f"an integer in [0, nperseg={self.nperseg})")
        check(self.sample_rate * self.audio_seconds >= self.nperseg, "data.ave.audio_seconds",
              self.audio_seconds, "at least one spectrogram window of audio")
        check(self.num_frames >= 1, "data.ave.num_frames", self.num_frames, "an integer >= 1")
        check(self.frame_size >= 8, "data.ave.frame_size", self.frame_size, "an integer >= 8")


@dataclass(frozen=True)
class LoadConfig:
    """What a run reads (data.params of a run)."""
    prepared: str = location("data/processed/ave")   # the folder `prepare` wrote


def locate(cfg: PrepareConfig) -> Path:
    """The AVE_Dataset folder with its three lists (accepts its parent too)."""
    root = resolve_root(cfg.root, ROOT_ENV, layout=LAYOUT, source=SOURCE, key="data.ave.root")
    if not (root / "AVE").is_dir() and (root / "AVE_Dataset" / "AVE").is_dir():
        root = root / "AVE_Dataset"
    expected = ["AVE/"] + list(LISTS.values())
    missing = [e for e in expected if not (root / e).exists()]
    if missing:
        raise media.missing_error("AVE", root, LAYOUT, missing, SOURCE)
    return root


def read_list(path: Path) -> list[dict]:
    """Events of an official list (a header line, as in Annotations.txt, is skipped)."""
    events = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("Category&"):
            continue
        fields = line.split("&")
        try:
            category, video, quality, start, end = fields
            start, end = int(start), int(end)
        except ValueError:
            raise DataError(f"{path}:{number}: expected Category&VideoID&Quality&Start&End, "
                            f"got {line!r}") from None
        if category not in CLASSES:
            raise DataError(f"{path}:{number}: unknown category {category!r}; the 28 AVE "
                            f"categories are {list(CLASSES)}")
        events.append({"id": video, "category": category, "quality": quality,
                       "start": start, "end": end})
    return events


def _clip(cfg: PrepareConfig, item: dict) -> dict:
    start, end, notes = item["start"], item["end"], []
    if end <= start:
        raise media.MediaError("no_event", f"event segment [{start}, {end}) is empty")
    frames, _ = media.read_frames(item["path"], list(range(start, end + 1)), cfg.frame_size)
    if len(frames) < cfg.num_frames:
        times = [start + (end - start) * i / cfg.num_frames for i in range(cfg.num_frames)]
        frames, _ = media.read_frames(item["path"], times, cfg.frame_size)
        notes.append(f"event holds fewer than {cfg.num_frames} 1-fps frames: "
                     f"{cfg.num_frames} evenly spaced frames of [{start}, {end}) s used")
    if len(frames) < cfg.num_frames:
        raise media.MediaError("too_few_frames", f"{len(frames)} frame(s) inside the event")
    sr = cfg.sample_rate
    wave = media.read_audio(item["path"], sr, channel="mean")
    segment = wave[sr * start: sr * end]
    if len(segment) == 0:
        raise media.MediaError("no_event_audio", f"audio ends at {len(wave) / sr:.2f} s, before the event")
    if len(segment) < sr * (end - start) - sr // 10:
        notes.append(f"audio ends at {len(wave) / sr:.2f} s, inside the event; the shorter segment is tiled")
    length = round(sr * cfg.audio_seconds)
    tiled = segment.repeat(math.ceil(length / len(segment)))[:length].clamp(-1, 1)
    audio = tiled.float() if cfg.audio == "waveform" else media.log_psd(tiled, sr, cfg.nperseg, cfg.noverlap).unsqueeze(0)
    return {"audio": audio, "visual": frames[:cfg.num_frames], "notes": notes}


def prepare(cfg: PrepareConfig, out_dir: str | Path, *, progress: bool = True, dataset: str = "ave") -> Path:
    """Decode every listed video, compute the paper's features, and write them to the prepared
    folder `out_dir` (train/val/test .pt, ids.json, report.json). Returns `out_dir`. `dataset`
    names the folder's content in its report (mcrlib.data.ave_pretrained prepares its own)."""
    root = locate(cfg)
    lists = {split: read_list(root / name) for split, name in LISTS.items()}
    missing = {e["id"] for events in lists.values() for e in events
               if not (root / "AVE" / f"{e['id']}.mp4").is_file()}
    if missing and not cfg.allow_missing:
        raise media.missing_error("AVE", root, LAYOUT, [f"AVE/{m}.mp4" for m in sorted(missing)], SOURCE)
    items, skipped = {}, []
    for split, events in lists.items():
        seen, items[split] = set(), []
        for e in events:
            where = {"id": e["id"], "split": split}
            if e["id"] in seen:   # the release keeps the first line of a video
                skipped.append({**where, "reason": "duplicate", "detail": "listed again in the same list"})
            elif e["id"] in missing:
                skipped.append({**where, "reason": "missing", "detail": f"AVE/{e['id']}.mp4 is absent"})
            else:
                items[split].append({**e, "split": split, "path": root / "AVE" / f"{e['id']}.mp4"})
            seen.add(e["id"])
    everything = [i for split in media.SPLITS for i in items[split]]
    kept, bad, notes = media.extract(everything, lambda item: _clip(cfg, item), "AVE videos", progress)
    skipped += bad
    by_split = {s: [k for k in kept if k["split"] == s] for s in media.SPLITS}
    tensors = {s: media.stack(by_split[s], lambda k: CLASSES.index(k["category"])) for s in media.SPLITS}
    ids = {s: [k["id"] for k in by_split[s]] for s in media.SPLITS}
    settings = {k: v for k, v in asdict(cfg).items() if k != "root"}   # the root is recorded apart
    shared = sorted(set(ids["train"]) & (set(ids["val"]) | set(ids["test"])) | set(ids["val"]) & set(ids["test"]))
    report = {
        "dataset": dataset, "root": str(root), "source": SOURCE, "settings": settings,
        "n_classes": len(CLASSES), "classes": list(CLASSES),
        "shapes": {"audio": list(tensors["train"]["audio"].shape[1:]),
                   "visual": list(tensors["train"]["visual"].shape[1:])},
        "counts": media.count({s: lists[s] for s in media.SPLITS}, by_split, skipped),
        "in_several_splits": shared,
        "skipped": skipped, "notes": notes}
    return media.write_cache(Path(out_dir), tensors, ids, report)


def load(cfg: LoadConfig) -> TensorSplits:
    """The prepared splits: "audio" (N, 1, 257, 1004) float32, "visual" (N, 4, 3, 224, 224)
    uint8 (shapes at the default settings), "label" (N,) long over the 28 classes."""
    return media.load_cache(cfg.prepared, "ave")


SPEC = DatasetSpec(name="ave", load_config=LoadConfig, load=load, prepare_config=PrepareConfig,
                   prepare=prepare, encoders={"audio": "resnet2d", "visual": "frames"},
                   root_env=ROOT_ENV, source=SOURCE)
