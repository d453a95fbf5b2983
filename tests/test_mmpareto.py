"""MMPareto: min-norm weights on conflict, (1/2, 1/2) on agreement, the per-tensor magnitude rule,
separately computed gradients, naive head gradients, no NaN where d = 0, runs."""
import math

import pytest
import torch
import torch.nn.functional as F

from mcrlib.config import ConfigError
from mcrlib.methods import method_params
from mcrlib.methods.mmpareto import MMPareto, min_norm_weight, pareto_gradients
from mcrlib.runs import run
from tests.conftest import TINY_RUN, model_and_batch


def mmpareto(model, task="classification", **params):
    return MMPareto(method_params("mmpareto", params), model=model, task=task)


def t(*values):
    return [torch.tensor(v, dtype=torch.float32) for v in values]


def close(grads, expected):
    torch.testing.assert_close(torch.cat([g.reshape(-1) for g in grads]),
                               torch.tensor(expected), rtol=1e-6, atol=1e-7)


def test_conflicting_pair_gets_the_min_norm_weights():
    # g_mm = (1, 0), g_m = (-1, 1): <a,a> = 1, <a,b> = -1, <b,b> = 2, cos = -1/sqrt(2).
    # c = (<b,b> - <a,b>) / ||a - b||^2 = 3 / 5: the point 0.6 a + 0.4 b = (0.2, 0.4) is orthogonal
    # to a - b = (2, -1), so it is the segment's closest point to 0.
    assert min_norm_weight(*torch.tensor([1.0, -1.0, 2.0])).item() == pytest.approx(0.6)
    grads, cos, w1 = pareto_gradients(t([1.0, 0.0]), t([-1.0, 1.0]), gamma=1.5)
    assert w1.item() == pytest.approx(0.6) and cos.item() == pytest.approx(-1 / math.sqrt(2))
    # d = 2 (0.6 a + 0.4 b) = (0.4, 0.8); n0 = ||a + b|| = 1 > ||d|| = sqrt(0.8):
    # g = (1 / sqrt(0.8)) d * 1.5
    close(grads, [0.4 / math.sqrt(0.8) * 1.5, 0.8 / math.sqrt(0.8) * 1.5])


def test_agreeing_pair_gets_equal_weights():
    # g_mm = (1, 0), g_m = (1, 1): cos > 0, (1/2, 1/2), d = a + b = (2, 1) is the naive gradient
    # (n0 / ||d|| = 1, not > 1): g = 1.5 d. The min-norm solver would have given c = 0.999.
    assert min_norm_weight(*torch.tensor([1.0, 1.0, 2.0])).item() == pytest.approx(0.999)
    grads, cos, w1 = pareto_gradients(t([1.0, 0.0]), t([1.0, 1.0]), gamma=1.5)
    assert w1.item() == 0.5 and cos.item() == pytest.approx(1 / math.sqrt(2))
    close(grads, [3.0, 1.5])
    grads, _, _ = pareto_gradients(t([1.0, 0.0]), t([1.0, 1.0]), gamma=0.5)
    close(grads, [1.0, 0.5])


def test_magnitude_is_set_per_tensor_on_both_branches():
    """The same two gradients as one 2-vector tensor and as two scalar tensors: the weights
    come from the whole encoder (0.6, 0.4), the magnitude from each tensor."""
    grads, _, w1 = pareto_gradients(t(1.0, 0.0), t(-1.0, 1.0), gamma=1.5)
    assert w1.item() == pytest.approx(0.6)
    # d = (0.4, 0.8), naive (0, 1). Tensor 0: n0/||d|| = 0/0.4 <= 1 -> 0.4 * 1.5 = 0.6.
    # Tensor 1: n0/||d|| = 1/0.8 = 1.25 > 1 -> 1.25 * 0.8 * 1.5 = 1.5.
    close(grads, [0.6, 1.5])


def test_no_nan_where_d_vanishes():
    # g_mm = [1, 1], g_m = [1, -3] (two scalar tensors): <a,a> = 2, <a,b> = -2, <b,b> = 10,
    # c = 12 / 16 = 0.75, d = [1.5 + 0.5, 1.5 - 1.5] = [2, 0], naive [2, -2].
    # Tensor 0: ratio 1 -> 2 * 1.5 = 3. Tensor 1: d = 0 with n0 = 2 (the reference: 0/0 = NaN) -> 0.
    grads, _, w1 = pareto_gradients(t(1.0, 1.0), t(1.0, -3.0), gamma=1.5)
    assert w1.item() == 0.75
    close(grads, [3.0, 0.0])
    # anti-parallel: d = 1.5 (1, 1) + 0.5 (-3, -3) = 0 on the whole encoder; and both zero
    for a, b in (([1.0, 1.0], [-3.0, -3.0]), ([0.0, 0.0], [0.0, 0.0])):
        grads, cos, _ = pareto_gradients(t(a), t(b), gamma=1.5)
        close(grads, [0.0, 0.0])
        assert torch.isfinite(cos)


def test_solver_edges_as_the_reference():
    """A zero multimodal gradient: the reference's c = 0.999 (not 1), so d = 0.002 g_m, rescaled
    to the naive norm: gamma * g_m (with c = 1 the encoder would get nothing)."""
    grads, _, w1 = pareto_gradients(t([0.0, 0.0]), t([1.0, 2.0]), gamma=1.5)
    assert w1.item() == pytest.approx(0.999)
    close(grads, [1.5, 3.0])
    assert min_norm_weight(*torch.tensor([2.0, 0.0, 0.0])).item() == pytest.approx(0.001)


