"""MLB: multi-loss plus k_m = 1 + tanh(alpha (rho_m - 1)) on encoder m and the weight of u_m."""
import pytest
import torch
import torch.nn.functional as F

from mcrlib.config import ConfigError
from mcrlib.methods import method_params
from mcrlib.methods.base import EpochState
from mcrlib.methods.mlb import MLB, mlb_coefficients
from mcrlib.runs import run
from tests.conftest import TINY_RUN, model_and_batch


def mlb(model, task="classification", **params):
    return MLB(method_params("mlb", params), model=model, task=task)


def backward(model, method, batch):
    output = model(batch)
    model.zero_grad()
    sum(method.loss(model, batch, output).values()).backward()
    return output, {n: p.grad.clone() for n, p in model.named_parameters()}


def test_lagging_modality_boosted_leader_damped():
    rhos, ks = mlb_coefficients([0.6, 0.3], alpha=0.8)
    assert rhos == pytest.approx([0.5, 2.0])
    # 1 + tanh(0.8 * (0.5 - 1)) = 1 - tanh(0.4); 1 + tanh(0.8 * (2 - 1)) = 1 + tanh(0.8)
    assert ks == pytest.approx([0.62005104, 1.66403677])
    # three modalities: rho_m = mean of the other two scores / own score
    rhos, ks = mlb_coefficients([0.6, 0.3, 0.45], alpha=0.8)
    assert rhos == pytest.approx([0.625, 1.75, 1.0])
    assert ks == pytest.approx([0.70868739, 1.53704957, 1.0])
    # regression: scores are errors, the larger error lags: rho_m = own / mean(others)
    rhos, ks = mlb_coefficients([1.0, 2.0], alpha=0.8, higher_is_better=False)
    assert rhos == pytest.approx([0.5, 2.0]) and ks == pytest.approx([0.62005104, 1.66403677])


@pytest.mark.parametrize("alpha", [0.1, 1.0, 2.0])
def test_coefficients_lie_in_zero_two(alpha):
    scores = torch.rand(200, 3, generator=torch.Generator().manual_seed(1)) * 0.8 + 0.2
    for row in scores.tolist():
        rhos, ks = mlb_coefficients(row, alpha=alpha)
        assert all(0 < k < 2 for k in ks)
        assert all((k > 1) == (rho > 1) for k, rho in zip(ks, rhos))


def test_cap_beta_bounds_the_boost_only():
    _, ks = mlb_coefficients([0.6, 0.3], alpha=0.8, beta=1.5)
    assert ks == pytest.approx([0.62005104, 1.33201839])   # 1 + 0.5 tanh(0.8); the leader as before
    _, ks = mlb_coefficients([0.9, 0.2], alpha=2.0, beta=1.5)
    assert 1.49 < ks[1] < 1.5
    _, ks = mlb_coefficients([0.6, 0.3], alpha=0.8, beta=0.5)   # beta < 1: mild damping instead
    assert ks == pytest.approx([0.62005104, 0.66798161])


def test_loss_is_the_multi_loss():
    model, batch = model_and_batch()
    output = model(batch)
    terms = mlb(model, uni_weight=0.5).loss(model, batch, output)
    y = batch["label"]
    assert set(terms) == {"task", "unimodal"}
    assert terms["task"].item() == pytest.approx(F.cross_entropy(output.logits, y).item())
    uni = sum(F.cross_entropy(u, y) for u in output.unimodal_logits.values())
    assert terms["unimodal"].item() == pytest.approx(0.5 * uni.item())


def test_scales_the_encoder_and_unimodal_head_weight_only():
    model, batch = model_and_batch()
    method = mlb(model, alpha=20.0)   # a large alpha makes both coefficients far from 1
    output, before = backward(model, method, batch)
    y = batch["label"][:, None]
    scores = [output.unimodal_logits[m].softmax(-1).gather(1, y).mean().item() for m in ("x0", "x1")]
    k = dict(zip(("x0", "x1"), mlb_coefficients(scores, alpha=20.0)[1]))
    assert abs(k["x0"] - 1) > 0.1 and abs(k["x1"] - 1) > 0.1
    method.after_backward(model, batch, output)
    for name, param in model.named_parameters():
        parts = name.split(".")
        scaled = parts[0] == "encoders" or (parts[0] == "unimodal_heads" and parts[2] == "weight")
        expected = before[name] * k[parts[1]] if scaled else before[name]
        torch.testing.assert_close(param.grad, expected, rtol=1e-6, atol=0, msg=name)
    assert method.diagnostics["k[x0]"] == k["x0"] and method.diagnostics["k[x1]"] == k["x1"]


@pytest.mark.parametrize("epoch, active", [(0, False), (1, True), (2, False)])
def test_inactive_outside_its_window(epoch, active):
    model, batch = model_and_batch()
    method = mlb(model, alpha=20.0, start_epoch=1, end_epoch=1)
    method.on_epoch_start(EpochState(epoch=epoch, model=model, param_groups=[], device=torch.device("cpu"),
                                     batch_size=16, seed=0, loader=lambda split: iter(())))
    output, before = backward(model, method, batch)
    method.after_backward(model, batch, output)
    assert any(not torch.equal(p.grad, before[n]) for n, p in model.named_parameters()) == active
    if not active:   # the logged coefficients are the applied ones
        assert method.diagnostics["k[x0]"] == method.diagnostics["k[x1]"] == 1.0


def test_three_modalities_and_regression_run_one_modality_is_rejected():
    for n_modalities, n_classes, task in ((3, 5, "classification"), (2, 1, "regression")):
        model, batch = model_and_batch(n_modalities=n_modalities, n_classes=n_classes)
        method = mlb(model, task=task)
        output, _ = backward(model, method, batch)
        method.after_backward(model, batch, output)
        ks = [method.diagnostics[f"k[x{m}]"] for m in range(n_modalities)]
        assert all(0 < k < 2 for k in ks) and len(set(ks)) == n_modalities
    with pytest.raises(ConfigError, match="two or more"):
        mlb(model_and_batch(n_modalities=1)[0])
    with pytest.raises(ConfigError, match="beta"):
        method_params("mlb", {"beta": 0})


def test_trains_two_epochs_deterministically(tmp_path):
    config = {**TINY_RUN, "train": {**TINY_RUN["train"], "max_epochs": 2},
              "method": {"name": "mlb", "params": {"alpha": 2.0, "beta": 1.5}}}
    a = run(config, tmp_path / "a")
    b = run(config, tmp_path / "b")
    assert len(a.history) == 2 and a.history == b.history
    assert torch.equal(a.predictions["test"]["fused"], b.predictions["test"]["fused"])
    for record in a.history:
        assert {"train_loss_task", "train_loss_unimodal", "train_k[x1]", "train_k[x2]"} <= set(record)
        assert 0 < record["train_k[x1]"] < 1.5 and record["train_k[x1]"] != 1.0
