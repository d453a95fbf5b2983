"""Something-Something V2 with RGB frames and optical flow (paper Table 1), read from the layout
of Radevski et al.'s multimodal distillation that the MCR release's `SthSth_VideoLayoutFlow`
loader reads (`<PROJECT_DATA_DIR>/Sth-Sth/`):

    dataset.hdf5           RGB frames, JPEG bytes per frame, keyed by video id (sthsth_frames.py)
    flow_dataset.hdf5      optical flow rendered as RGB JPEGs, same keys, one frame fewer
    something_something_detections/train_dataset_flow_aligned.json   [{"id", "template", ...}]
    something_something_detections/val_dataset_flow_aligned.json     official validation list
    something-something-v2-labels.json   {template without brackets: class index}, 174 classes

Label of an entry: labels[template with "[" and "]" removed] (the release's `get_actions`).
Frames: 16 indices uniformly spread over the flow length (middle of each segment), shared by
both modalities; resize of the short side to `image_size` + centre crop, cached as uint8
(N, T, 3, S, S). Splits: the release builds train and the official validation set only and
uses the latter for model selection AND reporting; that is the default here (val = test =
official validation). `val_from_train > 0` instead holds out a class-stratified share of train
for model selection and keeps the official validation set for the test only.

Every split is cached with the evaluation transform and sampler: the release's training-time
augmentation (random frame within each segment, short side x U(1.15, 1.43), one random crop
for the clip, colour jitter on RGB) is not in the cache. Size: 16 x 3 x 224 x 224 bytes = 2.4 MB
per video and modality (about 0.8 TB for the full training list), so frames are streamed to raw
files and memory-mapped; `max_per_class` and `image_size` make smaller caches.
"""
from __future__ import annotations

import json
import math
import os
import re
from collections import Counter, defaultdict
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from mcrlib.atomic import atomic_path, save_torch, write_text
from mcrlib.config import check
from mcrlib.data.sthsth_frames import ClipReader, keep_as_is, sample_indices
from mcrlib.data.location import project_path
from mcrlib.data.tensors import TensorSplits

ENV_ROOT = "MCR_STHSTH_ROOT"
MODALITIES = ("rgb", "flow")
SOURCE = ("Something-Something V2 (Goyal et al., ICCV 2017): videos, templates and the official "
          "train/validation lists from Qualcomm (https://developer.qualcomm.com/software/"
          "ai-datasets/something-something); packed as HDF5 (JPEG frames and RGB-encoded optical "
          "flow) with the video lists by Radevski et al., 'Multimodal Distillation for Egocentric "
          "Action Recognition', ICCV 2023 (https://github.com/gorjanradevski/multimodal-"
          "distillation, download link in its README); the MCR release reads them from "
          "<PROJECT_DATA_DIR>/Sth-Sth/")
PARTS = ("train", "official_val")   # the two video lists, cached separately


@dataclass(frozen=True)
class SthSthConfig:
    root: str = field(default_factory=lambda: os.environ.get(ENV_ROOT, ""))
    cache_dir: str = "data/processed/sthsth"   # used by make_sthsth (the registry builder)
    rgb_file: str = "dataset.hdf5"
    flow_file: str = "flow_dataset.hdf5"
    train_list: str = "something_something_detections/train_dataset_flow_aligned.json"
    val_list: str = "something_something_detections/val_dataset_flow_aligned.json"
    labels_file: str = "something-something-v2-labels.json"
    num_frames: int = 16          # release: NUM_FRAMES 16, FRAME_UNIFORM
    image_size: int = 224         # release: resize 224 + centre crop 224 at evaluation
    val_from_train: float = 0.0   # 0: val = official validation (release); else a train share
    split_seed: int = 0           # draws the held-out share of train
    max_per_class: int = 0        # 0: every video; else the first k listed per class and split
    num_workers: int = 0          # DataLoader workers decoding JPEGs in preprocess

    def __post_init__(self):
        check(self.num_frames >= 1, "data.params.num_frames", self.num_frames, "an integer >= 1")
        check(self.image_size >= 8, "data.params.image_size", self.image_size, "an integer >= 8")
        check(0 <= self.val_from_train < 1, "data.params.val_from_train", self.val_from_train,
              "a fraction in [0, 1): 0 uses the official validation set as the release does")
        check(self.max_per_class >= 0, "data.params.max_per_class", self.max_per_class,
              "an integer >= 0 (0 keeps every video)")
        check(self.num_workers >= 0, "data.params.num_workers", self.num_workers, "an integer >= 0")

    def cache_settings(self) -> dict:
        """What the cached tensors depend on: a cache made with other values is refused."""
        keys = ("rgb_file", "flow_file", "train_list", "val_list", "labels_file", "num_frames",
                "image_size", "max_per_class")
        return {k: getattr(self, k) for k in keys}


