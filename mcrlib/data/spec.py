"""The one shape of a dataset: a `DatasetSpec` that each dataset module exposes.

A dataset has two steps, each with its own validated config:

  prepare(cfg, out_dir)   reads the public on-disk layout under the data root (the config's
                          `root`, else the environment variable the spec documents) and writes
                          tensors into the prepared folder (the DVC stage `prepare@<name>`,
                          mcrlib.data.prepare). Datasets drawn from params (synthetic) have none.
  load(cfg)               reads the prepared folder named by the load config's `prepared` field
                          and returns TensorSplits; it never reads raw media.

The spec also declares each modality's encoder family, so the model is chosen by what a
modality is, not by the rank of its tensors. Location fields (`prepared`, marked with
`location()`) say where data are, not what they are: the run key leaves them out and takes the
prepared folder's content fingerprint instead (mcrlib.data.fingerprint), so a moved checkout
shares its runs and a re-prepared folder never does.

Adding a dataset: one module in mcrlib/data with its configs, its two functions and a top-level
`<NAME> = DatasetSpec(name="...", ...)` with a literal name (mcrlib.data.registry finds it by
reading the source: no registry line); its test fixtures; a params.yaml entry.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from mcrlib.errors import DataError

# Encoder families (mcrlib.models.build_encoder): what a modality's samples are.
ENCODER_FAMILIES = ("mlp",          # feature vectors (D,)
                    "resnet2d",     # one image or spectrogram (C, H, W): ResNet-18
                    "frames",       # a stack of frames (T, C, H, W): ResNet-18 per frame, or model.video_encoder
                    "sequence",     # a feature sequence (T, D): Transformer
                    "waveform")     # raw audio (L,): only model.encoders' speech_conformer reads it


def location(default: str = ""):
    """A config field that says where data are (left out of the run key)."""
    return field(default=default, metadata={"location": True})


def is_location(f: dataclasses.Field) -> bool:
    return bool(f.metadata.get("location"))


def content_params(cfg) -> dict:
    """A load config's fields without its location fields: what the data are."""
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if not is_location(f)}


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: its load config and function, optionally its prepare config and function, and
    the encoder family of each modality (a mapping, or a function of the load config for
    datasets whose modalities are a param)."""
    name: str
    load_config: type
    load: Callable[[Any], Any]
    encoders: Mapping[str, str] | Callable[[Any], Mapping[str, str]]
    prepare_config: type | None = None
    prepare: Callable[[Any, Path], Any] | None = None
    task: str = "classification"  # or "regression" (a real-valued target): methods may not support it
    root_env: str = ""            # the documented environment variable of the raw data root
    source: str = ""              # where the raw data come from (for error messages)

    def __post_init__(self):
        if (self.prepare is None) != (self.prepare_config is None):
            raise TypeError(f"dataset {self.name!r}: prepare and prepare_config go together")
        fields = {f.name: f for f in dataclasses.fields(self.load_config)}
        if self.prepare is not None and not ("prepared" in fields and is_location(fields["prepared"])):
            raise TypeError(f"dataset {self.name!r}: a prepared dataset's load config needs a "
                            "`prepared: str = location(...)` field")
        if not callable(self.encoders):
            bad = {m: f for m, f in self.encoders.items() if f not in ENCODER_FAMILIES}
            if bad:
                raise TypeError(f"dataset {self.name!r}: unknown encoder families {bad}; "
                                f"expected {ENCODER_FAMILIES}")

    def encoder_families(self, cfg) -> dict[str, str]:
        """modality -> encoder family, in the dataset's modality order."""
        return dict(self.encoders(cfg) if callable(self.encoders) else self.encoders)

    def modalities(self, cfg) -> tuple[str, ...]:
        return tuple(self.encoder_families(cfg))

    def prepared_folder(self, cfg) -> Path | None:
        """The prepared folder a load config reads (relative paths: to the working directory;
        the studies make them absolute from the project root); None if nothing is prepared."""
        if self.prepare is None:
            return None
        return Path(cfg.prepared).expanduser()


def resolve_root(root: str, env: str, *, layout: str, source: str, key: str) -> Path:
    """The one way to find a data root: the `root` param, else the environment variable `env`;
    an existing folder, or a DataError that says what to set and what the folder must hold."""
    value = root or os.environ.get(env, "")
    if not value:
        raise DataError(f"no data root: set {key} or the environment variable {env}.\n"
                        f"Expected layout:\n{layout}\nSource: {source}")
    path = Path(value).expanduser()
    if not path.is_dir():
        raise DataError(f"data root {path} ({key or env}) is not a folder.\nExpected layout:\n{layout}\n"
                        f"Source: {source}")
    return path
