"""simple.py: joint training, Multi-Loss and the unimodal models."""
import pytest
import torch.nn.functional as F

from mcrlib.config import ConfigError
from mcrlib.methods import METHODS, method_params
from mcrlib.methods.base import in_table_order
from tests.conftest import model_and_batch


def test_reference_methods_joint_multiloss_unimodal():
    """simple.py's methods: joint's CE on the fused logits, multi-loss's weighted unimodal CEs,
    unimodal's one modality (checked against the dataset's), and their places in the tables."""
    model, batch = model_and_batch()
    out = model(batch)
    y = batch["label"]
    joint = METHODS["joint"](method_params("joint", {}), model=model).loss(model, batch, out)
    assert joint.keys() == {"task"} and joint["task"].item() == pytest.approx(F.cross_entropy(out.logits, y).item())
    multi = METHODS["multiloss"](method_params("multiloss", {"uni_weight": 0.3}), model=model).loss(model, batch, out)
    uni = F.cross_entropy(out.unimodal_logits["x0"], y) + F.cross_entropy(out.unimodal_logits["x1"], y)
    assert multi["task"].item() == joint["task"].item() and multi["unimodal"].item() == pytest.approx(0.3 * uni.item())
    with pytest.raises(ConfigError, match="uni_weight"):
        method_params("multiloss", {"uni_weight": -1})
    unimodal = METHODS["unimodal"]
    assert unimodal.modalities(method_params("unimodal", {"modality": "x2"}), ("x1", "x2")) == ("x2",)
    with pytest.raises(ConfigError, match="not a modality"):
        unimodal.modalities(method_params("unimodal", {"modality": "x3"}), ("x1", "x2"))
    assert in_table_order(["multiloss", "joint", "unimodal"]) == ["unimodal", "joint", "multiloss"]
    assert [METHODS[n].display for n in ("unimodal", "joint", "multiloss")] == ["Unimodal", "Joint", "Multi-Loss"]
