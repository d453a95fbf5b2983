"""Ensemble: trains nothing; fused = sum of the members' standardised logits (or averaged
probabilities), the other combination reported beside it, logit-level contributions; through
run(), the members are the cached unimodal runs."""
import math
from types import SimpleNamespace

import pytest
import torch

from mcrlib.config import RunConfig, from_dict
from mcrlib.methods import METHODS
from mcrlib.runs import run
from tests.conftest import TINY_RUN

# Two members, two classes, labels 0 1 1 0. Member a is right everywhere with small logits;
# member b is confidently wrong on rows 0 and 1 (margin 20) and right on rows 2 and 3 (margin 60).
Y = torch.tensor([0, 1, 1, 0])
A = torch.tensor([[1., -1.], [-1., 1.], [-1., 1.], [1., -1.]])
B = torch.tensor([[-10., 10.], [10., -10.], [-30., 30.], [30., -30.]])
# Both have mean 0; std (unbiased, 8 entries): a sqrt(8/7), b sqrt((4 * 100 + 4 * 900) / 7).
S_A, S_B = math.sqrt(8 / 7), math.sqrt(4000 / 7)


def member(logits):
    split = {"fused": logits, "x": torch.zeros(4, 2), "label": Y, "group": torch.arange(4)}
    return SimpleNamespace(predictions={"val": split, "test": split})


def compose(combine=None):
    params = {} if combine is None else {"combine": combine}
    config = from_dict(RunConfig, {**TINY_RUN, "method": {"name": "ensemble", "params": params}})
    return METHODS["ensemble"].compose(config, {"member:a": member(A), "member:b": member(B)},
                                       SimpleNamespace(task="classification"))


def test_class_attributes_and_required_runs():
    cls = METHODS["ensemble"]
    assert not cls.trains and cls.rank == 0 and cls.display == "Ensemble"
    config = from_dict(RunConfig, {**TINY_RUN, "method": {"name": "ensemble"}})
    members = cls.required_runs(config, ("x1", "x2"))
    assert list(members) == ["member:x1", "member:x2"]
    assert [c.method.name for c in members.values()] == ["unimodal", "unimodal"]
    assert [c.method.params for c in members.values()] == [{"modality": "x1"}, {"modality": "x2"}]
    assert all(c.train == config.train and c.model == config.model and c.seed == config.seed
               for c in members.values())


def test_standardised_logits_equalise_the_members_scales():
    predictions, metrics = compose()
    test = predictions["test"]
    # fused = a / s_a + b / s_b (the means are 0); the 1e-8 in the denominators is negligible here.
    torch.testing.assert_close(test["fused"], A / S_A + B / S_B)
    # Row 0's margin for class 0: 2 / s_a - 20 / s_b = 1.871 - 0.837 > 0, row 1 symmetric: a wins
    # rows 0-1, both agree on rows 2-3, so the fused accuracy is 1.
    assert metrics["test_acc_fused"] == 1.0 and metrics["val_acc_fused"] == 1.0
    # The members keep their own logits and accuracies under their modality's name.
    assert torch.equal(test["a"], A) and torch.equal(test["b"], B)
    assert metrics["test_acc_a"] == 1.0 and metrics["test_acc_b"] == 0.5
    assert torch.equal(test["label"], Y) and torch.equal(test["group"], torch.arange(4)) and "x" not in test
    # Averaged probabilities, reported beside it: row 0 gives class 0 (sigma(2) + sigma(-20)) / 2
    # = 0.44 < 1/2, so b's confidence wins rows 0-1 and the accuracy is 1/2.
    assert metrics["test_acc_fused_probabilities"] == 0.5 and metrics["val_acc_fused_probabilities"] == 0.5
    # Shapley at the logit level, a zeroed member standardised to 0: v({}) = 1/2 (all-zero logits
    # predict class 0, half the labels), v(a) = 1, v(b) = 1/2, v(ab) = 1.
    # phi_a = ((1 - 1/2) + (1 - 1/2)) / 2 = 1/2, phi_b = ((1/2 - 1/2) + (1 - 1)) / 2 = 0.
    assert metrics["test_contrib_shapley_a"] == pytest.approx(0.5)
    assert metrics["test_contrib_shapley_b"] == pytest.approx(0.0)
    assert {"test_contrib_permute_a", "test_contrib_permute_b"} <= set(metrics)
    assert not any(k.startswith("val_contrib") for k in metrics)


