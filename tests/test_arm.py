"""ARM: histogram NMI / CMI estimators, contributions C_m = p_f NMI_m + p_other II_m, the
asymmetric re-fusion (the lower-contribution modality amplified), the buffer used at evaluation,
the frozen fused-feature Linear, the configuration errors, runs."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import normalized_mutual_info_score

from mcrlib.config import ConfigError, ModelConfig
from mcrlib.data import load_dataset
from mcrlib.methods import method_params
from mcrlib.methods.arm import ARM, arm_contributions, arm_estimate, normalized_cmi, normalized_mi
from mcrlib.models import build_fusion, build_model
from mcrlib.models.arm_fusion import ARMFusion
from mcrlib.runs import run
from tests.conftest import TINY_RUN, model_and_batch

T = torch.tensor


def arm(model, task="classification", **params):
    return ARM(method_params("arm", params), model=model, task=task)


def arm_model_and_batch(**kwargs):
    """conftest's model with ARM's head (what model_overrides {"fusion": "arm"} builds)."""
    model, batch = model_and_batch(**kwargs)
    model.fusion = ARMFusion(latent_dim=6, n_classes=5)
    return model, batch


def test_nmi_hand_checked():
    x = T([0., 0., 1., 1.])
    assert normalized_mi(x, x, bins=2) == pytest.approx(1.0)
    assert normalized_mi(x, T([0., 1., 0., 1.]), bins=2) == pytest.approx(0.0, abs=1e-12)
    # H(X) = ln 2, H(Y) = H(3/4, 1/4), H(X,Y) = H(1/2, 1/4, 1/4): 2 I / (H(X) + H(Y)) = 0.343711
    assert normalized_mi(x, T([0., 0., 0., 1.]), bins=2) == pytest.approx(0.3437110185)
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(200_000, generator=g), torch.rand(200_000, generator=g)
    assert normalized_mi(a, 2 * a + 1, bins=30) == pytest.approx(1.0)   # equal-width bins: affine-invariant
    assert normalized_mi(a, b, bins=30) < 0.002                         # independent: ~0 (plug-in bias)


def numpy_bins(v, bins):
    """Bin labels of the flattened tensor from numpy's equal-width histogram edges."""
    flat = v.detach().reshape(-1).numpy()
    return np.digitize(flat, np.histogram_bin_edges(flat, bins)[1:-1])


def test_nmi_matches_sklearn_on_numpy_histogram_bins():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 6, generator=g)
    y = x + 0.7 * torch.randn(8, 6, generator=g)
    expected = normalized_mutual_info_score(numpy_bins(x, 30), numpy_bins(y, 30),
                                            average_method="arithmetic")   # 2 I / (H(X) + H(Y))
    assert normalized_mi(x, y, bins=30) == pytest.approx(expected, rel=1e-9)


def test_cmi_hand_checked():
    x = T([0., 0., 1., 1.])
    # X = Y, Z independent: I(X;Y|Z) = ln 2, H(X|Z) = H(Y|Z) = ln 2 -> 1/2 (no factor 2, as the release)
    assert normalized_cmi(x, x, T([0., 1., 0., 1.]), bins=2) == pytest.approx(0.5)
    # XOR: X, Y independent (NMI 0) but fully dependent given Z = X xor Y -> II = 0 - 1/2
    y, z = T([0., 1., 0., 1.]), T([0., 1., 1., 0.])
    assert normalized_mi(x, y, bins=2) == pytest.approx(0.0, abs=1e-12)
    assert normalized_cmi(x, y, z, bins=2) == pytest.approx(0.5)
    # constant Z: CMI = MI, normalised by H(X) + H(Y) -> NMI / 2
    assert normalized_cmi(x, T([0., 0., 0., 1.]), torch.zeros(4), bins=2) == pytest.approx(0.3437110185 / 2)
    # X, Y independent given Z (each agrees with Z 12 times in 16) yet dependent marginally: CMI 0
    z = torch.cat([torch.zeros(16), torch.ones(16)])
    agree = T([1.] * 9 + [1.] * 3 + [0.] * 3 + [0.])      # (x=z, y=z) 9, (x=z, y!=z) 3, (x!=z, y=z) 3, 1
    agree_y = T([1.] * 9 + [0.] * 3 + [1.] * 3 + [0.])
    xs = torch.where(agree.repeat(2).bool(), z, 1 - z)
    ys = torch.where(agree_y.repeat(2).bool(), z, 1 - z)
    assert normalized_cmi(xs, ys, z, bins=2) == pytest.approx(0.0, abs=1e-12)
    # marginally P(x = y) = 10/16: NMI = (2 ln 2 - H(5/16, 5/16, 3/16, 3/16)) / ln 2
    assert normalized_mi(xs, ys, bins=2) == pytest.approx(0.0455659971)


