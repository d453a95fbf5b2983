"""ConFu's fused-modality contrastive term (mcrlib.losses.fused_contrastive_loss) and MCR's
`contrastive_terms` option: a hand-computed value, finite non-zero gradients into every
modality, the pairwise default unchanged, and the refusal with two modalities."""
import math

import pytest
import torch

from mcrlib.config import ConfigError, RunConfig, from_dict
from mcrlib.losses import contrastive_loss, fused_contrastive_loss
from mcrlib.losses.contrastive import fused_pairs
from mcrlib.methods import METHODS, method_params
from mcrlib.run_key import check_run
from tests.conftest import TINY_RUN, model_and_batch


def mcr(model, **params):
    return METHODS["mcr"](method_params("mcr", {"copies": 4, **params}), model=model)


def test_fused_pairs_are_each_pair_with_each_other_modality():
    assert fused_pairs(3) == [((0, 1), 2), ((0, 2), 1), ((1, 2), 0)]
    assert len(fused_pairs(4)) == 12 and ((0, 3), 1) in fused_pairs(4)


def test_fused_term_on_a_hand_computed_case():
    """Two samples (labels 0, 1), unit latents in the plane, tau = 0.5 (logits = 2 cos).
    z1 = (e1, e2), z2 = (e2, e2), z3 = (e1, e2). Fused: f12 = f23 = ((e1+e2)/sqrt2, e2), f13 = (e1, e2).
    Each term is the NT-Xent over the 4 stacked rows [f; z_k]: per positive pair (i, j),
    log(1 + sum over i's other-label rows k of exp(2 (s_ik - s_ij))), averaged over the 4 pairs."""
    e1, e2 = torch.tensor([1.0, 0.0], dtype=torch.float64), torch.tensor([0.0, 1.0], dtype=torch.float64)
    z1, z2, z3 = torch.stack([e1, e2]), torch.stack([e2, e2]), torch.stack([e1, e2])
    labels = torch.tensor([0, 1])
    r = 1 / math.sqrt(2)
    # f12 vs z3 (and f23 vs z1, the same rows): a0 = (e1+e2)/sqrt2, a1 = e2, b0 = e1, b1 = e2
    pair_a = [math.log(1 + 2 * math.exp(2 * (r - r))),            # (a0, b0): negatives a1, b1 at cos r
              math.log(1 + 2 * math.exp(2 * (0 - r))),            # (b0, a0): negatives a1, b1 at cos 0
              math.log(1 + math.exp(2 * (r - 1)) + math.exp(-2)),  # (a1, b1): negatives a0 (r), b0 (0)
              math.log(1 + math.exp(2 * (r - 1)) + math.exp(-2))]  # (b1, a1): the same
    # f13 vs z2: a0 = e1, a1 = e2, b0 = e2, b1 = e2
    pair_b = [math.log(1 + 2),                                     # (a0, b0): s 0, negatives a1, b1 at 0
              math.log(1 + 2 * math.exp(2)),                       # (b0, a0): s 0, negatives a1, b1 at 1
              math.log(2 + math.exp(-2)),                          # (a1, b1): s 1, negatives a0 (0), b0 (1)
              math.log(2 + math.exp(-2))]                          # (b1, a1): the same
    expected = (2 * sum(pair_a) / 4 + sum(pair_b) / 4) / 3
    got = fused_contrastive_loss([z1, z2, z3], labels, temperature=0.5)
    assert got.item() == pytest.approx(expected, rel=1e-12)
    # The fusion is the normalised sum of *normalised* latents: scaling a latent changes nothing.
    scaled = fused_contrastive_loss([3 * z1, 0.5 * z2, 7 * z3], labels, temperature=0.5)
    assert scaled.item() == pytest.approx(expected, rel=1e-12)


def test_fused_term_is_the_mean_of_contrastive_terms_in_both_forms():
    g = torch.Generator().manual_seed(1)
    latents = [torch.randn(8, 5, generator=g, dtype=torch.float64) for _ in range(4)]
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    unit = [torch.nn.functional.normalize(z, dim=1) for z in latents]
    for form in ("ntxent", "supcon"):
        for y in (labels, None):
            terms = [contrastive_loss([torch.nn.functional.normalize(unit[i] + unit[j], dim=1), latents[k]], y,
                                      form=form, temperature=0.3) for (i, j), k in fused_pairs(4)]
            got = fused_contrastive_loss(latents, y, form=form, temperature=0.3)
            assert got.item() == pytest.approx(torch.stack(terms).mean().item(), rel=1e-10), (form, y)


