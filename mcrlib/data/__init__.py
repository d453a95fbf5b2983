"""Datasets by name. Each entry: a params dataclass and a builder returning TensorSplits."""
from __future__ import annotations

from mcrlib.config import ConfigError, from_dict
from mcrlib.data import ave, avdigits, cremad, mosi, sthsth, ucf
from mcrlib.data.synthetic import SyntheticConfig, make_synthetic
from mcrlib.data.tensors import TensorSplits

DATASETS = {"synthetic": (SyntheticConfig, make_synthetic),
            "avdigits": (avdigits.AVDigitsData, avdigits.load),
            "cremad": (cremad.CremadConfig, cremad.build),
            "ave": (ave.AVEConfig, ave.build),
            "ucf51": (ucf.UCF51Config, ucf.build),
            "mosi": (mosi.MosiConfig, mosi.make_mosi),
            "mosei": (mosi.MoseiConfig, mosi.make_mosi),
            "sthsth": (sthsth.SthSthConfig, sthsth.make_sthsth)}


def dataset_params(name: str, params: dict):
    if name not in DATASETS:
        raise ConfigError(f"data.name={name!r} is unknown: expected one of {sorted(DATASETS)}")
    return from_dict(DATASETS[name][0], params, "data.params")


def load_dataset(name: str, params: dict) -> TensorSplits:
    return DATASETS[name][1](dataset_params(name, params))


__all__ = ["DATASETS", "TensorSplits", "dataset_params", "load_dataset"]
