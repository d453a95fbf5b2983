"""MMCosine: the installed fusion gives s * cos logits (bounded, scale-free in features and class
weights, no bias), the model's forward and the optimizer use it, and run() is deterministic."""
import math

import pytest
import torch

from mcrlib.config import ConfigError
from mcrlib.methods import METHODS, method_params
from mcrlib.methods.mmcosine import CosineFusion, MMCosine  # noqa: F401  (registers "mmcosine")
from mcrlib.runs import run
from tests.conftest import TINY_RUN, model_and_batch




def mmcosine(model, **params):
    return METHODS["mmcosine"](method_params("mmcosine", params), model=model)


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
    model, batch = model_and_batch(n_modalities=3)
    mmcosine(model, scale=4.0)
    with torch.no_grad():
        for branch in model.fusion.branches:
            branch.weight.mul_(1000)  # large weights: a linear head would leave the bound far behind
        out = model(batch)
    parts = model.fusion.contributions([out.latents[m] for m in model.modalities])
    assert all(p.abs().max() <= 4.0 + 1e-5 for p in parts)
    assert out.logits.abs().max() <= 3 * 4.0 + 1e-5
    torch.testing.assert_close(out.logits, sum(parts))
    # A feature equal to class 2's weight vector (times 7) gets exactly s for class 2.
    w = model.fusion.branches[0].weight[2].detach()
    torch.testing.assert_close(model.fusion.contributions([7 * w[None]])[0][0, 2], torch.tensor(4.0))


def test_scaling_features_or_class_weights_leaves_logits_unchanged():
    model, batch = model_and_batch()
    mmcosine(model)
    with torch.no_grad():
        z = [model(batch).latents[m] for m in model.modalities]
        before = model.fusion(z)
        rescaled = [z[0] * torch.rand(len(z[0]), 1).add(0.1) * 50, z[1] * 0.01]  # per-sample factors
        torch.testing.assert_close(model.fusion(rescaled), before)
        model.fusion.branches[0].weight[3].mul_(20.0)   # one class weight vector of modality 1
        model.fusion.branches[1].weight.mul_(0.05)      # all of modality 2
        torch.testing.assert_close(model.fusion(z), before)


def test_installed_fusion_drives_forward_loss_and_optimizer():
    model, batch = model_and_batch()
    method = mmcosine(model)
    assert isinstance(model.fusion, CosineFusion) and model.fusion.scale == 10.0
    out = model(batch)
    expected = sum(model.fusion.contributions([out.latents[m] for m in model.modalities]))
    torch.testing.assert_close(out.logits, expected)
    terms = method.loss(model, batch, out)
    assert set(terms) == {"task"}
    assert terms["task"].item() == pytest.approx(torch.nn.functional.cross_entropy(expected, batch["label"]).item())
    optimized = {id(p) for g in method.param_groups(model) for p in g["params"]}
    assert all(id(b.weight) in optimized for b in model.fusion.branches)
    assert set(method.diagnostics) == {"mmcos_logit_y[x0]", "mmcos_logit_y[x1]"}


def test_param_checks_and_classification_only():
    with pytest.raises(ConfigError, match="scale"):
        method_params("mmcosine", {"scale": 0})
    model, _ = model_and_batch(n_classes=1)
    with pytest.raises(ConfigError, match="classification"):
        METHODS["mmcosine"](method_params("mmcosine", {}), model=model, task="regression")


def test_trains_two_epochs_deterministically(tmp_path):
    config = {**TINY_RUN, "train": {**TINY_RUN["train"], "max_epochs": 2},
              "method": {"name": "mmcosine", "params": {"scale": 10.0}}}
    a, b = run(config, tmp_path / "a"), run(config, tmp_path / "b")
    assert len(a.history) == 2 and a.history == b.history
    assert torch.equal(a.predictions["test"]["fused"], b.predictions["test"]["fused"])
    # The saved predictions are the cosine logits: at most M * s in magnitude.
    assert a.predictions["test"]["fused"].abs().max() <= 2 * 10.0 + 1e-4
    assert all(math.isfinite(h["train_loss_task"]) for h in a.history)
