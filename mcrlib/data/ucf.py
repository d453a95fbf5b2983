"""UCF-51: UCF101 (Soomro et al. 2012) restricted to the classes whose videos have sound.

About half of the 101 classes were published without audio. A clip is kept only if its video file
has an audio stream (checked with PyAV) that decodes to samples; the classes are those, in
classInd.txt order, with at least one such clip, so the label map is derived from the files
(51 classes on the full dataset; another count is reported in report.json and warned about).
Splits: the official train/test lists of split 1, 2 or 3; validation = `val_fraction` of the
training GROUPS (gXX, the clips cut from one long video) stratified by class, drawn as the
paper's code draws it (sklearn train_test_split over the group ids in list order with
random_state = split_seed), so no group is in both train and validation.

Preprocessing of the paper's code (ResNet family):
- audio: the first channel at 16 kHz, the first 3 s ((4 - 1) * 16000 samples), clipped to
  [-1, 1], STFT n_fft 512 hop 353 (librosa's: Hann, centred), log(|S| + 1e-7)
  -> (1, 257, 136) float32; shorter audio is zero-padded to 3 s (noted in the report);
- frames: 1 fps (the first frame of each second), the first 4, resized to 224 x 224
  -> (4, 3, 224, 224) uint8 RGB (the release kept OpenCV's BGR order).
Clips with fewer than 4 one-fps frames, without audio, or unreadable are dropped and listed.

    python -m mcrlib.data.prepare ucf51       # the DVC stage prepare@ucf51 (params: data.ucf51)

`prepare` (settings: PrepareConfig) decodes the clips under the data root (`root`, else
$MCR_UCF_ROOT) into the prepared folder: train/val/test.pt, ids.json, report.json. The official
split and the validation draw (split, val_fraction, split_seed) are prepare settings: a prepared
folder holds one split, with its validation groups drawn (a clip's decoding does not depend on
them, but the lists that choose the clips do). `load` (LoadConfig) reads only that folder
(`prepared`, default data/processed/ucf51); another split is another prepared folder.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch.nn.functional as F
from sklearn.model_selection import train_test_split

from mcrlib.config import check
from mcrlib.data import media
from mcrlib.data.spec import DatasetSpec, location, resolve_root
from mcrlib.data.tensors import TensorSplits
from mcrlib.errors import DataError

EXPECTED_CLASSES = 51
ROOT_ENV = "MCR_UCF_ROOT"
SOURCE = ("UCF101.rar and UCF101TrainTestSplits-RecognitionTask.zip from "
          "https://www.crcv.ucf.edu/data/UCF101.php (Soomro, Zamir and Shah, 2012)")
LAYOUT = """  <root>/
    UCF-101/<ClassName>/v_<ClassName>_gXX_cYY.avi     the 13,320 clips
    ucfTrainTestlist/classInd.txt                     lines "<index> <ClassName>"
    ucfTrainTestlist/trainlist0{1,2,3}.txt            lines "<ClassName>/v_..._gXX_cYY.avi <index>"
    ucfTrainTestlist/testlist0{1,2,3}.txt             lines "<ClassName>/v_..._gXX_cYY.avi\""""


@dataclass(frozen=True)
class PrepareConfig:
    """The settings of `prepare` (params.yaml: data.ucf51)."""
    root: str = ""               # folder holding UCF-101/ and ucfTrainTestlist/; empty: $MCR_UCF_ROOT
    split: int = 1               # official split (the paper's 3 runs: splits 1, 2, 3)
    val_fraction: float = 0.1    # share of the training groups held out for validation
    split_seed: int = 109        # random_state of the validation draw (the paper's run seed)
    sample_rate: int = 16000     # audio resampled to this rate
    audio_seconds: float = 3.0   # audio kept from the start: (num_frames - 1) s in the release
    n_fft: int = 512             # STFT window
    hop_length: int = 353        # STFT hop
    num_frames: int = 4          # first 1-fps frames kept; clips with fewer are dropped
    frame_size: int = 224        # frames stored resized to frame_size x frame_size
    allow_missing: bool = False  # listed clips absent from UCF-101/: skip and report instead of failing

    def __post_init__(self):
        check(self.split in (1, 2, 3), "data.ucf51.split", self.split, "one of the official splits 1, 2, 3")
        check(0 < self.val_fraction < 1, "data.ucf51.val_fraction", self.val_fraction, "a share in (0, 1)")
        check(self.sample_rate >= 1000, "data.ucf51.sample_rate", self.sample_rate, "a rate >= 1000 Hz")
        check(self.audio_seconds > 0, "data.ucf51.audio_seconds", self.audio_seconds, "a duration > 0")
        check(self.n_fft >= 2, "data.ucf51.n_fft", self.n_fft, "an integer >= 2")
        check(self.hop_length >= 1, "data.ucf51.hop_length", self.hop_length, "an integer >= 1")
        check(self.num_frames >= 1, "data.ucf51.num_frames", self.num_frames, "an integer >= 1")
        check(self.frame_size >= 8, "data.ucf51.frame_size", self.frame_size, "an integer >= 8")


