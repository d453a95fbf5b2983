"""AGM: Shapley-style mono-modal logits, the official sign of the coefficient, the running
target, the scaled encoder gradients, clipping, and training through run()."""
import math

import pytest
import torch
import torch.nn.functional as F

from mcrlib.config import ConfigError, ModelConfig, TrainConfig
from mcrlib.methods import METHODS, method_params
from mcrlib.methods.agm import agm_coefficients, mono_modal_logits
from mcrlib.models import MLPEncoder, MultimodalModel, build_model
from mcrlib.models.arm_fusion import ARMFusion
from mcrlib.runs import run
from mcrlib.train import Trainer
from functools import partial

from tests.conftest import TINY_RUN, resume_after_kill
from tests.conftest import model_and_batch as _model_and_batch


model_and_batch = partial(_model_and_batch, first=1)  # AGM's tests name the modalities x1, x2


def agm(model, **params):
    return METHODS["agm"](method_params("agm", params), model=model)


def test_mono_modal_logits_are_the_official_formula_and_sum_to_the_fused_logits():
    model, batch = model_and_batch()
    model.eval()
    fused = model(batch).logits
    phi1, phi2 = mono_modal_logits(model, batch, fused)
    zero = {k: torch.zeros_like(v) for k, v in batch.items()}
    f_0x2 = model({**batch, "x1": zero["x1"]}).logits
    f_x10 = model({**batch, "x2": zero["x2"]}).logits
    torch.testing.assert_close(phi1, 0.5 * (fused - f_0x2 + f_x10))
    torch.testing.assert_close(phi2, 0.5 * (fused - f_x10 + f_0x2))
    torch.testing.assert_close(phi1 + phi2, fused)
    assert not torch.allclose(phi1, phi2)


def test_three_modalities_give_shapley_values_that_sum_to_the_fused_logits():
    model, batch = model_and_batch(n_modalities=3)
    model.eval()
    fused = model(batch).logits
    phi = mono_modal_logits(model, batch, fused)
    torch.testing.assert_close(sum(phi), fused)
    # Symmetry of the weights: phi_1 with v(empty) = 0 and all six orderings averaged.
    def v(*kept):
        return model({m: batch[m] if m in kept else torch.zeros_like(batch[m]) for m in model.modalities}).logits
    expected = (v("x1") / 3 + (v("x1", "x2") - v("x2")) / 6 + (v("x1", "x3") - v("x3")) / 6
                + (fused - v("x2", "x3")) / 3)
    torch.testing.assert_close(phi[0], expected)


def test_a_modality_more_dominant_than_its_history_is_damped_official_sign():
    # Now x1 has loss 0.5 and x2 1.5; on average both had 1.0. r_1 = exp(2 (1.0 - 0.5)) = e,
    # r*_1 = 1, so c_1 = exp(alpha (1 - e)) < 1 and c_2 = exp(alpha (1 - 1/e)) > 1.
    c = agm_coefficients(torch.tensor([0.5, 1.5]), torch.tensor([1.0, 1.0]), alpha=1.0, cap=10.0)
    torch.testing.assert_close(c, torch.tensor([0.17937407, 1.88159639]))
    # The same current scores against a history where x1 was already ahead: no damping needed.
    c = agm_coefficients(torch.tensor([0.5, 1.5]), torch.tensor([0.25, 1.75]), alpha=1.0, cap=10.0)
    assert c[0] > 1 > c[1]
    # The cap: r*_1 = exp(2 * 2.5) and r_1 = 1, so min(r*_1 - r_1, cap) = cap bounds the boost.
    c = agm_coefficients(torch.tensor([0.0, 0.0]), torch.tensor([0.0, 5.0]), alpha=0.5, cap=2.0)
    assert c[0].item() == pytest.approx(math.exp(0.5 * 2.0))


def test_running_mean_since_the_start_is_updated_after_the_coefficient():
    model, _ = model_and_batch()
    method = agm(model, alpha=1.0)
    first = method.update(torch.tensor([0.5, 1.5], dtype=torch.float64))
    torch.testing.assert_close(first, torch.tensor([0.17937407, 1.88159639], dtype=torch.float64))  # S = 0: r* = 1
    method.update(torch.tensor([1.5, 0.5], dtype=torch.float64))
    method.update(torch.tensor([1.0, 4.0], dtype=torch.float64))
    torch.testing.assert_close(method.running_score, torch.tensor([1.0, 2.0], dtype=torch.float64))
    assert method.steps.item() == 3 and {"running_score", "steps"} <= set(method.state_dict())