def layout(cfg: SthSthConfig) -> dict[str, Path]:
    """The raw files; FileNotFoundError naming the layout, what is missing and the source."""
    root = Path(cfg.root) if cfg.root else None
    described = {
        "rgb": (cfg.rgb_file, "RGB frames: per video id, the JPEG bytes of each frame"),
        "flow": (cfg.flow_file, "optical flow as RGB JPEGs, same video ids"),
        "train": (cfg.train_list, 'training videos, a JSON list of {"id", "template", ...}'),
        "val": (cfg.val_list, "official validation videos, same schema"),
        "labels": (cfg.labels_file, "template (brackets removed) -> class index, 174 classes"),
    }
    paths = {k: (root / rel if root else Path(rel)) for k, (rel, _) in described.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()] if root else []
    if root and not missing:
        return paths
    lines = "\n".join(f"  <root>/{rel:<66} {what}" for rel, what in described.values())
    if root is None:
        head = (f"no Something-Something V2 root given: set data.params.root or the environment "
                f"variable {ENV_ROOT}")
    else:
        state = "does not exist" if not root.is_dir() else "is incomplete"
        head = (f"the Something-Something V2 root {str(root)!r} (data.params.root) {state}: "
                f"{len(missing)} of {len(paths)} files missing: {', '.join(missing[:5])}")
    raise FileNotFoundError(f"{head}.\nExpected layout:\n{lines}\nSource: {SOURCE}.")


def _read_labels(path: Path) -> dict[str, int]:
    table = json.loads(path.read_text())
    ok = isinstance(table, dict) and table and all(str(v).isdigit() for v in table.values())
    labels = {k: int(v) for k, v in table.items()} if ok else {}
    if not ok or sorted(labels.values()) != list(range(len(labels))):
        raise ValueError(f"{path}: expected a JSON object mapping each template to a distinct "
                         f"class index 0..K-1 (as in something-something-v2-labels.json)")
    return labels


def _entries(path: Path, labels: dict[str, int], split: str, cfg: SthSthConfig, report: dict):
    """(ids, labels) of a video list; entries without an id or a known template are reported."""
    items = json.loads(path.read_text())
    if not isinstance(items, list):
        raise ValueError(f"{path}: expected a JSON list of videos, got {type(items).__name__}")
    ids, ys, per_class = [], [], Counter()
    for n, e in enumerate(items):
        if not isinstance(e, dict) or "id" not in e or "template" not in e:
            report["skipped"].append({"split": split, "id": None, "entry": n,
                                      "reason": 'entry without "id" or "template"'})
            continue
        template = re.sub(r"[\[\]]", "", e["template"])
        if template not in labels:
            report["skipped"].append({"split": split, "id": str(e["id"]),
                                      "reason": f"template {template!r} not in {cfg.labels_file}"})
            continue
        y = labels[template]
        per_class[y] += 1
        if cfg.max_per_class and per_class[y] > cfg.max_per_class:
            continue
        ids.append(str(e["id"]))
        ys.append(y)
    report["counts"][split] = {"listed": len(items)}
    return ids, ys


