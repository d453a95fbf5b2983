"""CMU-MOSI and CMU-MOSEI sentiment regression from MultiBench's aligned feature pickles.

On disk (the public files of MultiBench's affective-computing benchmark):
    <root>/mosi_data.pkl          CMU-MOSI:  vision 20, audio 5,  text 300 features per step
    <root>/mosei_senti_data.pkl   CMU-MOSEI: vision 35, audio 74, text 300 features per step
`root` may also be the pickle itself. Each pickle is {"train" | "valid" | "test": {"vision":
(N, T, Dv), "audio": (N, T, Da), "text": (N, T, 300) GloVe, "labels": (N, 1, 1) sentiment in
[-3, 3], "id" (optional)}}: word-aligned sequences, front-padded with zeros to T (50).

Preprocessing as in the release (MultiBench's affect `get_dataloader`, wrapped by
`FactorCL_Dataloader`), in this order:
1. non-finite feature values are set to 0 (the real audio holds -inf; the release zeroes only
   -inf in audio, here NaN and +-inf in every modality are zeroed, all counted in the report);
2. entries whose text is all zero are dropped (`drop_entry`; the release tests text.sum() == 0),
   as are entries with a non-finite label; both are listed in the report;
3. every modality of a sample starts at its first time step with non-zero text and is
   end-padded with zeros. The release pads each batch to its longest member; here every
   sequence is padded back to the pickle's T, so a sample's tensors do not depend on its batch.
Splits are the pickle's own train / valid / test folds ("valid" becomes "val"). Labels stay
continuous (float32); task "regression", n_classes 1.

Two steps (mcrlib.data.spec): `prepare` (the DVC stage `prepare@mosi` / `prepare@mosei`) reads
the pickle and writes {train,val,test}.pt and report.json into the prepared folder; `load` reads
that folder alone and keeps the modalities a run asks for (V-T by default, V-A-T as an option),
each a (T, D) feature sequence per sample (encoder family "sequence").
"""
from __future__ import annotations

import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from mcrlib.atomic import save_torch, write_text
from mcrlib.config import check
from mcrlib.data.fingerprint import file_sha256
from mcrlib.data.spec import DatasetSpec, location, resolve_root
from mcrlib.data.tensors import TensorSplits
from mcrlib.errors import DataError

ROOT_ENV = "MCR_MULTIBENCH_ROOT"   # folder holding the pickles, used when `root` is ""
SOURCE = ("MultiBench's affective-computing data (https://github.com/pliang279/MultiBench, "
          "download links: https://multibench.readthedocs.io/en/latest/start/datadownload.html"
          "#affective-computing)")
FILES = {"mosi": "mosi_data.pkl", "mosei": "mosei_senti_data.pkl"}
FEATURE_DIMS = {"mosi": {"vision": 20, "audio": 5, "text": 300},
                "mosei": {"vision": 35, "audio": 74, "text": 300}}
MODALITIES = ("vision", "text", "audio")   # the release's order: c = vision, g = text, f = audio
SPLITS = {"train": "train", "val": "valid", "test": "test"}   # ours -> the pickle's
CHUNK = 1024       # samples processed at once (bounds memory on MOSEI's 1 GB of text)


@dataclass(frozen=True)
class PrepareConfig:
    """What `prepare` reads (params.yaml's data.mosi)."""
    root: str = ""        # folder with the pickle (or the pickle itself); "" -> $MCR_MULTIBENCH_ROOT
    dataset: Literal["mosi", "mosei"] = "mosi"   # which pickle: mosi_data.pkl or mosei_senti_data.pkl

    def __post_init__(self):
        check(self.dataset in FILES, "dataset", self.dataset, f"one of {sorted(FILES)}")


@dataclass(frozen=True)
class MoseiPrepareConfig(PrepareConfig):
    """params.yaml's data.mosei: the same schema, MOSEI's pickle."""
    dataset: Literal["mosi", "mosei"] = "mosei"


