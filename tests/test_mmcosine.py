"""MMCosine: its cosine head gives s * cos logits (bounded, scale-free in features and class
weights, no bias); the method asks for that head through model_overrides, so the run's config
names it; forward, loss, optimizer and logs use it; run() is deterministic."""
import math

import pytest
import torch
import torch.nn.functional as F

from mcrlib.config import ConfigError, ModelConfig
from mcrlib.methods import METHODS, method_params
from mcrlib.models import build_model
from mcrlib.models.cosine_fusion import CosineFusion
from mcrlib.runs import run
from tests.conftest import TINY_RUN, model_and_batch


def mmcosine(model, **params):
    return METHODS["mmcosine"](method_params("mmcosine", params), model=model)


def cosine_model_and_batch(n_modalities=2, scale=10.0):
    model, batch = model_and_batch(n_modalities=n_modalities)
    model.fusion = CosineFusion(latent_dims=[6] * n_modalities, n_classes=5, scale=scale)
    return model, batch


def test_cosine_logits_by_hand():
    fusion = CosineFusion(latent_dims=[2, 2], n_classes=2, scale=10.0)
    with torch.no_grad():
        fusion.branches[0].weight.copy_(torch.tensor([[1., 0.], [0., 2.]]))
        fusion.branches[1].weight.copy_(torch.tensor([[-3., 0.], [1., 1.]]))
    z1, z2 = torch.tensor([[3., 4.]]), torch.tensor([[0., 5.]])
    # modality 1: cos([3,4],[1,0]) = 0.6, cos([3,4],[0,2]) = 0.8 -> [6, 8]
    # modality 2: cos([0,5],[-3,0]) = 0,  cos([0,5],[1,1]) = 1/sqrt(2) -> [0, 7.071]
    l1, l2 = fusion.contributions([z1, z2])
    torch.testing.assert_close(l1, torch.tensor([[6., 8.]]))
    torch.testing.assert_close(l2, torch.tensor([[0., 10 / math.sqrt(2)]]))
    torch.testing.assert_close(fusion([z1, z2]), torch.tensor([[6., 8 + 10 / math.sqrt(2)]]))
    # Sliced unimodal logits f_m = W_m z_m + b/M are the cosine logits: the bias is a zero buffer.
    assert torch.equal(fusion.bias, torch.zeros(2)) and "bias" not in dict(fusion.named_parameters())
    assert "bias" not in fusion.state_dict()


def test_logits_bounded_by_scale_and_reached_when_aligned():
    model, batch = cosine_model_and_batch(n_modalities=3, scale=4.0)
    mmcosine(model, scale=4.0)
    with torch.no_grad():
        for branch in model.fusion.branches:
            branch.weight.mul_(1000)  # large weights: a linear head would leave the bound far behind
        out = model(batch)
    parts = list(out.contributions.values())
    assert all(p.abs().max() <= 4.0 + 1e-5 for p in parts)
    assert out.logits.abs().max() <= 3 * 4.0 + 1e-5
    torch.testing.assert_close(out.logits, sum(parts))
    # A feature equal to class 2's weight vector (times 7) gets exactly s for class 2.
    w = model.fusion.branches[0].weight[2].detach()
    torch.testing.assert_close(model.fusion.contributions([7 * w[None]])[0][0, 2], torch.tensor(4.0))


def test_scaling_features_or_class_weights_leaves_logits_unchanged():
    model, batch = cosine_model_and_batch()
    mmcosine(model)
    with torch.no_grad():
        z = [model(batch).latents[m] for m in model.modalities]
        before = model.fusion(z)
        rescaled = [z[0] * torch.rand(len(z[0]), 1).add(0.1) * 50, z[1] * 0.01]  # per-sample factors
        torch.testing.assert_close(model.fusion(rescaled), before)
        model.fusion.branches[0].weight[3].mul_(20.0)   # one class weight vector of modality 1
        model.fusion.branches[1].weight.mul_(0.05)      # all of modality 2
        torch.testing.assert_close(model.fusion(z), before)


def test_model_overrides_build_the_head_that_drives_forward_loss_optimizer_and_logs(tiny_data):
    params = method_params("mmcosine", {"scale": 4.0})
    overrides = METHODS["mmcosine"].model_overrides(params)
    assert overrides == {"fusion": "cosine", "fusion_params": {"scale": 4.0}}
    torch.manual_seed(0)
    model = build_model(ModelConfig(hidden_dim=16, latent_dim=8, **overrides), tiny_data)
    method = METHODS["mmcosine"](params, model=model)
    assert isinstance(model.fusion, CosineFusion) and model.fusion.scale == 4.0
    batch = {k: v[:16] for k, v in tiny_data.splits["train"].items()}
    out = model(batch)
    z = {m: F.normalize(out.latents[m], dim=1) for m in model.modalities}
    by_hand = {m: 4.0 * z[m] @ F.normalize(b.weight, dim=1).T for m, b in zip(model.modalities, model.fusion.branches)}
    torch.testing.assert_close(out.logits, sum(by_hand.values()))
    terms = method.loss(model, batch, out)
    assert set(terms) == {"task"}
    assert terms["task"].item() == pytest.approx(F.cross_entropy(out.logits, batch["label"]).item())
    optimized = {id(p) for g in method.param_groups(model) for p in g["params"]}
    assert all(id(b.weight) in optimized for b in model.fusion.branches)
    # the code's logged quantity: each modality's mean cosine logit of the true class
    y = batch["label"][:, None]
    assert set(method.diagnostics) == {"mmcos_logit_y[x1]", "mmcos_logit_y[x2]"}
    for m in model.modalities:
        assert method.diagnostics[f"mmcos_logit_y[{m}]"].item() == pytest.approx(by_hand[m].gather(1, y).mean().item(), rel=1e-6)


def test_param_checks_classification_only_and_its_own_head():
    with pytest.raises(ConfigError, match="scale"):
        method_params("mmcosine", {"scale": 0})
    model, _ = model_and_batch(n_classes=1)
    with pytest.raises(ConfigError, match="classification"):
        METHODS["mmcosine"](method_params("mmcosine", {}), model=model, task="regression")
    # built without its model_overrides it would silently be joint training: refused
    with pytest.raises(ConfigError, match="model.fusion='cosine'"):
        mmcosine(model_and_batch()[0])
    with pytest.raises(ConfigError, match="scale 10.0"):
        mmcosine(cosine_model_and_batch(scale=10.0)[0], scale=4.0)


def test_trains_two_epochs_deterministically(tmp_path):
    config = {**TINY_RUN, "train": {**TINY_RUN["train"], "max_epochs": 2},
              "method": {"name": "mmcosine", "params": {"scale": 4.0}}}
    a, b = run(config, tmp_path / "a"), run(config, tmp_path / "b")
    assert len(a.history) == 2 and a.history == b.history
    assert torch.equal(a.predictions["test"]["fused"], b.predictions["test"]["fused"])
    # The run's config names the head, and the saved predictions are its logits: <= M * s.
    assert a.config["model"]["fusion"] == "cosine" and a.config["model"]["fusion_params"] == {"scale": 4.0}
    assert a.predictions["test"]["fused"].abs().max() <= 2 * 4.0 + 1e-4
    assert all(math.isfinite(h["train_loss_task"]) for h in a.history)
    assert all(-4.0 <= h["train_mmcos_logit_y[x1]"] <= 4.0 for h in a.history)