def reference_update(model, batch, gamma):
    """The official train_epoch's update written out: fresh gradients of each loss alone, a Python
    branch on the cosine, per-tensor rescale; heads keep the gradient of the summed loss."""
    names, params = zip(*model.named_parameters())
    output = model(batch)
    y = batch["label"]
    l_mm = F.cross_entropy(output.logits, y)
    l_u = {m: F.cross_entropy(u, y) for m, u in output.unimodal_logits.items()}

    def grad(loss):
        g = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        return {n: torch.zeros_like(p) if x is None else x for n, p, x in zip(names, params, g)}
    naive, both = grad(l_mm + sum(l_u.values())), grad(l_mm)
    expected, cosines = dict(naive), {}
    for m in model.modalities:
        own = grad(l_u[m])
        enc = [n for n in names if n.startswith(f"encoders.{m}.")]
        a = torch.cat([both[n].reshape(-1) for n in enc])
        b = torch.cat([own[n].reshape(-1) for n in enc])
        cosines[m] = F.cosine_similarity(a, b, dim=0).item()
        if cosines[m] > 0:
            w1 = 0.5
        else:
            w1 = ((b @ b - a @ b) / (a - b).square().sum()).item()
        for n in enc:
            new = 2 * w1 * both[n] + 2 * (1 - w1) * own[n]
            diff = naive[n].norm() / new.norm()
            expected[n] = diff * new * gamma if diff > 1 else new * gamma
    return expected, naive, cosines


def test_backward_combines_separate_gradients_and_leaves_heads_naive():
    model, batch = model_and_batch(n_modalities=2)
    with torch.no_grad():   # x0's own head against its fusion branch: its two losses conflict
        model.unimodal_heads["x0"].weight.copy_(-model.fusion.branches[0].weight)
        model.unimodal_heads["x1"].weight.copy_(model.fusion.branches[1].weight)
    expected, naive, cosines = reference_update(model, batch, gamma=1.5)
    assert cosines["x0"] < 0 < cosines["x1"]   # both branches are exercised
    method = mmpareto(model)
    terms = method.loss(model, batch, model(batch))
    model.zero_grad(set_to_none=True)
    method.backward(terms, model)
    for name, param in model.named_parameters():
        torch.testing.assert_close(param.grad, expected[name], rtol=1e-5, atol=1e-7, msg=name)
    # the encoders' gradients are not the naive ones; the heads' are, exactly
    for name in ("encoders.x0.0.weight", "encoders.x1.0.weight"):
        assert not torch.allclose(model.get_parameter(name).grad, naive[name])
    for name in ("fusion.bias", "fusion.branches.0.weight", "unimodal_heads.x0.weight",
                 "unimodal_heads.x1.bias"):
        torch.testing.assert_close(model.get_parameter(name).grad, naive[name], rtol=1e-6, atol=1e-8)
    for m in ("x0", "x1"):
        cos = method.diagnostics[f"pareto_cos[{m}]"]
        assert isinstance(cos, torch.Tensor) and not cos.requires_grad
        assert cos.item() == pytest.approx(cosines[m], rel=1e-5)
    assert method.diagnostics["pareto_w_mm[x1]"].item() == 0.5
    assert 0 < method.diagnostics["pareto_w_mm[x0]"].item() < 1


def test_three_modalities_and_regression_give_finite_gradients():
    for n_modalities, n_classes, task in ((3, 5, "classification"), (2, 1, "regression")):
        model, batch = model_and_batch(n_modalities=n_modalities, n_classes=n_classes)
        method = mmpareto(model, task=task)
        terms = method.loss(model, batch, model(batch))
        if task == "regression":
            out = model(batch)
            l1 = (out.logits.reshape(-1) - batch["label"]).abs().mean()
            assert terms["task"].item() == pytest.approx(l1.item())
        model.zero_grad(set_to_none=True)
        method.backward(terms, model)
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
        assert len([k for k in method.diagnostics if k.startswith("pareto_cos")]) == n_modalities


def test_rejects_one_modality_and_non_positive_gamma():
    with pytest.raises(ConfigError, match="two or more"):
        mmpareto(model_and_batch(n_modalities=1)[0])
    with pytest.raises(ConfigError, match="gamma"):
        method_params("mmpareto", {"gamma": 0})


def test_trains_two_epochs_deterministically(tmp_path):
    config = {**TINY_RUN, "train": {**TINY_RUN["train"], "max_epochs": 2},
              "method": {"name": "mmpareto"}}
    a = run(config, tmp_path / "a")
    b = run(config, tmp_path / "b")
    assert len(a.history) == 2 and a.history == b.history
    assert torch.equal(a.predictions["test"]["fused"], b.predictions["test"]["fused"])
    for record in a.history:
        assert {"train_loss_task", "train_loss_unimodal", "train_pareto_cos[x1]",
                "train_pareto_w_mm[x2]"} <= set(record)
        assert -1 <= record["train_pareto_cos[x1]"] <= 1
        assert 0 < record["train_pareto_w_mm[x2]"] < 1
        assert math.isfinite(record["train_loss_total"])