def test_after_backward_scales_each_encoder_by_its_coefficient_then_clips():
    model, batch = model_and_batch()
    method = agm(model, alpha=1.0)
    method.running_score.copy_(torch.tensor([2.0, 1.0]))  # history: x2 was ahead
    method.steps.fill_(4)
    model.train()
    output = model(batch)
    F.cross_entropy(output.logits, batch["label"]).backward()
    joint = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    # Expected coefficients computed here from the zero-input passes and the formulas.
    model.eval()
    f_0x2 = model({**batch, "x1": torch.zeros_like(batch["x1"])}).logits
    f_x10 = model({**batch, "x2": torch.zeros_like(batch["x2"])}).logits
    model.train()
    fused = output.logits.detach()
    s = [F.cross_entropy(0.5 * (fused - a + b), batch["label"]).item() for a, b in ((f_0x2, f_x10), (f_x10, f_0x2))]
    r1, r2 = math.exp(s[1] - s[0]), math.exp(s[0] - s[1])
    c1, c2 = math.exp(min(math.exp(-1.0) - r1, 10)), math.exp(min(math.exp(1.0) - r2, 10))
    method.after_backward(model, batch, output)
    assert method.diagnostics["c[x1]"] == pytest.approx(c1) and method.diagnostics["c[x2]"] == pytest.approx(c2)
    assert method.diagnostics["clipped"] == 0.0
    for name, g in joint.items():
        factor = c1 if name.startswith("encoders.x1") else c2 if name.startswith("encoders.x2") else 1.0
        torch.testing.assert_close(dict(model.named_parameters())[name].grad, factor * g)
    assert method.steps.item() == 5
    assert method.running_score[0].item() == pytest.approx((4 * 2.0 + s[0]) / 5)


def test_large_fusion_head_gradients_trigger_clipping_to_norm_one():
    model, batch = model_and_batch()
    method = agm(model)
    output = model(batch)
    (1e4 * F.cross_entropy(output.logits, batch["label"])).backward()
    method.after_backward(model, batch, output)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert method.diagnostics["clipped"] == 1.0
    assert torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item() == pytest.approx(1.0, rel=1e-4)


def test_clipping_reads_the_heads_weight_gradients_not_its_bias():
    """The official check reads fc_out.weight's gradient: a large bias gradient alone does not
    clip, a large weight-gradient element does (then the global norm becomes `clip`)."""
    def after(bias_grad, weight_grad):
        model, batch = model_and_batch()
        method = agm(model, clip=0.5)
        output = model(batch)
        F.cross_entropy(output.logits, batch["label"]).backward()
        with torch.no_grad():
            for branch in model.fusion.branches:
                branch.weight.grad.clamp_(-0.1, 0.1)
            model.fusion.bias.grad.fill_(bias_grad)
            model.fusion.branches[1].weight.grad[2, 3] = weight_grad
        method.after_backward(model, batch, output)
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters() if p.grad is not None]))
        return method.diagnostics["clipped"], norm.item()
    clipped, norm = after(bias_grad=5.0, weight_grad=0.0)
    assert clipped == 0.0 and norm > 5.0
    clipped, norm = after(bias_grad=0.0, weight_grad=-0.6)
    assert clipped == 1.0 and norm == pytest.approx(0.5, rel=1e-4)


def test_needs_two_modalities_a_linear_head_and_valid_params():
    with pytest.raises(ConfigError, match="at least two modalities"):
        METHODS["agm"].modalities(method_params("agm", {}), ("x1",))
    model, _ = model_and_batch()
    model.fusion = ARMFusion(latent_dim=6, n_classes=5)   # mixes the modalities: no linear head
    with pytest.raises(ConfigError, match="linear fusion head"):
        agm(model)
    with pytest.raises(ConfigError, match="method.params.alpha"):
        method_params("agm", {"alpha": -1})


def test_trains_two_epochs_via_run_and_is_deterministic(tmp_path):
    config = {**TINY_RUN, "train": {**TINY_RUN["train"], "max_epochs": 2}, "method": {"name": "agm"}}
    a = run(config, tmp_path / "a")
    b = run(config, tmp_path / "b")
    assert len(a.history) == 2 and a.history == b.history and a.metrics == b.metrics
    assert all(k in a.history[-1] for k in ("train_c[x1]", "train_c[x2]", "train_s[x1]"))
    assert a.history[-1]["train_c[x1]"] != 1.0


def test_resumed_run_equals_uninterrupted(tiny_data, tmp_path):
    def trainer(checkpoint, callbacks=()):
        torch.manual_seed(0)
        model = build_model(ModelConfig(hidden_dim=16, latent_dim=8), tiny_data)
        cfg = TrainConfig(max_epochs=3, batch_size=32, patience=3, progress=False)
        made = Trainer(model, agm(model), cfg, seed=1, checkpoint_path=checkpoint)
        for fn in callbacks:
            made.add_callback("on_epoch_end", fn)
        return made

    reference, ref, resumed, again = resume_after_kill(trainer, tiny_data, tmp_path, kill_at=1)
    assert again.history == ref.history
    torch.testing.assert_close(resumed.method.running_score, reference.method.running_score, rtol=0, atol=0)


def test_regression_scores_are_the_l1_of_the_mono_modal_predictions():
    torch.manual_seed(0)
    model = MultimodalModel(encoders={m: MLPEncoder(in_dim=4, hidden_dim=8, latent_dim=6, layers=1)
                                      for m in ("x1", "x2")}, n_classes=1)
    batch = {"x1": torch.randn(16, 4), "x2": torch.randn(16, 4), "label": torch.randn(16)}
    method = METHODS["agm"](method_params("agm", {}), model=model, task="regression")
    output = model(batch)
    F.l1_loss(output.logits.reshape(-1), batch["label"]).backward()
    phi = mono_modal_logits(model, batch, output.logits)
    method.after_backward(model, batch, output)
    for m, p in zip(("x1", "x2"), phi):
        assert method.diagnostics[f"s[{m}]"] == pytest.approx(F.l1_loss(p.reshape(-1), batch["label"]).item())
