"""OGM / OGM-GE: coefficients 1 - tanh(alpha * rho) for the dominant modality, encoder-only
scaling, Gaussian noise with the unscaled gradient's std, the epoch window, runs."""
import pytest
import torch
import torch.nn.functional as F

from mcrlib.config import ConfigError
from mcrlib.methods import method_params
from mcrlib.methods.base import EpochState
from mcrlib.methods.ogm import OGM, ogm_coefficients
from mcrlib.models.arm_fusion import ARMFusion
from mcrlib.models.cosine_fusion import CosineFusion
from mcrlib.runs import run
from tests.conftest import TINY_RUN, model_and_batch


def begin_epoch(method, model, epoch):
    method.on_epoch_start(EpochState(epoch=epoch, model=model, param_groups=[], device=torch.device("cpu"),
                                     batch_size=16, seed=0, loader=lambda split: iter(())))


def ogm(model, task="classification", **params):
    return OGM(method_params("ogm", params), model=model, task=task)


def backward(model, method, batch):
    output = model(batch)
    model.zero_grad()
    # plus a term on the unimodal heads, so that every parameter has a gradient to leave alone
    extra = sum(u.square().mean() for u in output.unimodal_logits.values())
    (sum(method.loss(model, batch, output).values()) + extra).backward()
    return output, {n: p.grad.clone() for n, p in model.named_parameters()}


def test_coefficients_damp_only_the_dominant_with_tanh_of_rho():
    # rho_1 = 3/2: k_1 = 1 - tanh(0.8 * 1.5) = 1 - tanh(1.2)
    assert ogm_coefficients(3.0, 2.0, alpha=0.8) == pytest.approx((0.16634539, 1.0, 1.5))
    # modality 2 dominant: rho_2 = 1.5 enters the tanh (not rho_1 = 2/3)
    assert ogm_coefficients(2.0, 3.0, alpha=0.8) == pytest.approx((1.0, 0.16634539, 2 / 3))


def test_coefficients_jump_where_dominance_switches():
    """tanh(alpha * rho), not tanh(alpha * (rho - 1)): a tiny imbalance already damps by ~1/3."""
    k1, k2, _ = ogm_coefficients(1.001, 1.0, alpha=0.8)
    assert (k1, k2) == pytest.approx((1 - 0.66448378, 1.0))   # 1 - tanh(0.8008)
    k1, k2, _ = ogm_coefficients(1.0, 1.001, alpha=0.8)
    assert (k1, k2) == pytest.approx((1.0, 1 - 0.66448378))
    # a tie damps the second modality, as the reference's if/else does
    assert ogm_coefficients(1.0, 1.0, alpha=0.8)[:2] == pytest.approx((1.0, 0.33596323))


def test_after_backward_scales_exactly_the_encoder_grads():
    model, batch = model_and_batch()
    with torch.no_grad():
        model.fusion.bias.copy_(torch.tensor([2.0, -1.0, 0.5, 3.0, -2.0]))   # its b/M share matters
    method = ogm(model, alpha=0.8)
    output, before = backward(model, method, batch)
    # independent computation of s_m = sum_i softmax(W_m z_m + b/2)[y_i]
    w = [b.weight for b in model.fusion.branches]
    scores = [F.linear(output.latents[m], w[i]).add(model.fusion.bias / 2).softmax(-1)
              .gather(1, batch["label"][:, None]).sum().item() for i, m in enumerate(("x0", "x1"))]
    k = dict(zip(("x0", "x1"), ogm_coefficients(*scores, alpha=0.8)[:2]))
    assert min(k.values()) < 0.5 and max(k.values()) == 1.0
    method.after_backward(model, batch, output)
    for name, param in model.named_parameters():
        m = name.split(".")[1] if name.startswith("encoders.") else None
        expected = before[name] * k[m] if m else before[name]
        torch.testing.assert_close(param.grad, expected, rtol=1e-6, atol=0, msg=name)
    assert method.diagnostics["k[x0]"] == k["x0"] and method.diagnostics["k[x1]"] == k["x1"]
    assert method.diagnostics["rho[x0]"] == pytest.approx(scores[0] / scores[1])