@dataclass(frozen=True)
class LoadConfig:
    """What a run reads (data.params of a run)."""
    prepared: str = location("data/processed/ucf51")   # the folder `prepare` wrote (one split)


def list_files(cfg: PrepareConfig) -> dict[str, str]:
    return {"classes": "ucfTrainTestlist/classInd.txt",
            "train": f"ucfTrainTestlist/trainlist0{cfg.split}.txt",
            "test": f"ucfTrainTestlist/testlist0{cfg.split}.txt"}


def locate(cfg: PrepareConfig) -> Path:
    root = resolve_root(cfg.root, ROOT_ENV, layout=LAYOUT, source=SOURCE, key="data.ucf51.root")
    expected = ["UCF-101/"] + list(list_files(cfg).values())
    missing = [e for e in expected if not (root / e).exists()]
    if missing:
        raise media.missing_error("UCF101", root, LAYOUT, missing, SOURCE)
    return root


def read_classes(path: Path) -> list[str]:
    """Class names in classInd.txt order."""
    classes = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            fields = line.split()
            if len(fields) != 2 or not fields[0].isdigit():
                raise DataError(f"{path}:{number}: expected '<index> <ClassName>', got {line!r}")
            classes.append(fields[1])
    return classes


def read_list(path: Path, classes: list[str]) -> list[str]:
    """Clip paths (relative to UCF-101/) of a train or test list."""
    clips = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            clip = line.split()[0]
            if clip.split("/")[0] not in classes or not clip.endswith(".avi"):
                raise DataError(f"{path}:{number}: expected '<ClassName>/v_..._gXX_cYY.avi' with a "
                                f"class of classInd.txt, got {line.strip()!r}")
            clips.append(clip)
    return clips


def group_of(clip: str) -> str:
    """"Class/v_Name_g08_c01.avi" -> "Name_g08": the release's group id."""
    return "_".join(Path(clip).stem.split("_")[1:3])


def validation_groups(clips: list[str], labels: list[int], fraction: float, seed: int) -> set[str]:
    """`fraction` of the groups, stratified by class, as the paper's code draws them."""
    groups = {}
    for clip, label in zip(clips, labels):
        groups.setdefault(group_of(clip), label)
    ids = list(groups)
    try:
        _, val = train_test_split(ids, test_size=fraction, random_state=seed,
                                  stratify=[groups[g] for g in ids])
    except ValueError as err:
        raise DataError(f"cannot hold out {fraction} of {len(ids)} training groups stratified by "
                        f"class (data.ucf51.val_fraction): {err}") from None
    return set(val)


def _clip(cfg: PrepareConfig, item: dict) -> dict:
    if not media.has_audio(item["path"]):
        raise media.MediaError("no_audio", "the file has no audio stream")
    wave = media.read_audio(item["path"], cfg.sample_rate, channel="first")
    if len(wave) < 2:   # the release's test for "no audio"
        raise media.MediaError("no_audio", "the audio stream decodes to no samples")
    frames, _ = media.read_frames(item["path"], list(range(cfg.num_frames)), cfg.frame_size)
    if len(frames) < cfg.num_frames:
        raise media.MediaError("too_few_frames", f"{len(frames)} one-fps frame(s) < {cfg.num_frames}")
    notes, length = [], round(cfg.sample_rate * cfg.audio_seconds)
    if len(wave) < length:
        notes.append(f"audio lasts {len(wave) / cfg.sample_rate:.2f} s: zero-padded to {cfg.audio_seconds} s")
        wave = F.pad(wave, (0, length - len(wave)))
    audio = media.log_stft(wave[:length].clamp(-1, 1), cfg.n_fft, cfg.hop_length).unsqueeze(0)
    return {"audio": audio, "visual": frames, "notes": notes}


