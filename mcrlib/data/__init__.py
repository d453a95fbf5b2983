"""Datasets: one `DatasetSpec` per module (mcrlib.data.spec), found by name through the lazy
registry (mcrlib.data.registry), loaded as TensorSplits (mcrlib.data.tensors)."""
from __future__ import annotations

from mcrlib.data.registry import DATASETS, data_identity, dataset_modalities, dataset_params, load_dataset
from mcrlib.data.tensors import TensorSplits

__all__ = ["DATASETS", "TensorSplits", "data_identity", "dataset_modalities", "dataset_params", "load_dataset"]
