"""Datasets by name, imported lazily: `import mcrlib.data` imports no dataset module, and so no
media library (PyAV, soundfile, h5py); a dataset's module is imported when its spec is asked for.

The entries are found in the source: each module's top-level `DatasetSpec(name=...)` assignments.
"""
from __future__ import annotations

import ast
import functools
import importlib
from collections.abc import Mapping
from pathlib import Path

from mcrlib.config import ConfigError, from_dict



@functools.lru_cache(maxsize=1)
def _specs() -> dict[str, str]:
    """name -> "module:attribute", found by reading (not importing) the modules of this package:
    every top-level `X = DatasetSpec(name="...", ...)`. A new dataset module is registered by
    existing; importing none of them keeps the media libraries out of `import mcrlib.data`."""
    found = {}
    for path in sorted(Path(__file__).parent.glob("*.py")):
        for node in ast.parse(path.read_text(), filename=str(path)).body:
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                    and getattr(node.value.func, "id", None) == "DatasetSpec"):
                name = next((k.value.value for k in node.value.keywords
                             if k.arg == "name" and isinstance(k.value, ast.Constant)), None)
                if name is None or name in found:
                    raise TypeError(f"{path}: DatasetSpec needs a unique literal name= (found {name!r})")
                found[name] = f"mcrlib.data.{path.stem}:{node.targets[0].id}"
    return found


class _Registry(Mapping):
    """name -> DatasetSpec; iterating and membership import nothing."""

    def __getitem__(self, name):
        if name not in _specs():
            raise ConfigError(f"data.name={name!r} is unknown: expected one of {sorted(_specs())}")
        module, attribute = _specs()[name].split(":")
        return getattr(importlib.import_module(module), attribute)

    def __iter__(self):
        return iter(_specs())

    def __len__(self):
        return len(_specs())

    def module_name(self, name: str) -> str:
        """The module that defines dataset `name` (for the run key's code closure)."""
        if name not in _specs():
            self[name]   # the unknown-name error
        return _specs()[name].split(":")[0]


DATASETS = _Registry()


def dataset_params(name: str, params: Mapping | None):
    """The validated load config of dataset `name`."""
    return from_dict(DATASETS[name].load_config, params or {}, "data.params")


def load_dataset(name: str, params: Mapping | None):
    """TensorSplits of dataset `name`, with each modality's declared encoder family. A prepared
    dataset's folder is checked against its fingerprint first (mcrlib.data.fingerprint)."""
    spec = DATASETS[name]
    cfg = dataset_params(name, params)
    folder = spec.prepared_folder(cfg)
    if folder is not None:
        from mcrlib.data import fingerprint
        fingerprint.verify(folder, name)
    data = spec.load(cfg)
    data.encoders = spec.encoder_families(cfg)
    return data


def data_identity(name: str, params: Mapping | None) -> dict:
    """What a run's data are, for its key: the load config with every default filled in and
    without its location fields, plus the prepared folder's verified content fingerprint."""
    from mcrlib.data.spec import content_params
    spec = DATASETS[name]
    cfg = dataset_params(name, params)
    identity = {"name": name, "params": content_params(cfg)}
    folder = spec.prepared_folder(cfg)
    if folder is not None:
        from mcrlib.data import fingerprint
        identity["fingerprint"] = fingerprint.verify(folder, name)
    return identity


def dataset_modalities(name: str, params: Mapping | None) -> tuple[str, ...]:
    """The modalities a dataset declares, without loading it."""
    return DATASETS[name].modalities(dataset_params(name, params))