def prepare(cfg: PrepareConfig, out_dir: str | Path, *, progress: bool = True) -> Path:
    """Decode the clips of the chosen official split, compute the paper's features and write them
    to the prepared folder `out_dir` (train/val/test .pt, ids.json, report.json). Returns `out_dir`."""
    root = locate(cfg)
    files = list_files(cfg)
    classes = read_classes(root / files["classes"])
    lists = {s: read_list(root / files[s], classes) for s in ("train", "test")}
    missing = {c for clips in lists.values() for c in clips if not (root / "UCF-101" / c).is_file()}
    if missing and not cfg.allow_missing:
        raise media.missing_error("UCF101", root, LAYOUT, [f"UCF-101/{m}" for m in sorted(missing)], SOURCE)
    items, skipped = [], []
    for split, clips in lists.items():
        for clip in clips:
            if clip in missing:
                skipped.append({"id": clip, "split": split, "reason": "missing",
                                "detail": f"UCF-101/{clip} is absent"})
            else:
                items.append({"id": clip, "split": split, "path": root / "UCF-101" / clip,
                              "class": clip.split("/")[0]})
    kept, bad, notes = media.extract(items, lambda item: _clip(cfg, item), f"UCF101 split {cfg.split}", progress)
    skipped += bad
    # A class "has audio" if one of its clips decodes audio (kept, or dropped only for its frames).
    sounding = {k["class"] for k in kept} | {s["id"].split("/")[0] for s in bad if s["reason"] == "too_few_frames"}
    names = [c for c in classes if c in sounding]
    label = {c: i for i, c in enumerate(names)}
    if len(names) != EXPECTED_CLASSES:
        warnings.warn(f"UCF101 under {root}: {len(names)} classes have audio, not the paper's "
                      f"{EXPECTED_CLASSES}; the label map covers the {len(names)} (see report.json)")
    train = [k for k in kept if k["split"] == "train"]
    val_groups = validation_groups([k["id"] for k in train], [label[k["class"]] for k in train],
                                   cfg.val_fraction, cfg.split_seed)
    by_split = {"train": [k for k in train if group_of(k["id"]) not in val_groups],
                "val": [k for k in train if group_of(k["id"]) in val_groups],
                "test": [k for k in kept if k["split"] == "test"]}
    tensors = {s: media.stack(by_split[s], lambda k: label[k["class"]]) for s in media.SPLITS}
    ids = {s: [k["id"] for k in by_split[s]] for s in media.SPLITS}
    report = {
        "dataset": "ucf51", "root": str(root), "source": SOURCE,
        "settings": {k: v for k, v in asdict(cfg).items() if k != "root"},   # the root is recorded apart
        "lists": files, "n_classes": len(names), "classes": names,
        "expected_classes": EXPECTED_CLASSES,
        "class_count_matches_paper": len(names) == EXPECTED_CLASSES,
        "classes_without_audio": [c for c in classes if c not in sounding],
        "shapes": {"audio": list(tensors["train"]["audio"].shape[1:]),
                   "visual": list(tensors["train"]["visual"].shape[1:])},
        "counts": media.count(lists, {s: [k for k in kept if k["split"] == s] for s in lists}, skipped),
        "sizes": {s: {"samples": len(ids[s]), "groups": len({group_of(i) for i in ids[s]})}
                  for s in media.SPLITS},
        "validation_groups": sorted(val_groups),
        "skipped": skipped, "notes": notes}
    return media.write_cache(Path(out_dir), tensors, ids, report)


def load(cfg: LoadConfig) -> TensorSplits:
    """The prepared splits of the folder's official split: "audio" (N, 1, 257, 136) float32,
    "visual" (N, 4, 3, 224, 224) uint8 (shapes at the default settings), "label" (N,) long over
    the classes with audio."""
    return media.load_cache(cfg.prepared, "ucf51")


SPEC = DatasetSpec(name="ucf51", load_config=LoadConfig, load=load, prepare_config=PrepareConfig,
                   prepare=prepare, encoders={"audio": "resnet2d", "visual": "frames"},
                   root_env=ROOT_ENV, source=SOURCE)