def test_ge_noise_has_the_unscaled_gradient_std_on_both_modalities():
    model, batch = model_and_batch(hidden=512)   # 512 x 4 weights: a precise std estimate
    method = ogm(model, ge=True)
    output, before = backward(model, method, batch)
    torch.manual_seed(7)
    method.after_backward(model, batch, output)
    after = {n: p.grad.clone() for n, p in model.named_parameters()}
    k = {m: method.diagnostics[f"k[{m}]"] for m in ("x0", "x1")}
    assert min(k.values()) < 0.5 and max(k.values()) == 1.0
    for m in ("x0", "x1"):
        name = f"encoders.{m}.0.weight"
        noise = after[name] - k[m] * before[name]
        # std of the noise is std(g), not std(k * g) = k std(g) for the damped modality
        assert noise.std().item() / before[name].std().item() == pytest.approx(1.0, abs=0.08)
        assert abs(noise.mean().item()) < 0.1 * before[name].std().item()
    # the same seed gives exactly g * k + N(0, std(g) + 1e-8), parameters in model order
    torch.manual_seed(7)
    for m in ("x0", "x1"):
        for name, _ in model.encoders[m].named_parameters():
            g = before[f"encoders.{m}.{name}"]
            expected = g * k[m] + torch.randn_like(g) * (g.std().item() + 1e-8)
            torch.testing.assert_close(after[f"encoders.{m}.{name}"], expected)
    for name in ("fusion.bias", "fusion.branches.0.weight", "unimodal_heads.x0.weight"):
        assert torch.equal(after[name], before[name])


@pytest.mark.parametrize("epoch, active", [(0, False), (1, False), (2, True), (3, True), (4, False)])
def test_inactive_outside_its_window(epoch, active):
    model, batch = model_and_batch()
    method = ogm(model, ge=True, start_epoch=2, end_epoch=3)
    begin_epoch(method, model, epoch)
    output, before = backward(model, method, batch)
    method.after_backward(model, batch, output)
    changed = any(not torch.equal(p.grad, before[n]) for n, p in model.named_parameters())
    assert changed == active
    if not active:
        assert method.diagnostics["k[x0]"] == method.diagnostics["k[x1]"] == 1.0


def test_regression_ratio_is_the_inverse_mse_ratio():
    model, batch = model_and_batch(n_classes=1)
    with torch.no_grad():
        model.fusion.bias.fill_(0.7)
    method = ogm(model, task="regression")
    output, _ = backward(model, method, batch)
    method.after_backward(model, batch, output)
    mse = [F.mse_loss((b(output.latents[m]) + model.fusion.bias / 2).reshape(-1), batch["label"]).item()
           for b, m in zip(model.fusion.branches, ("x0", "x1"))]
    assert method.diagnostics["rho[x0]"] == pytest.approx(mse[1] / mse[0], rel=1e-5)


def test_scores_read_the_cosine_heads_shares_too():
    """The sliced logits are the model's contributions, whatever linear head made them: with
    MMCosine's head they are s * cos(z_m, w_{m,k}) (no bias), not W_m z_m."""
    model, batch = model_and_batch()
    model.fusion = CosineFusion(latent_dims=[6, 6], n_classes=5, scale=3.0)
    method = ogm(model)
    output, _ = backward(model, method, batch)
    method.after_backward(model, batch, output)
    y = batch["label"][:, None]
    scores = [(3.0 * F.normalize(output.latents[m], dim=1) @ F.normalize(b.weight, dim=1).T).softmax(-1)
              .gather(1, y).sum().item() for b, m in zip(model.fusion.branches, ("x0", "x1"))]
    assert method.diagnostics["rho[x0]"] == pytest.approx(scores[0] / scores[1], rel=1e-6)


def test_rejects_other_than_two_modalities_a_mixing_head_and_bad_windows():
    model, _ = model_and_batch(n_modalities=3)
    with pytest.raises(ConfigError, match="exactly two modalities"):
        ogm(model)
    model, _ = model_and_batch()
    model.fusion = ARMFusion(latent_dim=6, n_classes=5)   # no per-modality shares of the logits
    with pytest.raises(ConfigError, match="linear fusion head"):
        ogm(model)
    with pytest.raises(ConfigError, match="end_epoch"):
        method_params("ogm", {"start_epoch": 5, "end_epoch": 2})


def test_trains_two_epochs_deterministically(tmp_path):
    config = {**TINY_RUN, "train": {**TINY_RUN["train"], "max_epochs": 2},
              "method": {"name": "ogm", "params": {"ge": True, "end_epoch": 0}}}
    a = run(config, tmp_path / "a")
    b = run(config, tmp_path / "b")
    assert len(a.history) == 2 and a.history == b.history
    assert torch.equal(a.predictions["test"]["fused"], b.predictions["test"]["fused"])
    assert a.history[0]["train_k[x1]"] < 1 or a.history[0]["train_k[x2]"] < 1
    assert a.history[1]["train_k[x1]"] == a.history[1]["train_k[x2]"] == 1.0  # after end_epoch