def test_probability_averaging_reports_the_standardised_sum_beside_it():
    predictions, metrics = compose("probabilities")
    expected = torch.stack([A.softmax(-1), B.softmax(-1)]).mean(0).log()
    torch.testing.assert_close(predictions["test"]["fused"], expected)
    assert metrics["test_acc_fused"] == 0.5 and metrics["test_acc_fused_standardised_logits"] == 1.0
    assert "test_acc_fused_probabilities" not in metrics
    # The raw logit sum: b's larger logits win rows 0-1 (a + b = (-9, 9), (9, -9)): accuracy 1/2.
    assert metrics["test_acc_fused_logit_sum"] == 0.5
    # A zeroed member is the uniform distribution: v({}) = 1/2, v(a) = 1 (a's mean with (1/2, 1/2)),
    # v(b) = 1/2, v(ab) = 1/2: phi_a = ((1 - 1/2) + (1/2 - 1/2)) / 2 = 1/4, phi_b = -1/4.
    assert metrics["test_contrib_shapley_a"] == pytest.approx(0.25)
    assert metrics["test_contrib_shapley_b"] == pytest.approx(-0.25)


def test_ensemble_combines_the_cached_unimodal_runs(tmp_path):
    ensemble = run({**TINY_RUN, "method": {"name": "ensemble"}}, tmp_path)
    members = [run({**TINY_RUN, "method": {"name": "unimodal", "params": {"modality": m}}}, tmp_path)
               for m in ("x1", "x2")]
    assert len(list(tmp_path.iterdir())) == 3  # the members came from the cache, not retrained
    logits = [m.predictions["test"]["fused"] for m in members]
    z = sum((l - l.mean()) / l.std() for l in logits)
    torch.testing.assert_close(ensemble.predictions["test"]["fused"], z, rtol=1e-5, atol=1e-5)
    expected = (z.argmax(-1) == ensemble.predictions["test"]["label"]).float().mean().item()
    assert ensemble.metrics["test_acc_fused"] == pytest.approx(expected)
    assert ensemble.metrics["test_acc_x1"] == members[0].metrics["test_acc_fused"]
    assert 0 <= ensemble.metrics["test_acc_fused_probabilities"] <= 1
    assert ensemble.history == [] and not (ensemble.path / "model.pt").exists()


def test_logit_sum_keeps_the_members_own_scales():
    """The authors' synthetic rule (Synergy's ens.json, norm_decision false): raw logits summed.
    A member whose logits are flat (an uninformative modality's rightly unsure model) barely
    moves the sum; standardisation would stretch it to the other member's range."""
    predictions, metrics = compose("logit_sum")
    torch.testing.assert_close(predictions["test"]["fused"], A + B)
    # rows 0-1: b's margin 20 beats a's 2, wrong; rows 2-3 both right: 1/2
    assert metrics["test_acc_fused"] == 0.5
    assert metrics["test_acc_fused_standardised_logits"] == 1.0 and metrics["test_acc_fused_probabilities"] == 0.5
    assert "test_acc_fused_logit_sum" not in metrics
    # A zeroed member adds nothing: v({}) = 1/2 (ties predict class 0), v(a) = 1, v(b) = 1/2,
    # v(ab) = 1/2: phi_a = ((1 - 1/2) + (1/2 - 1/2)) / 2 = 1/4, phi_b = -1/4.
    assert metrics["test_contrib_shapley_a"] == pytest.approx(0.25)
    assert metrics["test_contrib_shapley_b"] == pytest.approx(-0.25)
    # A flat member (entries ±0.01, ±0.1: std 0.054) against a sharp one (±3: std 3.2), labels 0 1 1 0.
    flat = torch.tensor([[0.01, -0.01], [-0.01, 0.01], [0.01, -0.01], [0.1, -0.1]])   # wrong on row 2
    sharp = torch.tensor([[3., -3.], [-3., 3.], [-3., 3.], [-3., 3.]])                 # wrong on row 3
    both = {"member:a": member(sharp), "member:b": member(flat)}
    config = from_dict(RunConfig, {**TINY_RUN, "method": {"name": "ensemble", "params": {"combine": "logit_sum"}}})
    _, metrics = METHODS["ensemble"].compose(config, both, SimpleNamespace(task="classification"))
    # The sum follows the sharp member (row 3: 0.2 - 6 < 0): 3/4. Standardised, the flat member's
    # row-3 margin is stretched to 0.2 / 0.054 = 3.7 and overturns the sharp one's 6 / 3.2 = 1.9: 4/4.
    assert metrics["test_acc_fused"] == 0.75
    assert metrics["test_acc_fused_standardised_logits"] == 1.0
