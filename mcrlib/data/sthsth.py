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
both modalities; resize of the short side to `image_size` + centre crop, stored as uint8
(N, T, 3, S, S).

Two steps (mcrlib.data.spec). `prepare` (the DVC stage `prepare@sthsth`) decodes both official
lists into the prepared folder, each list separately (`train`, `official_val`). `load` reads
that folder alone and makes the splits (LoadConfig.selection):
- "train_share" (the default): val = a class-stratified `val_from_train` share of the train list
  (drawn with `split_seed`), train = the rest, test = the official validation list. Model
  selection (early stopping, the hyperparameter search) never sees the reported test videos.
- "official_val": val = test = the official validation list, the release's behaviour: it builds
  only train and the official validation set and uses the latter for model selection AND for the
  reported numbers, so it SELECTS ON THE TEST SET and its test numbers are optimistic. Kept to
  reproduce the release; not the default for that reason (docs/datasets.md).

Every split is prepared with the evaluation transform and sampler: the release's training-time
augmentation (random frame within each segment, short side x U(1.15, 1.43), one random crop
for the clip, colour jitter on RGB) is not in the prepared frames. Size: 16 x 3 x 224 x 224
bytes = 2.4 MB per video and modality (about 0.8 TB for the full training list), so frames are
streamed to raw files and memory-mapped; `max_per_class` and `image_size` make smaller folders.
"""
from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from mcrlib.atomic import atomic_path, save_torch, write_text
from mcrlib.config import check
from mcrlib.data.spec import DatasetSpec, location, resolve_root
from mcrlib.data.sthsth_frames import ClipReader, keep_as_is, sample_indices
from mcrlib.data.tensors import TensorSplits
from mcrlib.errors import DataError

ROOT_ENV = "MCR_STHSTH_ROOT"   # the data root, used when `root` is ""
MODALITIES = ("rgb", "flow")
SOURCE = ("Something-Something V2 (Goyal et al., ICCV 2017): videos, templates and the official "
          "train/validation lists from Qualcomm (https://developer.qualcomm.com/software/"
          "ai-datasets/something-something); packed as HDF5 (JPEG frames and RGB-encoded optical "
          "flow) with the video lists by Radevski et al., 'Multimodal Distillation for Egocentric "
          "Action Recognition', ICCV 2023 (https://github.com/gorjanradevski/multimodal-"
          "distillation, download link in its README); the MCR release reads them from "
          "<PROJECT_DATA_DIR>/Sth-Sth/")
PARTS = ("train", "official_val")   # the two video lists, prepared separately
REDO = "run `python -m mcrlib.data.prepare sthsth`"


@dataclass(frozen=True)
class PrepareConfig:
    """What `prepare` reads (params.yaml's data.sthsth); file names are relative to `root`."""
    root: str = ""                # the Sth-Sth folder; "" -> $MCR_STHSTH_ROOT
    rgb_file: str = "dataset.hdf5"          # RGB frames (JPEG bytes per frame)
    flow_file: str = "flow_dataset.hdf5"    # optical flow rendered as RGB JPEGs
    train_list: str = "something_something_detections/train_dataset_flow_aligned.json"   # official train
    val_list: str = "something_something_detections/val_dataset_flow_aligned.json"   # official validation
    labels_file: str = "something-something-v2-labels.json"   # template -> class index
    num_frames: int = 16          # release: NUM_FRAMES 16, FRAME_UNIFORM
    image_size: int = 224         # release: resize 224 + centre crop 224 at evaluation
    max_per_class: int = 0        # 0: every video; else the first k listed per class and list
    num_workers: int = 0          # DataLoader workers decoding JPEGs (no effect on the output)

    def __post_init__(self):
        check(self.num_frames >= 1, "data.sthsth.num_frames", self.num_frames, "an integer >= 1")
        check(self.image_size >= 8, "data.sthsth.image_size", self.image_size, "an integer >= 8")
        check(self.max_per_class >= 0, "data.sthsth.max_per_class", self.max_per_class,
              "an integer >= 0 (0 keeps every video)")
        check(self.num_workers >= 0, "data.sthsth.num_workers", self.num_workers, "an integer >= 0")

    def settings(self) -> dict:
        """What the prepared tensors depend on (recorded in the report and the .pt files; `load`
        takes the frames' shape from it). Not the root: the same data anywhere are the same."""
        keys = ("rgb_file", "flow_file", "train_list", "val_list", "labels_file", "num_frames",
                "image_size", "max_per_class")
        return {k: getattr(self, k) for k in keys}


@dataclass(frozen=True)
class LoadConfig:
    """What a run reads (its data.params)."""
    prepared: str = location("data/processed/sthsth")   # the folder `prepare` wrote
    # Which videos select models (val) and which are reported (test):
    #   "train_share": val = a class-stratified `val_from_train` share of the train list (each
    #       class with >= 2 videos gives >= 1 and keeps >= 1), test = the official validation list.
    #   "official_val": val = test = the official validation list. The release's behaviour: it
    #       SELECTS ON THE TEST SET (early stopping and the hyperparameter search pick what scores
    #       best on the reported videos), so its test numbers are optimistic. For reproducing the
    #       release only; the default differs for that reason.
    selection: Literal["train_share", "official_val"] = "train_share"
    val_from_train: float = 0.1   # "train_share": the share of each class held out for val
    split_seed: int = 0           # "train_share": draws the held-out videos

    def __post_init__(self):
        check(self.selection in ("train_share", "official_val"), "data.params.selection",
              self.selection, '"train_share" or "official_val"')
        check(0 < self.val_from_train < 1, "data.params.val_from_train", self.val_from_train,
              'a fraction in (0, 1); selection: "official_val" selects on the official validation '
              "set as the release does")


def _layout(cfg: PrepareConfig) -> tuple[dict[str, tuple[str, str]], str]:
    described = {
        "rgb": (cfg.rgb_file, "RGB frames: per video id, the JPEG bytes of each frame"),
        "flow": (cfg.flow_file, "optical flow as RGB JPEGs, same video ids"),
        "train": (cfg.train_list, 'training videos, a JSON list of {"id", "template", ...}'),
        "val": (cfg.val_list, "official validation videos, same schema"),
        "labels": (cfg.labels_file, "template (brackets removed) -> class index, 174 classes"),
    }
    lines = "\n".join(f"  <root>/{rel:<66} {what}" for rel, what in described.values())
    return described, lines


def layout(cfg: PrepareConfig) -> dict[str, Path]:
    """The raw files; a DataError naming the layout, what is missing and the source."""
    described, lines = _layout(cfg)
    root = resolve_root(cfg.root, ROOT_ENV, layout=lines, source=SOURCE, key="data.sthsth.root")
    paths = {k: root / rel for k, (rel, _) in described.items()}
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        raise DataError(f"the Something-Something V2 root {str(root)!r} (data.sthsth.root) is "
                        f"incomplete: {len(missing)} of {len(paths)} files missing: "
                        f"{', '.join(missing[:5])}.\nExpected layout:\n{lines}\nSource: {SOURCE}.")
    return paths


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:   # a truncated or wrong download
        raise DataError(f"{path} is not valid JSON ({err}): download it again from {SOURCE}") from None


def _read_labels(path: Path) -> dict[str, int]:
    table = _read_json(path)
    ok = isinstance(table, dict) and table and all(str(v).isdigit() for v in table.values())
    labels = {k: int(v) for k, v in table.items()} if ok else {}
    if not ok or sorted(labels.values()) != list(range(len(labels))):
        raise DataError(f"{path}: expected a JSON object mapping each template to a distinct "
                        f"class index 0..K-1 (as in something-something-v2-labels.json)")
    return labels


def _entries(path: Path, labels: dict[str, int], split: str, cfg: PrepareConfig, report: dict):
    """(ids, labels) of a video list; entries without an id or a known template are reported."""
    items = _read_json(path)
    if not isinstance(items, list):
        raise DataError(f"{path}: expected a JSON list of videos, got {type(items).__name__}")
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
            raise DataError(f"Sth-Sth {split}: none of {len(ids)} listed videos could be read; "
                             f"the reasons: {report['skipped'][-3:]} ...")
    counts = report["counts"][split]
    counts.update(selected=len(ids), kept=len(kept),
                  skipped=sum(1 for s in report["skipped"] if s["split"] == split))
    return {"label": torch.tensor([ys[i] for i in kept], dtype=torch.long),
            "ids": [ids[i] for i in kept]}


def prepare(cfg: PrepareConfig, out_dir: str | Path, *, progress: bool = True) -> Path:
    """Decode, sample and crop every listed video of both lists into `out_dir`
    (per list `train`/`official_val`: <list>.rgb.u8, <list>.flow.u8 raw uint8 frames and <list>.pt
    with labels, ids and settings; report.json), each file atomically. Returns `out_dir`."""
    paths, out_dir = layout(cfg), Path(out_dir)
    labels = _read_labels(paths["labels"])
    report = {"dataset": "Something-Something V2 (RGB + optical flow)", "source": SOURCE,
              "settings": cfg.settings(), "n_classes": len(labels), "counts": {},
              "skipped": [], "short_videos": [], "length_mismatch": [],
              "notes": ["frame indices: middle of num_frames equal segments of the flow length "
                        "(release evaluation sampler), shared by RGB and flow; only the sampled "
                        "frames are decoded",
                        "short_videos: fewer flow frames than num_frames, sampled with repetition",
                        "length_mismatch: RGB frames != flow frames + 1 (kept when every sampled "
                        "index exists in both)",
                        "counts: listed = entries in the list; selected = valid entries left by "
                        "max_per_class; kept = prepared; skipped = entries and videos in 'skipped'",
                        "official_val is the test split; val is chosen at load time "
                        "(data.params.selection)"]}
    lists = dict(zip(PARTS, (paths["train"], paths["val"])))
    entries = {s: _entries(p, labels, s, cfg, report) for s, p in lists.items()}
    for split, (ids, ys) in entries.items():
        data = _decode_split(ids, ys, split, paths, cfg, report, progress, out_dir)
        # Written after the frame files, so a .pt file always has complete frames beside it.
        save_torch({**data, "settings": cfg.settings(), "n_classes": len(labels)},
                   out_dir / f"{split}.pt")
    write_text(json.dumps(report, indent=1), out_dir / "report.json")
    return out_dir


def _read_prepared(folder: Path) -> dict[str, dict]:
    """Per list: labels, ids and the frames as memory-mapped uint8 tensors (N, T, 3, S, S), the
    shape taken from the settings `prepare` recorded."""
    prepared = {}
    for part in PARTS:
        path = folder / f"{part}.pt"
        if not path.is_file():
            raise DataError(f"{path} is missing: no prepared Something-Something V2 in {folder}: {REDO}")
        prepared[part] = torch.load(path, weights_only=True)
        settings = prepared[part]["settings"]
        shape = (len(prepared[part]["ids"]), settings["num_frames"], 3, settings["image_size"],
                 settings["image_size"])
        for m in MODALITIES:
            frames = folder / f"{part}.{m}.u8"
            if not frames.is_file() or frames.stat().st_size != math.prod(shape):
                raise DataError(f"{frames} is missing or not {shape} uint8: {REDO}")
            # Copy-on-write map: rows are read from disk when a batch indexes them.
            prepared[part][m] = torch.from_numpy(np.memmap(frames, np.uint8, "c", shape=shape))
    return prepared


def _held_out(labels: torch.Tensor, cfg: LoadConfig) -> tuple[list[int], list[int]]:
    """(train rows, val rows): of each class c with n_c videos, max(1, round(val_from_train * n_c))
    go to val but at least one stays in train, drawn with `split_seed`. (The floor of one keeps
    every class in val on small preparations, e.g. `max_per_class`; it binds only on classes too
    small for the share to round to one video.)"""
    gen = torch.Generator().manual_seed(cfg.split_seed)
    by_class = defaultdict(list)
    for row, y in enumerate(labels.tolist()):
        by_class[y].append(row)
    val = []
    for y in sorted(by_class):
        rows = by_class[y]
        take = min(max(1, round(cfg.val_from_train * len(rows))), len(rows) - 1)
        val += [rows[i] for i in torch.randperm(len(rows), generator=gen)[:take].tolist()]
    if not val:
        raise DataError(f"no class of the prepared train list has two videos: nothing to hold out "
                        f"for val_from_train={cfg.val_from_train}; prepare more videos "
                        f"(data.sthsth.max_per_class) or use selection: official_val")
    val = sorted(val)
    chosen = set(val)
    return [r for r in range(len(labels)) if r not in chosen], val


def _split_rows(prepared: dict, cfg: LoadConfig) -> dict[str, tuple[str, list[int] | None]]:
    """split -> (prepared list, rows or None for all)."""
    if cfg.selection == "official_val":   # the release: selects on the test set
        return {"train": ("train", None), "val": ("official_val", None),
                "test": ("official_val", None)}
    train, val = _held_out(prepared["train"]["label"], cfg)
    return {"train": ("train", train), "val": ("train", val), "test": ("official_val", None)}


def load(cfg: LoadConfig) -> TensorSplits:
    """The prepared tensors as TensorSplits: "rgb" and "flow" (N, T, 3, S, S) uint8 (normalised
    in the model), "label" long. Frames are memory-mapped; the rows of the train share and the
    held-out share ("train_share") are gathered into memory (the trainer holds every split in
    memory on a GPU anyway)."""
    prepared = _read_prepared(Path(cfg.prepared))
    splits = {}
    for split, (part, rows) in _split_rows(prepared, cfg).items():
        keys = (*MODALITIES, "label")
        splits[split] = {k: prepared[part][k] if rows is None else prepared[part][k][rows] for k in keys}
    return TensorSplits(splits=splits, modalities=MODALITIES,
                        n_classes=prepared["train"]["n_classes"])


def split_ids(cfg: LoadConfig) -> dict[str, list[str]]:
    """Video ids of each split, in the row order of `load`."""
    prepared = _read_prepared(Path(cfg.prepared))
    return {split: prepared[part]["ids"] if rows is None else [prepared[part]["ids"][r] for r in rows]
            for split, (part, rows) in _split_rows(prepared, cfg).items()}


SPEC = DatasetSpec(name="sthsth", load_config=LoadConfig, load=load, prepare_config=PrepareConfig,
                   prepare=prepare, encoders={"rgb": "frames", "flow": "frames"},
                   root_env=ROOT_ENV, source=SOURCE)

__all__ = ["LoadConfig", "PrepareConfig", "ROOT_ENV", "SOURCE", "SPEC", "layout", "load",
           "prepare", "sample_indices", "split_ids"]
