"""L_MIPD: which encoder receives gradient from which divergence, with which sign."""
import pytest
import torch
from torch import nn

from mcrlib.losses import jsd, jsd_rows, make_perturbation, mipd_loss, perturbed_subsets
from mcrlib.methods import METHODS, method_params
from mcrlib.models import MLPEncoder, MultimodalModel

B, P, C, D = 12, 4, 5, 6


def setup(n_modalities):
    torch.manual_seed(0)
    model = MultimodalModel(encoders={f"x{m}": MLPEncoder(in_dim=3, hidden_dim=8, latent_dim=D, layers=1)
                                      for m in range(n_modalities)}, n_classes=C)
    batch = {f"x{m}": torch.randn(B, 3) for m in range(n_modalities)}
    return model, batch


def encoder_grads(model, loss):
    grads = {}
    for m, enc in model.encoders.items():
        params = list(enc.parameters())
        g = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        grads[m] = torch.cat([(x if x is not None else torch.zeros_like(p)).reshape(-1)
                              for x, p in zip(g, params)])
    return grads


def full_divergence(model, latents, clean, perms, subset):
    """D_all(S): no branch detached, computed directly from the permutation indices."""
    rows = perms.reshape(-1)
    perturbed = [z[rows] if m in subset else z.repeat(P, 1) for m, z in enumerate(latents)]
    return jsd(model.fusion(perturbed), clean.detach().repeat(P, 1))


# Sign of D_all(S) in the loss gradient reaching encoder m; -1 means a descent step pushes the
# encoder to increase that divergence. Greedy, M = 2: encoder 1 increases D(1 permuted) and
# decreases D(2 permuted); independent: no cross terms; collaborative: every encoder increases all.
EXPECTED_SIGN = {
    "greedy": lambda m, s: -1.0 if m in s else +1.0,
    "independent": lambda m, s: -1.0 if m in s else 0.0,
    "collaborative": lambda m, s: -1.0,
}


@pytest.mark.parametrize("strategy", ["greedy", "independent", "collaborative"])
@pytest.mark.parametrize("n_modalities,subsets", [(2, "singletons"), (3, "all"), (3, "singletons")])
def test_gradient_routing(strategy, n_modalities, subsets):
    model, batch = setup(n_modalities)
    out = model(batch)
    latents = [out.latents[m] for m in model.modalities]
    perturbation = make_perturbation("permute", P)
    loss, _ = mipd_loss(model.fusion, out.logits, latents, strategy=strategy, perturbation=perturbation,
                        divergence=jsd_rows, subsets=subsets, detach_reference=True,
                        generator=torch.Generator().manual_seed(7))
    perms = perturbation.draw(B, "cpu", torch.Generator().manual_seed(7))
    got = encoder_grads(model, loss)
    for m, name in enumerate(model.modalities):
        expected = sum(EXPECTED_SIGN[strategy](m, s) *
                       encoder_grads(model, full_divergence(model, latents, out.logits, perms, s))[name]
                       for s in perturbed_subsets(n_modalities, subsets))
        assert got[name].abs().sum() > 0
        torch.testing.assert_close(got[name], expected, rtol=1e-4, atol=1e-7)


def test_reference_gradient_flows_unless_detached():
    model, batch = setup(2)
    out = model(batch)
    logits = out.logits
    latents = [out.latents[m] for m in model.modalities]
    kw = dict(strategy="independent", perturbation=make_perturbation("permute", P), divergence=jsd_rows)
    attached, _ = mipd_loss(model.fusion, logits, [z.detach() for z in latents], **kw)
    detached, _ = mipd_loss(model.fusion, logits, [z.detach() for z in latents], detach_reference=True, **kw)
    assert encoder_grads(model, attached)["x0"].abs().sum() > 0
    assert encoder_grads(model, detached)["x0"].abs().sum() == 0


