"""Datasets by name, imported lazily: `import mcrlib.data` imports no dataset module, and so no
media library (PyAV, soundfile, h5py); a dataset's module is imported when its spec is asked for.

Each entry names the module attribute holding the dataset's `DatasetSpec` (mcrlib.data.spec).
"""
from __future__ import annotations

import importlib
from collections.abc import Mapping

from mcrlib.config import ConfigError, from_dict

_SPECS = {"synthetic": "mcrlib.data.synthetic:SPEC",
          "avdigits": "mcrlib.data.avdigits:SPEC",
          "cremad": "mcrlib.data.cremad:SPEC",
          "ave": "mcrlib.data.ave:SPEC",
          "ucf51": "mcrlib.data.ucf:SPEC",
          "mosi": "mcrlib.data.mosi:MOSI",
          "mosei": "mcrlib.data.mosi:MOSEI",
          "sthsth": "mcrlib.data.sthsth:SPEC"}


class _Registry(Mapping):
    """name -> DatasetSpec; iterating and membership import nothing."""

    def __getitem__(self, name):
        if name not in _SPECS:
            raise ConfigError(f"data.name={name!r} is unknown: expected one of {sorted(_SPECS)}")
        module, attribute = _SPECS[name].split(":")
        return getattr(importlib.import_module(module), attribute)

    def __iter__(self):
        return iter(_SPECS)

    def __len__(self):
        return len(_SPECS)

    def module_name(self, name: str) -> str:
        """The module that defines dataset `name` (for the run key's code closure)."""
        if name not in _SPECS:
            self[name]   # the unknown-name error
        return _SPECS[name].split(":")[0]


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