def _decode_split(ids, ys, split, paths, cfg, report, progress, out_dir: Path):
    """Streams the kept clips of one list to <split>.{rgb,flow}.u8 (raw uint8 rows of shape
    (T, 3, S, S), so the full dataset never has to fit in memory); returns labels and ids."""
    reader = ClipReader(ids, str(paths["rgb"]), str(paths["flow"]), cfg.num_frames, cfg.image_size)
    loader = DataLoader(reader, batch_size=None, collate_fn=keep_as_is, num_workers=cfg.num_workers)
    kept = []
    with ExitStack() as stack:
        stack.callback(reader.close)
        files = {m: stack.enter_context(open(stack.enter_context(atomic_path(
            out_dir / f"{split}.{m}.u8")), "wb")) for m in MODALITIES}
        for clip in tqdm(loader, total=len(ids), desc=f"Sth-Sth {split}", disable=not progress):
            vid = ids[clip.index]
            if clip.reason:
                report["skipped"].append({"split": split, "id": vid, "reason": clip.reason})
                continue
            if clip.flow_frames < cfg.num_frames:
                report["short_videos"].append({
                    "split": split, "id": vid, "rgb_frames": clip.rgb_frames,
                    "flow_frames": clip.flow_frames,
                    "indices": sample_indices(clip.flow_frames, cfg.num_frames)})
            if clip.rgb_frames != clip.flow_frames + 1:
                report["length_mismatch"].append({"split": split, "id": vid,
                                                  "rgb_frames": clip.rgb_frames,
                                                  "flow_frames": clip.flow_frames})
            for m in MODALITIES:
                files[m].write(getattr(clip, m).contiguous().numpy().tobytes())
            kept.append(clip.index)
        if not kept:
            raise ValueError(f"Sth-Sth {split}: none of {len(ids)} listed videos could be read; "
                             f"the reasons: {report['skipped'][-3:]} ...")
    counts = report["counts"][split]
    counts.update(selected=len(ids), kept=len(kept),
                  skipped=sum(1 for s in report["skipped"] if s["split"] == split))
    return {"label": torch.tensor([ys[i] for i in kept], dtype=torch.long),
            "ids": [ids[i] for i in kept]}


def preprocess(cfg: SthSthConfig, out_dir: str | Path, *, progress: bool = True) -> Path:
    """Decode, sample and crop every listed video of both lists into `out_dir`
    (per list `train`/`official_val`: <list>.rgb.u8, <list>.flow.u8 raw uint8 frames and <list>.pt
    with labels, ids and settings; report.json). Returns `out_dir`."""
    paths, out_dir = layout(cfg), Path(out_dir)
    labels = _read_labels(paths["labels"])
    report = {"dataset": "Something-Something V2 (RGB + optical flow)", "source": SOURCE,
              "settings": cfg.cache_settings(), "n_classes": len(labels), "counts": {},
              "skipped": [], "short_videos": [], "length_mismatch": [],
              "notes": ["frame indices: middle of num_frames equal segments of the flow length "
                        "(release evaluation sampler), shared by RGB and flow; only the sampled "
                        "frames are decoded",
                        "short_videos: fewer flow frames than num_frames, sampled with repetition",
                        "length_mismatch: RGB frames != flow frames + 1 (kept when every sampled "
                        "index exists in both)",
                        "counts: listed = entries in the list; selected = valid entries left by "
                        "max_per_class; kept = cached; skipped = entries and videos in 'skipped'"]}
    lists = dict(zip(PARTS, (paths["train"], paths["val"])))
    entries = {s: _entries(p, labels, s, cfg, report) for s, p in lists.items()}
    for split, (ids, ys) in entries.items():
        data = _decode_split(ids, ys, split, paths, cfg, report, progress, out_dir)
        # Written last: its presence marks the split's frame files as complete.
        save_torch({**data, "settings": cfg.cache_settings(), "n_classes": len(labels)},
                   out_dir / f"{split}.pt")
    write_text(json.dumps(report, indent=1), out_dir / "report.json")
    return out_dir