class Counting(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls, self.rows = inner, 0, []
        self.out_dim = inner.out_dim

    def forward(self, x):
        self.calls += 1
        self.rows.append(x.shape[0])
        return self.inner(x)


@pytest.mark.parametrize("latent_source,encoder_calls", [("train", 1), ("eval_reforward", 2)])
@pytest.mark.parametrize("perturbation,fusion_rows", [("permute", [B]), ("noise_latent", [32 * B, 32 * B])])
def test_copies_cost_fusion_passes_not_encoder_passes(latent_source, encoder_calls, perturbation, fusion_rows):
    """The copies never pass through an encoder. A row perturbation (permute) on the linear head
    needs one fusion pass on the B clean rows; noise-latent one pass per perturbed subset on all
    32 copies stacked."""
    model, batch = setup(2)
    for name in model.modalities:
        model.encoders[name] = Counting(model.encoders[name])
    contributions_rows = []
    original = model.fusion.contributions
    model.fusion.contributions = lambda zs: contributions_rows.append(zs[0].shape[0]) or original(zs)
    params = method_params("mcr", {"copies": 32, "latent_source": latent_source, "perturbation": perturbation})
    method = METHODS["mcr"](params, model=model)
    out = model(batch)
    contributions_rows.clear()
    terms = method.loss(model, {**batch, "label": torch.randint(C, (B,))}, out)
    sum(terms.values()).backward()
    assert [enc.calls for enc in model.encoders.values()] == [encoder_calls] * 2
    assert all(rows == [B] * encoder_calls for rows in (e.rows for e in model.encoders.values()))
    assert contributions_rows == fusion_rows


def all_grads(model, loss):
    params = [p for p in model.parameters()]
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params)]


@pytest.mark.parametrize("perturbation", ["permute", "zero_latent"])
@pytest.mark.parametrize("strategy", ["greedy", "independent", "collaborative"])
@pytest.mark.parametrize("n_modalities,subsets", [(2, "singletons"), (2, "all"), (3, "all"), (3, "singletons")])
@pytest.mark.parametrize("detach_reference", [False, True])
def test_contribution_path_equals_latent_path(perturbation, strategy, n_modalities, subsets, detach_reference):
    """Perturbing W_m z_m (gathers of B rows) gives the values and the gradients, for every
    parameter (encoders, fusion branches and bias), of perturbing z_m (a fusion pass on P*B rows)."""
    model, batch = setup(n_modalities)
    out = model(batch)
    latents = [out.latents[m] for m in model.modalities]
    kw = dict(strategy=strategy, perturbation=make_perturbation(perturbation, P), divergence=jsd_rows,
              subsets=subsets, detach_reference=detach_reference)
    fast, fast_values = mipd_loss(model.fusion, out.logits, latents, generator=torch.Generator().manual_seed(3), **kw)
    slow, slow_values = mipd_loss(model.fusion, out.logits, latents, generator=torch.Generator().manual_seed(3),
                                  path="latents", **kw)
    torch.testing.assert_close(fast, slow)
    assert fast_values.keys() == slow_values.keys() and len(fast_values) == len(perturbed_subsets(n_modalities, subsets))
    for key in fast_values:
        torch.testing.assert_close(fast_values[key], slow_values[key])
    fast_grads, slow_grads = all_grads(model, fast), all_grads(model, slow)
    assert any(g.abs().sum() > 0 for g in fast_grads)
    for got, expected in zip(fast_grads, slow_grads):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-7)


def test_diagnostics_stay_on_the_device_as_detached_tensors():
    model, batch = setup(2)
    out = model(batch)
    _, values = mipd_loss(model.fusion, out.logits, [out.latents[m] for m in model.modalities], strategy="greedy",
                          perturbation=make_perturbation("permute", P), divergence=jsd_rows)
    assert all(isinstance(v, torch.Tensor) and not v.requires_grad and v.dim() == 0 for v in values.values())