def test_fused_term_gives_finite_nonzero_gradients_to_every_modality():
    g = torch.Generator().manual_seed(2)
    latents = [torch.randn(12, 6, generator=g, requires_grad=True) for _ in range(3)]
    labels = torch.randint(3, (12,), generator=g)
    loss = fused_contrastive_loss(latents, labels)
    assert torch.isfinite(loss) and loss > 0
    grads = torch.autograd.grad(loss, latents)
    for grad in grads:
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    double = [z.detach().double().requires_grad_() for z in latents]
    assert torch.autograd.gradcheck(lambda *z: fused_contrastive_loss(list(z), labels), tuple(double))


def test_fused_term_needs_three_modalities():
    with pytest.raises(ValueError, match="at least 3 modalities, got 2"):
        fused_contrastive_loss([torch.randn(4, 3), torch.randn(4, 3)], torch.zeros(4, dtype=torch.long))


def test_pairwise_default_is_unchanged():
    """The value of L_con on fixed inputs, as computed by the code before the fused option."""
    g = torch.Generator().manual_seed(0)
    latents = [torch.randn(6, 4, generator=g, dtype=torch.float64) for _ in range(3)]
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    # float64 values computed before the fused option; exp/log kernels differ in the last bits between
    # CPUs, so the comparison allows 1e-12 relative (far below any change of the formula).
    assert contrastive_loss(latents, labels).item() == pytest.approx(2.9111533181529112, rel=1e-12)
    assert contrastive_loss(latents, labels, form="supcon").item() == pytest.approx(3.2300953517500095, rel=1e-12)
    assert contrastive_loss(latents, None).item() == pytest.approx(3.4112193031504434, rel=1e-12)
    # MCR's default is pairwise: no fused term, the same contrastive term as before.
    model, batch = model_and_batch(n_modalities=3)
    assert method_params("mcr", {}).contrastive_terms == "pairwise"
    method = mcr(model)
    terms = method.loss(model, batch, model(batch))
    assert "fused" not in terms
    latents = [model(batch).latents[m] for m in model.modalities]
    assert torch.equal(terms["contrastive"], contrastive_loss(latents, batch["label"]))


def test_mcr_fused_adds_its_term_with_three_modalities():
    model, batch = model_and_batch(n_modalities=3)
    method = mcr(model, contrastive_terms="fused", lambda_con=0.5)
    terms = method.loss(model, batch, model(batch))
    assert set(terms) == {"task", "unimodal", "mipd", "contrastive", "fused"}
    latents = [model(batch).latents[m] for m in model.modalities]
    torch.testing.assert_close(terms["fused"], 0.5 * fused_contrastive_loss(latents, batch["label"]))
    enc = list(model.encoders["x2"].parameters())[0]
    grad = torch.autograd.grad(terms["fused"], enc)[0]
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    # lambda_con = 0 turns both contrastive terms off
    assert "fused" not in mcr(model, contrastive_terms="fused", lambda_con=0.0).loss(model, batch, model(batch))


def test_contrastive_terms_is_validated():
    with pytest.raises(ConfigError) as err:
        method_params("mcr", {"contrastive_terms": "triple"})
    assert str(err.value) == ("method.params (mcr).contrastive_terms='triple' is invalid: "
                              "expected one of ['pairwise', 'fused']")


def test_fused_with_two_modalities_is_refused():
    reason = ("MCR's fused contrastive term (contrastive_terms: fused, ConFu) aligns a fused pair of "
              "modalities with a third: it needs at least 3 modalities, not 2")
    params = method_params("mcr", {"contrastive_terms": "fused"})
    assert METHODS["mcr"].unsupported(params, "classification", ("x1", "x2")) == reason
    assert METHODS["mcr"].unsupported(params, "classification", ("x1", "x2", "x3")) is None
    assert METHODS["mcr"].unsupported(method_params("mcr", {}), "classification", ("x1", "x2")) is None
    config = from_dict(RunConfig, {**TINY_RUN, "method": {"name": "mcr", "params": {"contrastive_terms": "fused"}}})
    with pytest.raises(ConfigError) as err:
        check_run(config)
    assert str(err.value) == ("method.name='mcr' cannot run on data.name='synthetic' "
                              f"(classification, modalities ['x1', 'x2']): {reason}")
    model, _ = model_and_batch(n_modalities=2)
    with pytest.raises(ConfigError, match="needs at least 3 modalities, not 2"):
        mcr(model, contrastive_terms="fused")