@dataclass(frozen=True)
class LoadConfig:
    """What a run reads (its data.params)."""
    DATASET: ClassVar[str] = "mosi"   # the prepared folder must hold this dataset
    prepared: str = location("data/processed/mosi")   # the folder `prepare` wrote
    # The modalities, in this order: V-T (the default) or V-A-T ("vision", "text", "audio"); any
    # distinct subset of MODALITIES is accepted.
    modalities: tuple[str, ...] = ("vision", "text")

    def __post_init__(self):
        mods = tuple(self.modalities)
        check(len(mods) >= 1 and set(mods) <= set(MODALITIES) and len(set(mods)) == len(mods),
              "data.params.modalities", mods, f"distinct names out of {list(MODALITIES)}")


@dataclass(frozen=True)
class MoseiLoadConfig(LoadConfig):
    DATASET: ClassVar[str] = "mosei"
    prepared: str = location("data/processed/mosei")


def _layout(dataset: str) -> str:
    d = FEATURE_DIMS[dataset]
    return (f"{FILES[dataset]}: a pickled dict with keys 'train', 'valid', 'test', each a dict of "
            f"numpy arrays 'vision' (N, T, {d['vision']}), 'audio' (N, T, {d['audio']}), "
            f"'text' (N, T, {d['text']}) and 'labels' (N, 1, 1)")


def source_file(cfg: PrepareConfig) -> Path:
    """The pickle of `cfg.dataset`: `cfg.root` (else $MCR_MULTIBENCH_ROOT) is the pickle itself or
    the folder holding it; a DataError naming the expected file, its layout and the source if absent."""
    name, dataset = FILES[cfg.dataset], cfg.dataset
    given = cfg.root or os.environ.get(ROOT_ENV, "")
    if given and Path(given).expanduser().is_file():
        return Path(given).expanduser()
    root = resolve_root(cfg.root, ROOT_ENV, layout=f"<root>/{_layout(dataset)}", source=SOURCE,
                        key=f"data.{dataset}.root")
    path = root / name
    if not path.is_file():
        raise DataError(f"{dataset.upper()} data not found: expected {path} ({_layout(dataset)}); "
                        f"missing 1 of 1 file: {path} (root {root} has no such file). Source: {SOURCE}.")
    return path


def _source(path: Path) -> dict:
    """What the report records of the pickle: its content, not where or when it was copied (the
    report is part of the prepared folder's fingerprint, which must not depend on the machine)."""
    return {"file": path.name, "size": path.stat().st_size, "sha256": file_sha256(path)}


def _read_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            try:
                return pickle.load(f)
            except UnicodeDecodeError:   # written by Python 2
                f.seek(0)
                return pickle.load(f, encoding="latin1")
    except Exception as err:   # truncated, not a pickle, needs modules we lack, ...
        raise DataError(f"{path} could not be read as a pickle ({type(err).__name__}: {err}); the "
                         f"file is corrupt or incomplete: download it again from {SOURCE}") from err


def _check_schema(data, path: Path, dataset: str) -> None:
    """DataError naming what in `data` differs from the layout of `dataset`'s pickle."""
    def fail(what: str):
        raise DataError(f"{path}: {what}; expected {_layout(dataset)}")
    if not isinstance(data, dict):
        fail(f"holds a {type(data).__name__}, not a dict")
    missing = [s for s in SPLITS.values() if s not in data]
    if missing:
        fail(f"split(s) {missing} missing (keys: {sorted(map(str, data))})")
    for split in SPLITS.values():
        part = data[split]
        if not isinstance(part, dict):
            fail(f"split {split!r} is a {type(part).__name__}, not a dict")
        missing = [k for k in (*MODALITIES, "labels") if k not in part]
        if missing:
            fail(f"split {split!r} lacks {missing} (keys: {sorted(map(str, part))})")
        n = len(part["labels"])
        for m in MODALITIES:
            shape = np.shape(part[m])
            if len(shape) != 3 or shape[0] != n:
                fail(f"{split}/{m} has shape {shape}, not (N={n}, T, D)")
            want = FEATURE_DIMS[dataset][m]
            if shape[2] != want:
                other = [d for d, dims in FEATURE_DIMS.items() if dims[m] == shape[2] and d != dataset]
                hint = f" (as in {FILES[other[0]]}: is this the {other[0]} file?)" if other else ""
                fail(f"{split}/{m} has {shape[2]} features per step, {dataset} has {want}{hint}")
        if len({np.shape(part[m])[1] for m in MODALITIES}) != 1:
            fail(f"split {split!r} has sequences of different lengths per modality "
                 f"{ {m: np.shape(part[m])[1] for m in MODALITIES} }")
        if np.size(part["labels"]) != n:
            fail(f"{split}/labels has shape {np.shape(part['labels'])}: not one value per entry")


