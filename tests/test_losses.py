"""JSD, L_con and L_CEB against independent computations."""
import math

import numpy as np
import pytest
import torch
from pytorch_metric_learning.losses import NTXentLoss
from scipy.spatial.distance import jensenshannon

from mcrlib.losses import CEBDecoder, contrastive_loss, jsd, mse_divergence


def test_jsd_zero_for_identical_inputs():
    logits = torch.randn(8, 5)
    assert jsd(logits, logits).item() == pytest.approx(0.0, abs=1e-7)


def test_jsd_symmetric_and_bounded_by_ln2():
    p, q = torch.randn(16, 5) * 5, torch.randn(16, 5) * 5
    assert jsd(p, q).item() == pytest.approx(jsd(q, p).item(), rel=1e-6)
    disjoint = torch.tensor([[100.0, -100.0]]), torch.tensor([[-100.0, 100.0]])
    assert jsd(*disjoint).item() == pytest.approx(math.log(2), rel=1e-5)
    assert 0 <= jsd(p, q).item() <= math.log(2)


def test_jsd_matches_scipy():
    p, q = torch.randn(32, 7) * 3, torch.randn(32, 7) * 3
    # scipy returns the square root of the divergence, natural log by default.
    expected = np.mean(jensenshannon(p.softmax(-1).numpy(), q.softmax(-1).numpy(), axis=1) ** 2)
    assert jsd(p, q).item() == pytest.approx(expected, rel=1e-5)


def test_mse_divergence_is_mean_squared_difference():
    a, b = torch.randn(10, 1), torch.randn(10, 1)
    assert mse_divergence(a, b).item() == pytest.approx(((a - b) ** 2).mean().item(), rel=1e-6)


@pytest.mark.parametrize("batch,classes,dim", [(16, 3, 8), (64, 5, 32), (9, 9, 4)])
def test_ntxent_equals_pytorch_metric_learning(batch, classes, dim):
    torch.manual_seed(batch)
    latents = [torch.randn(batch, dim) for _ in range(2)]
    labels = torch.randint(classes, (batch,))
    reference = [z.clone().requires_grad_() for z in latents]
    expected = NTXentLoss(temperature=0.5)(torch.cat(reference), labels.repeat(2))
    ours = [z.clone().requires_grad_() for z in latents]
    got = contrastive_loss(ours, labels)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    # the hand-written backward pass against autograd through the library's loss
    expected.backward()
    got.backward()
    for mine, theirs in zip(ours, reference):
        torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-4, atol=1e-6)


def test_ntxent_gradient_passes_gradcheck():
    torch.manual_seed(0)
    embeddings = torch.randn(10, 4, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1, 3, 3])
    assert torch.autograd.gradcheck(lambda e: contrastive_loss([e[:5], e[5:]], labels[:5]), (embeddings,))
    # every row the same class: no negatives, loss 0 and a zero (finite) gradient
    e = torch.randn(6, 3, requires_grad=True)
    loss = contrastive_loss([e[:3], e[3:]], torch.zeros(3, dtype=torch.long))
    loss.backward()
    assert loss.item() == 0 and torch.equal(e.grad, torch.zeros_like(e))


def test_ntxent_without_labels_is_cross_modal_infonce():
    latents = [torch.randn(12, 6) for _ in range(3)]
    expected = NTXentLoss(temperature=0.5)(torch.cat(latents), torch.arange(12).repeat(3))
    assert contrastive_loss(latents, None).item() == pytest.approx(expected.item(), rel=1e-5)


def test_supcon_equals_hand_computed_example():
    # Two modalities, two samples with labels (0, 1): rows a0, a1, b0, b1 on the unit circle.
    angles = torch.tensor([0.0, 1.0, 0.3, 2.0])
    z = torch.stack([angles.cos(), angles.sin()], dim=1)
    latents, labels, t = [z[:2], z[2:]], torch.tensor([0, 1]), 0.5
    sim = (z @ z.T) / t
    rows_labels = [0, 1, 0, 1]
    losses = []
    for i in range(4):
        others = [k for k in range(4) if k != i]
        log_denominator = torch.logsumexp(sim[i, others], dim=0)
        positives = [k for k in others if rows_labels[k] == rows_labels[i]]
        losses.append(-torch.stack([sim[i, k] - log_denominator for k in positives]).mean())
    expected = torch.stack(losses).mean()
    got = contrastive_loss(latents, labels, form="supcon", temperature=t)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_ceb_reconstructs_latents_from_detached_logits():
    decoder = CEBDecoder(n_classes=5, latent_dims=[4, 4])
    logits = torch.randn(6, 5, requires_grad=True)
    latents = [torch.randn(6, 4, requires_grad=True) for _ in range(2)]
    loss = decoder(logits, latents)
    loss.backward()
    assert logits.grad is None  # the prediction is only an input, never pushed by L_CEB
    assert all(z.grad is not None and z.grad.abs().sum() > 0 for z in latents)
    expected = ((decoder.net(logits.detach()) - torch.cat(latents, 1)) ** 2).mean()
    assert loss.item() == pytest.approx(expected.item())


@pytest.mark.parametrize("shapes", [((4, 6, 5), (4, 6, 5)), ((3, 2, 6, 5), (6, 5)), ((6, 5), (2, 6, 5))])
def test_fused_jsd_rows_matches_autograd_through_kl_div(shapes):
    """The hand-written backward pass of `jsd_rows` gives autograd's gradients of the composed
    form, broadcasting either way, and passes gradcheck in float64."""
    from mcrlib.losses.jsd import jsd_rows, jsd_rows_reference
    g = torch.Generator().manual_seed(0)
    a = (3 * torch.randn(*shapes[0], generator=g, dtype=torch.float64)).requires_grad_()
    b = (3 * torch.randn(*shapes[1], generator=g, dtype=torch.float64)).requires_grad_()
    weights = torch.rand(torch.broadcast_shapes(a.shape, b.shape)[:-1], generator=g, dtype=torch.float64)
    fused, reference = jsd_rows(a, b), jsd_rows_reference(a, b)
    torch.testing.assert_close(fused, reference)
    grads = torch.autograd.grad((fused * weights).sum(), (a, b))
    expected = torch.autograd.grad((reference * weights).sum(), (a, b))
    for got, want in zip(grads, expected):
        assert got.shape == want.shape
        torch.testing.assert_close(got, want)
    assert torch.autograd.gradcheck(jsd_rows, (a, b))


def test_fused_jsd_rows_stays_finite_on_saturated_logits():
    """Logits 1e4 apart underflow one softmax to exact zeros: values and gradients stay finite."""
    from mcrlib.losses.jsd import jsd_rows
    a = torch.tensor([[1e4, 0.0, -1e4]], requires_grad=True)
    b = torch.tensor([[-1e4, 0.0, 1e4]], requires_grad=True)
    value = jsd_rows(a, b)
    value.sum().backward()
    assert value.item() == pytest.approx(math.log(2), rel=1e-5)
    assert torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()