def _read_cache(cfg: SthSthConfig, cache_dir: Path) -> dict[str, dict]:
    """Per list: labels, ids and the frames as memory-mapped uint8 tensors (N, T, 3, S, S)."""
    cached = {}
    for part in PARTS:
        path = cache_dir / f"{part}.pt"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: run mcrlib.data.sthsth.preprocess(cfg, "
                                    f"{str(cache_dir)!r}) first")
        cached[part] = torch.load(path, weights_only=True)
        if cached[part]["settings"] != cfg.cache_settings():
            raise ValueError(f"{path} was made with {cached[part]['settings']}, not with "
                             f"{cfg.cache_settings()}: preprocess again")
        shape = (len(cached[part]["ids"]), cfg.num_frames, 3, cfg.image_size, cfg.image_size)
        for m in MODALITIES:
            frames = cache_dir / f"{part}.{m}.u8"
            if not frames.is_file() or frames.stat().st_size != math.prod(shape):
                raise ValueError(f"{frames} is missing or not {shape} uint8: preprocess again")
            # Copy-on-write map: rows are read from disk when a batch indexes them.
            cached[part][m] = torch.from_numpy(np.memmap(frames, np.uint8, "c", shape=shape))
    return cached


def _held_out(labels: torch.Tensor, cfg: SthSthConfig) -> tuple[list[int], list[int]]:
    """(train rows, val rows): round(val_from_train * n_c) videos of each class c, at least one
    left in train, drawn with `split_seed`."""
    gen = torch.Generator().manual_seed(cfg.split_seed)
    by_class = defaultdict(list)
    for row, y in enumerate(labels.tolist()):
        by_class[y].append(row)
    val = []
    for y in sorted(by_class):
        rows = by_class[y]
        take = min(round(cfg.val_from_train * len(rows)), len(rows) - 1)
        val += [rows[i] for i in torch.randperm(len(rows), generator=gen)[:take].tolist()]
    val = sorted(val)
    chosen = set(val)
    return [r for r in range(len(labels)) if r not in chosen], val


def _split_rows(cached: dict, cfg: SthSthConfig) -> dict[str, tuple[str, list[int] | None]]:
    """split -> (cache part, rows or None for all)."""
    if cfg.val_from_train == 0:
        return {"train": ("train", None), "val": ("official_val", None),
                "test": ("official_val", None)}
    train, val = _held_out(cached["train"]["label"], cfg)
    return {"train": ("train", train), "val": ("train", val), "test": ("official_val", None)}


def load(cfg: SthSthConfig, cache_dir: str | Path) -> TensorSplits:
    """The cached tensors as TensorSplits: "rgb" and "flow" (N, T, 3, S, S) uint8 (normalised in
    the model), "label" long. Frames are memory-mapped; the rows of a held-out share of train are
    copied into memory."""
    cached = _read_cache(cfg, Path(cache_dir))
    splits = {}
    for split, (part, rows) in _split_rows(cached, cfg).items():
        keys = (*MODALITIES, "label")
        splits[split] = {k: cached[part][k] if rows is None else cached[part][k][rows] for k in keys}
    return TensorSplits(splits=splits, modalities=MODALITIES,
                        n_classes=cached["train"]["n_classes"])


def split_ids(cfg: SthSthConfig, cache_dir: str | Path) -> dict[str, list[str]]:
    """Video ids of each split, in the row order of `load`."""
    cached = _read_cache(cfg, Path(cache_dir))
    return {split: cached[part]["ids"] if rows is None else [cached[part]["ids"][r] for r in rows]
            for split, (part, rows) in _split_rows(cached, cfg).items()}


def make_sthsth(cfg: SthSthConfig) -> TensorSplits:
    """Registry builder: preprocess into `cfg.cache_dir` unless a matching cache is there."""
    cache = project_path(cfg.cache_dir)
    try:
        return load(cfg, cache)
    except (FileNotFoundError, ValueError, KeyError):
        layout(cfg)   # a missing root is reported as such, not as a missing cache
        preprocess(cfg, cache)
        return load(cfg, cache)


__all__ = ["SthSthConfig", "layout", "load", "make_sthsth", "preprocess", "sample_indices",
           "split_ids"]