def _id(ids, row: int):
    if ids is None:
        return None
    value = np.asarray(ids[row]).ravel().tolist()
    value = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in value]
    return value[0] if len(value) == 1 else "/".join(value)


def _listing(rows: list[int], ids, limit: int = 20) -> dict:
    return {"count": len(rows), "rows": rows[:limit],
            **({"ids": [_id(ids, r) for r in rows[:limit]]} if ids is not None else {})}


def _process_split(part: dict, split: str, progress: bool) -> tuple[dict[str, torch.Tensor], dict]:
    """Sanitise, drop empty-text entries, re-align to the first text step; tensors + report."""
    n, steps = len(part["labels"]), np.shape(part["text"])[1]
    labels = np.asarray(part["labels"], dtype=np.float64).reshape(n)
    ids = part.get("id")
    nonfinite = {m: {"nan": 0, "posinf": 0, "neginf": 0} for m in MODALITIES}
    chunks: dict[str, list[np.ndarray]] = {m: [] for m in MODALITIES}
    empty, bad_label, lengths, kept = [], [], [], []
    for lo in tqdm(range(0, n, CHUNK), desc=f"{split} ({n} entries)", unit="chunk", leave=False,
                   disable=not progress):
        hi = min(lo + CHUNK, n)
        x = {}
        for m in MODALITIES:
            a = np.asarray(part[m][lo:hi], dtype=np.float32)
            counts = nonfinite[m]
            counts["nan"] += int(np.isnan(a).sum())
            counts["posinf"] += int(np.isposinf(a).sum())
            counts["neginf"] += int(np.isneginf(a).sum())
            x[m] = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
        has_text = (x["text"] != 0).any(-1)                 # (b, T)
        is_empty = ~has_text.any(1)
        label_ok = np.isfinite(labels[lo:hi])
        empty += (lo + np.flatnonzero(is_empty)).tolist()
        bad_label += (lo + np.flatnonzero(~is_empty & ~label_ok)).tolist()
        keep = ~is_empty & label_ok
        start = has_text.argmax(1)[keep]                    # first step with text
        src = start[:, None] + np.arange(steps)[None]       # step t of the output reads step start+t
        inside = src < steps
        src = np.minimum(src, steps - 1)
        for m in MODALITIES:
            shifted = np.take_along_axis(x[m][keep], src[:, :, None], axis=1)
            shifted[~inside] = 0.0
            chunks[m].append(shifted)
        lengths.append(steps - start)
        kept.append(lo + np.flatnonzero(keep))
    kept_rows = np.concatenate(kept) if kept else np.zeros(0, dtype=np.int64)
    tensors = {m: torch.from_numpy(np.concatenate(chunks[m]) if chunks[m]
                                   else np.zeros((0, steps, np.shape(part[m])[2]), np.float32))
               for m in MODALITIES}
    tensors["label"] = torch.from_numpy(labels[kept_rows].astype(np.float32))
    length = np.concatenate(lengths) if lengths else np.zeros(0)
    report = {
        "entries": n, "kept": int(len(kept_rows)),
        "dropped_empty_text": _listing(empty, ids),
        "dropped_nonfinite_label": _listing(bad_label, ids),
        "nonfinite_features_set_to_0": nonfinite,
        "labels_outside_[-3,3]": int((np.abs(labels[kept_rows]) > 3).sum()),
        "steps": steps,
        "length_from_first_text_step": ({"min": int(length.min()), "mean": round(float(length.mean()), 2),
                                         "max": int(length.max())} if length.size else None),
    }
    return tensors, report