def test_contributions_weigh_nmi_by_p_fused_and_ii_by_the_other_modality():
    # C_1 = 0.5 * 0.4 + p_2 (0.7) * (0.4 - 0.1); C_2 = 0.5 * 0.3 + p_1 (0.6) * (0.3 - 0.2)
    assert arm_contributions([0.4, 0.3], [0.1, 0.2], 0.5, [0.6, 0.7]) == pytest.approx([0.41, 0.21])


def independent_cmi(x, y, z, bins):
    """sum p(x,y,z) log p(z) p(x,y,z) / (p(x,z) p(y,z)) from numpy's histogramdd."""
    points = np.stack([v.reshape(-1).numpy() for v in (x, y, z)], 1).astype(np.float64)
    p, _ = np.histogramdd(points, bins=bins)
    p /= p.sum()
    pxz, pyz, pz = p.sum(1, keepdims=True), p.sum(0, keepdims=True), p.sum((0, 1), keepdims=True)
    nz = p > 0
    cmi = (p[nz] * np.log((pz * p / (pxz * pyz))[nz])).sum()
    h = lambda q: -(q[q > 0] * np.log(q[q > 0])).sum()   # noqa: E731
    return cmi / (h(pxz) - h(pz) + h(pyz) - h(pz))


def test_estimate_from_the_features_as_specified():
    model, batch = arm_model_and_batch()
    arm(model)
    z = [model.encoders[m](batch[m]).detach() for m in ("x0", "x1")]
    est = arm_estimate(model.fusion, z, batch["label"], nmi_bins=30, cmi_bins=2)
    fusion = model.fusion
    zf = F.linear(torch.cat(z, 1), fusion.fuse.weight, fusion.fuse.bias)
    probs = [F.linear(v, fusion.classifier.weight, fusion.classifier.bias).softmax(-1) for v in (zf, *z)]
    p = [q[torch.arange(16), batch["label"]].mean().item() for q in probs]
    assert est["p"] == pytest.approx(p)
    nmi = [normalized_mutual_info_score(numpy_bins(v, 30), numpy_bins(zf, 30)) for v in z]
    assert est["nmi"] == pytest.approx(nmi, rel=1e-9)
    ncmi = [independent_cmi(z[0], zf, z[1], 2), independent_cmi(z[1], zf, z[0], 2)]
    assert est["ncmi"] == pytest.approx(ncmi, rel=1e-9)
    c = [p[0] * nmi[0] + p[2] * (nmi[0] - ncmi[0]), p[0] * nmi[1] + p[1] * (nmi[1] - ncmi[1])]
    assert est["C"] == pytest.approx(c, rel=1e-9)


def capture_refusion_input(fusion):
    seen = []
    fusion.refuse.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    return seen


def test_lower_contribution_modality_is_amplified_on_the_refusion_input():
    model, batch = arm_model_and_batch()
    arm(model)
    seen = capture_refusion_input(model.fusion)
    model.fusion.modality_contributions.copy_(T([0.2, 0.05]))   # x1 is the weaker modality
    model.eval()
    z = [model.encoders[m](batch[m]) for m in ("x0", "x1")]
    model(batch)
    torch.testing.assert_close(seen[-1], torch.cat([0.25 * z[0], 4.0 * z[1]], 1).detach())
    model.fusion.modality_contributions.copy_(T([0.05, 0.2]))   # now x0 is weaker
    model(batch)
    torch.testing.assert_close(seen[-1], torch.cat([4.0 * z[0], 0.25 * z[1]], 1).detach())


