"""Self-supervised alignment of three or more modalities: ConFu's objective, its pairwise
baseline (λ = 0), and Symile's.

ConFu (Koutoupis et al., "The More, the Merrier: Contrastive Fusion for Higher-Order Multimodal
Alignment", arXiv 2511.21331, CVPR 2026; code estafons/confu, `src/modules/models/confu.py`):
each modality i has an embedding z_i (its encoder, a linear projection, L2-normalised); each
pair (i, j) has a fused embedding f_ij (a fusion MLP on the concatenated encodings, normalised).
With the symmetric CLIP InfoNCE at temperature τ,

    L = ( λ · Σ_{pairs (i, j)} InfoNCE(f_ij, z_k)  +  (1 − λ) · Σ_{i < j} InfoNCE(z_i, z_j) ) / T,

k the modality outside the pair (three modalities: k is the third one), T the number of terms
(6 for three modalities, as the code divides). λ = 0.5 in the paper; λ = 0 is the pairwise
(CLIP-style) baseline, which never sees a pair together.

Symile (Saporta et al., "Contrasting with Symile: Simple Model-Agnostic Representation Learning
for Unlimited Modalities", NeurIPS 2024): the multilinear inner product
MIP(a, b, c) = Σ_d a_d b_d c_d scores a triple; for each modality in turn, the other two fixed at
sample i, the batch's candidates j of that modality are classified (cross-entropy, the positive
j = i), and the three losses are averaged. Logits are MIP / τ (Symile learns its logit scale;
here it is fixed, as ConFu's τ, so the two objectives differ only in what they contrast).

GRAM (Cicchetti, Grassucci, Sigillo, Comminiello, "Gramian Multimodal Representation Learning and
Alignment", ICLR 2025; code ispamm/GRAM, `utils/volume.py` and `model/gram.py`): k unit vectors
span a parallelotope of volume V = sqrt(det G), G their Gram matrix (G_ab = v_a · v_b); V = 0 when
they are aligned (linearly dependent) and 1 when they are orthonormal. With an anchor modality
(GRAM's text), V[i, j] is the volume of the anchor at sample i with every other modality at sample
j; the loss is the symmetric cross-entropy on the logits −V / τ, positive j = i, with label
smoothing 0.1 (their code). Deviations: τ fixed at 0.07 (GRAM learns it from 0.07), and det G is
clamped at 1e-12 before the square root, whose gradient is infinite at 0 (GRAM takes sqrt|det G|).
"""
from __future__ import annotations

from itertools import combinations
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F

TAU = 0.07          # ConFu's temperature (CLIP's)
LAMBDA = 0.5        # ConFu's weight of the fused terms
GRAM_LABEL_SMOOTHING = 0.1   # GRAM's cross-entropy (model/gram.py)


def info_nce(a: torch.Tensor, b: torch.Tensor, tau: float = TAU) -> torch.Tensor:
    """Symmetric CLIP InfoNCE of two (B, d) L2-normalised embeddings, row i of each the positive
    pair: (CE(a bᵀ / τ, i) + CE(b aᵀ / τ, i)) / 2."""
    logits = a @ b.T / tau
    target = torch.arange(len(a), device=a.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def confu_loss(z: Mapping[str, torch.Tensor], fused: Mapping[tuple[str, str], torch.Tensor], *,
               lam: float = LAMBDA, tau: float = TAU) -> torch.Tensor:
    """ConFu's objective (module docstring). `z`: modality -> its normalised (B, d) embedding, in
    the model's modality order; `fused`: (i, j) -> the pair's normalised fused embedding, each
    aligned with every modality outside the pair."""
    names = list(z)
    fused_terms = [info_nce(f, z[k], tau) for (i, j), f in fused.items() for k in names if k not in (i, j)]
    pair_terms = [info_nce(z[i], z[j], tau) for i, j in combinations(names, 2)]
    total = lam * torch.stack(fused_terms).sum() if fused_terms else z[names[0]].new_zeros(())
    total = total + (1 - lam) * torch.stack(pair_terms).sum()
    return total / (len(fused_terms) + len(pair_terms))


def multilinear_inner_product(*vectors: torch.Tensor) -> torch.Tensor:
    """MIP of equally shaped (..., d) tensors: Σ_d of their elementwise product."""
    product = vectors[0]
    for v in vectors[1:]:
        product = product * v
    return product.sum(-1)


def symile_loss(z: Sequence[torch.Tensor], tau: float = TAU) -> torch.Tensor:
    """Symile's objective (module docstring) for M (B, d) embeddings: per modality m, logits[i, j]
    = MIP(the others at i, z_m at j) / τ, cross-entropy with the positive j = i; the mean over m."""
    losses = []
    target = torch.arange(len(z[0]), device=z[0].device)
    for m in range(len(z)):
        others = [z[k] for k in range(len(z)) if k != m]
        anchor = others[0]
        for o in others[1:]:
            anchor = anchor * o                       # (B, d): the others' elementwise product at i
        losses.append(F.cross_entropy(anchor @ z[m].T / tau, target))
    return torch.stack(losses).mean()


def gram_volume(anchor: torch.Tensor, *others: torch.Tensor) -> torch.Tensor:
    """(A, B) volumes: [i, j] = sqrt(det G) of the vectors anchor[i], others[0][j], others[1][j], ...
    (`anchor` (A, d), every other (B, d)); G is their (k, k) Gram matrix, k = 1 + len(others)."""
    if not others:
        raise ValueError("gram_volume: give the anchor and at least one other modality's vectors")
    a, b = len(anchor), len(others[0])
    if any(o.shape != others[0].shape for o in others) or anchor.shape[1:] != others[0].shape[1:]:
        raise ValueError(f"gram_volume: the others must share one shape (B, d) and the anchor's width; got anchor "
                         f"{tuple(anchor.shape)}, others {[tuple(o.shape) for o in others]}")
    k = 1 + len(others)
    gram = anchor.new_empty(a, b, k, k)
    gram[..., 0, 0] = (anchor * anchor).sum(-1)[:, None]
    for p, op in enumerate(others, start=1):
        cross = anchor @ op.T                                    # anchor i with modality p at j
        gram[..., 0, p] = gram[..., p, 0] = cross
        for q, oq in enumerate(others[p - 1:], start=p):
            inner = (op * oq).sum(-1)[None, :]                   # within sample j
            gram[..., p, q] = gram[..., q, p] = inner
    return torch.linalg.det(gram).abs().clamp_min(1e-12).sqrt()


def gram_loss(anchor: torch.Tensor, others: Sequence[torch.Tensor], *, tau: float = TAU,
              label_smoothing: float = GRAM_LABEL_SMOOTHING) -> torch.Tensor:
    """GRAM's objective (module docstring): (CE(−V / τ, i) + CE(−Vᵀ / τ, i)) / 2, V = gram_volume."""
    logits = -gram_volume(anchor, *others) / tau
    target = torch.arange(len(anchor), device=anchor.device)
    return (F.cross_entropy(logits, target, label_smoothing=label_smoothing)
            + F.cross_entropy(logits.T, target, label_smoothing=label_smoothing)) / 2