def prepare(cfg: PrepareConfig, out_dir, *, progress: bool = True) -> Path:
    """Read `cfg.dataset`'s pickle, write <out_dir>/{train,val,test}.pt (every modality, float32
    (N, T, D), and "label" float32 (N,)) and report.json, each file atomically (report.json last:
    its presence marks a complete folder). Returns `out_dir`."""
    out_dir = Path(out_dir)
    path = source_file(cfg)
    data = _read_pickle(path)
    _check_schema(data, path, cfg.dataset)
    report = {"dataset": cfg.dataset, "source": _source(path), "feature_dims": FEATURE_DIMS[cfg.dataset],
              "preprocessing": ["non-finite feature values set to 0",
                                "entries with all-zero text or a non-finite label dropped",
                                "each sequence starts at its first step with non-zero text, "
                                "end-padded with zeros to the pickle's length"],
              "splits": {}}
    for ours, theirs in tqdm(SPLITS.items(), desc=f"{cfg.dataset} splits", unit="split",
                             disable=not progress):
        tensors, split_report = _process_split(data[theirs], theirs, progress)
        save_torch(tensors, out_dir / f"{ours}.pt")
        report["splits"][ours] = split_report
        data[theirs] = None    # free the raw arrays of the split
    write_text(json.dumps(report, indent=2), out_dir / "report.json")
    return out_dir


def load(cfg: LoadConfig) -> TensorSplits:
    """The tensors `prepare` wrote in `cfg.prepared`, restricted to `cfg.modalities` (in that order)."""
    folder, dataset = Path(cfg.prepared), cfg.DATASET
    redo = f"run `python -m mcrlib.data.prepare {dataset}`"
    report_path = folder / "report.json"
    if not report_path.is_file():
        raise DataError(f"no prepared {dataset} data in {folder} (report.json missing): {redo}")
    try:
        report = json.loads(report_path.read_text())
    except ValueError as err:
        raise DataError(f"{report_path} is unreadable ({err}): {redo}") from None
    if report.get("dataset") != dataset:
        raise DataError(f"{folder} holds {report.get('dataset')!r} data, not {dataset!r}: point "
                        f"data.params.prepared at the {dataset} folder, or {redo}")
    splits = {}
    for split in SPLITS:
        path = folder / f"{split}.pt"
        if not path.is_file():
            raise DataError(f"{path} is missing from the prepared folder: {redo}")
        tensors = torch.load(path, weights_only=True)
        splits[split] = {**{m: tensors[m] for m in cfg.modalities}, "label": tensors["label"]}
    return TensorSplits(splits=splits, modalities=tuple(cfg.modalities), n_classes=1, task="regression")


def _encoders(cfg: LoadConfig) -> dict[str, str]:
    # Every modality is a word-aligned (T, D) feature sequence: the Transformer family.
    return {m: "sequence" for m in cfg.modalities}


MOSI = DatasetSpec(name="mosi", task="regression", load_config=LoadConfig, load=load, prepare_config=PrepareConfig,
                   prepare=prepare, encoders=_encoders, root_env=ROOT_ENV, source=SOURCE)
MOSEI = DatasetSpec(name="mosei", task="regression", load_config=MoseiLoadConfig, load=load,
                    prepare_config=MoseiPrepareConfig, prepare=prepare, encoders=_encoders,
                    root_env=ROOT_ENV, source=SOURCE)

__all__ = ["FEATURE_DIMS", "FILES", "MODALITIES", "MOSEI", "MOSI", "LoadConfig", "MoseiLoadConfig",
           "MoseiPrepareConfig", "PrepareConfig", "ROOT_ENV", "SOURCE", "load", "prepare", "source_file"]