def test_loss_refuses_with_this_batch_contributions_and_eval_uses_the_buffer():
    model, batch = arm_model_and_batch()
    method = arm(model, nmi_bins=7, cmi_bins=3)   # the params' bins reach the estimate
    seen = capture_refusion_input(model.fusion)
    output = model(batch)
    terms = method.loss(model, batch, output)
    z = [output.latents[m].detach() for m in ("x0", "x1")]
    est = arm_estimate(model.fusion, z, batch["label"], nmi_bins=7, cmi_bins=3)
    c = est["C"]
    assert c != pytest.approx(arm_estimate(model.fusion, z, batch["label"])["C"])   # defaults differ
    assert model.fusion.modality_contributions.tolist() == pytest.approx(c)
    assert method.diagnostics["nmi[x0]"] == est["nmi"][0] and method.diagnostics["ncmi[x1]"] == est["ncmi"][1]
    weak = int(np.argmin(c))
    scales = [c[1] / c[0], c[0] / c[1]]
    assert scales[weak] > 1 > scales[1 - weak]
    assert method.diagnostics[f"scale[x{weak}]"] == pytest.approx(scales[weak], rel=1e-6)
    torch.testing.assert_close(seen[-1], torch.cat([scales[0] * z[0], scales[1] * z[1]], 1))
    logits = model.fusion.classifier(model.fusion.refuse(seen[-1]))
    assert terms["task"].item() == pytest.approx(F.cross_entropy(logits, batch["label"]).item(), rel=1e-6)
    model.eval()   # evaluation: no labels, the kept contributions
    torch.testing.assert_close(model(batch).logits, logits)
    assert "fusion.modality_contributions" in model.state_dict()


def test_only_the_refusion_path_is_trained():
    model, batch = arm_model_and_batch()
    method = arm(model)
    sum(method.loss(model, batch, model(batch)).values()).backward()
    fusion = model.fusion
    assert not fusion.fuse.weight.requires_grad and fusion.fuse.weight.grad is None
    for p in (fusion.refuse.weight, fusion.classifier.weight, *model.encoders.parameters()):
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert all(p.grad is None for p in model.unimodal_heads.parameters())
    assert not any(p is fusion.fuse.weight for g in method.param_groups(model) for p in g["params"])


def test_rejects_what_it_cannot_do():
    with pytest.raises(ConfigError, match="exactly two modalities"):
        arm(model_and_batch(n_modalities=3)[0])
    with pytest.raises(ConfigError, match="equal latent widths"):
        arm(model_and_batch(dims=(6, 4))[0])
    with pytest.raises(ConfigError, match="classification only"):
        arm(arm_model_and_batch()[0], task="regression")
    with pytest.raises(ConfigError, match="model.fusion='arm'"):   # built without its overrides
        arm(model_and_batch()[0])
    with pytest.raises(ConfigError, match="cmi_bins"):
        method_params("arm", {"cmi_bins": 1})
    # the model layer refuses the head for unequal widths too, before any method exists
    with pytest.raises(ConfigError, match="equal latent width"):
        build_fusion(ModelConfig(**ARM.model_overrides(method_params("arm", {}))), [6, 4], 5)


def test_trains_two_epochs_deterministically(tmp_path):
    config = {**TINY_RUN, "train": {**TINY_RUN["train"], "max_epochs": 2}, "method": {"name": "arm"}}
    a = run(config, tmp_path / "a")
    b = run(config, tmp_path / "b")
    assert len(a.history) == 2 and a.history == b.history
    assert torch.equal(a.predictions["test"]["fused"], b.predictions["test"]["fused"])
    h = a.history[0]
    assert h["train_C[x1]"] > 0 and h["train_C[x2]"] > 0 and 0 < h["train_nmi[x1]"] <= 1
    assert a.config["model"]["fusion"] == "arm"   # the run's config names the head
    # the fused-feature Linear keeps its initial weights: rebuild the model from the seed
    data = load_dataset("synthetic", TINY_RUN["data"]["params"])
    torch.manual_seed(0)
    model = build_model(ModelConfig(**TINY_RUN["model"], fusion="arm"), data)
    arm(model)
    assert isinstance(model.fusion, ARMFusion)
    assert torch.equal(a.model_state()["fusion.fuse.weight"], model.fusion.fuse.weight)
    assert not torch.equal(a.model_state()["fusion.refuse.weight"], model.fusion.refuse.weight)
