"""ConFu's objective, its pairwise baseline, Symile's and GRAM's, pinned by numbers computed by hand."""
import math

import pytest
import torch

from mcrlib.losses.higher_order import (confu_loss, gram_loss, gram_volume, info_nce, multilinear_inner_product,
                                        symile_loss)

# Two samples, unit vectors in 2-D: a and b agree, c is rotated.
A = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
B = torch.tensor([[0.6, 0.8], [0.8, -0.6]], dtype=torch.float64)
C = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)


def ce(row, positive):
    """Cross-entropy of one row of logits by hand."""
    return -row[positive] + math.log(sum(math.exp(v) for v in row))


def test_info_nce_by_hand():
    tau = 0.5
    # a·b: [[0.6, 0.8], [0.8, -0.6]] / 0.5 = [[1.2, 1.6], [1.6, -1.2]]; symmetric, so both directions agree
    rows = [[1.2, 1.6], [1.6, -1.2]]
    cols = [[1.2, 1.6], [1.6, -1.2]]
    expected = ((ce(rows[0], 0) + ce(rows[1], 1)) / 2 + (ce(cols[0], 0) + ce(cols[1], 1)) / 2) / 2
    assert info_nce(A, B, tau).item() == pytest.approx(expected, rel=1e-12)
    # not symmetric: a·c = [[0, 1], [1, 0]] / 0.5
    lc = [[0.0, 2.0], [2.0, 0.0]]
    assert info_nce(A, C, tau).item() == pytest.approx((ce(lc[0], 0) + ce(lc[1], 1)) / 2, rel=1e-12)


def test_confu_weighs_fused_and_pairwise_terms_and_divides_by_their_number():
    tau = 0.5
    z = {"x1": A, "x2": B, "x3": C}
    fused = {("x1", "x2"): C, ("x1", "x3"): B, ("x2", "x3"): A}   # each pair against the third
    fused_terms = info_nce(C, C, tau) + info_nce(B, B, tau) + info_nce(A, A, tau)
    pair_terms = info_nce(A, B, tau) + info_nce(A, C, tau) + info_nce(B, C, tau)
    for lam in (0.5, 0.0, 1.0):
        expected = (lam * fused_terms + (1 - lam) * pair_terms) / 6
        assert confu_loss(z, fused, lam=lam, tau=tau).item() == pytest.approx(expected.item(), rel=1e-12)
    # the pairwise baseline (λ = 0) does not depend on the fused embeddings
    other = {k: torch.flip(v, [0]) for k, v in fused.items()}
    assert confu_loss(z, fused, lam=0.0, tau=tau) == confu_loss(z, other, lam=0.0, tau=tau)


def test_symile_by_hand():
    tau = 1.0
    # MIP(a_i, b_i, c_j): a⊙b at i = [[0.6, 0], [0, -0.6]]; with c_j (rows i, columns j): [[0, 0.6], [-0.6, 0]]
    assert multilinear_inner_product(A[0], B[0], C[1]).item() == pytest.approx(0.6)
    varying_c = [[0.0, 0.6], [-0.6, 0.0]]
    # varying a: b⊙c at i = [[0, 0.8], [0.8, 0]]; with a_j: [[0, 0.8], [0.8, 0]]
    varying_a = [[0.0, 0.8], [0.8, 0.0]]
    # varying b: a⊙c at i = [[0, 0], [0, 0]]: every logit 0
    varying_b = [[0.0, 0.0], [0.0, 0.0]]
    per = [(ce(m[0], 0) + ce(m[1], 1)) / 2 for m in (varying_a, varying_b, varying_c)]
    assert symile_loss([A, B, C], tau).item() == pytest.approx(sum(per) / 3, rel=1e-12)


def test_gradients_reach_every_embedding():
    torch.manual_seed(0)
    z = {m: torch.nn.functional.normalize(torch.randn(8, 4), dim=1).requires_grad_() for m in ("x1", "x2", "x3")}
    fused = {p: torch.nn.functional.normalize(torch.randn(8, 4), dim=1).requires_grad_()
             for p in (("x1", "x2"), ("x1", "x3"), ("x2", "x3"))}
    (confu_loss(z, fused) + symile_loss(list(z.values())) + gram_loss(z["x3"], [z["x1"], z["x2"]])).backward()
    assert all(v.grad.abs().sum() > 0 for v in [*z.values(), *fused.values()])


def test_gram_volume_by_hand():
    # e3 with e1 and (cos t, sin t, 0): a box of height 1 on a parallelogram of area sin t
    t = 0.3
    e1, e3 = torch.tensor([[1.0, 0, 0]], dtype=torch.float64), torch.tensor([[0, 0, 1.0]], dtype=torch.float64)
    tilted = torch.tensor([[math.cos(t), math.sin(t), 0]], dtype=torch.float64)
    assert gram_volume(e3, e1, tilted).item() == pytest.approx(math.sin(t), rel=1e-12)
    assert gram_volume(e1, e1, tilted).item() == pytest.approx(1e-6)        # dependent: det 0, clamped at 1e-12
    # two vectors: the parallelogram's area |sin| of their angle; rows i of the anchor, columns j
    volume = gram_volume(A, B)
    assert volume.shape == (2, 2)
    torch.testing.assert_close(volume, torch.tensor([[0.8, 0.6], [0.6, 0.8]], dtype=torch.float64))


def test_gram_volume_of_three_vectors_in_three_dimensions_is_their_determinant():
    """An identity the Gram construction does not use: in R^3, sqrt(det(M Mᵀ)) = |det M|."""
    gen = torch.Generator().manual_seed(0)
    a, b, c = (torch.randn(n, 3, generator=gen, dtype=torch.float64) for n in (4, 5, 5))
    expected = torch.stack([torch.stack([torch.linalg.det(torch.stack([a[i], b[j], c[j]])).abs() for j in range(5)])
                            for i in range(4)])
    torch.testing.assert_close(gram_volume(a, b, c), expected)


def test_gram_loss_by_hand():
    tau = 0.5
    # V(a_i, b_j) = [[0.8, 0.6], [0.6, 0.8]] (above): logits -V / 0.5 = [[-1.6, -1.2], [-1.2, -1.6]],
    # symmetric, so both directions agree; label smoothing s puts s/2 on each of the 2 classes
    logits = [[-1.6, -1.2], [-1.2, -1.6]]
    for s in (0.0, 0.1):
        per_row = [(1 - s) * ce(logits[i], i) + s / 2 * (ce(logits[i], 0) + ce(logits[i], 1)) for i in (0, 1)]
        expected = sum(per_row) / 2
        assert gram_loss(A, [B], tau=tau, label_smoothing=s).item() == pytest.approx(expected, rel=1e-12)
    # aligned positives (volume near 0) against misaligned negatives give a lower loss than the reverse
    assert gram_loss(A, [A], tau=tau) < gram_loss(A, [torch.flip(A, [0])], tau=tau)
    with pytest.raises(ValueError, match="share one shape"):
        gram_volume(A, B, C[:1])
