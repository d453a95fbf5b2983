"""L_con: supervised contrastive loss on the stacked latents of all modalities (eq. 11-12).

Two forms on L2-normalised embeddings (no projection head):
  ntxent  the release's semantics (pytorch-metric-learning's NTXentLoss with labels): every
          same-label pair (i != j), within or across modalities, is a positive; its loss is
          -log(e^{s_ij/t} / (e^{s_ij/t} + sum_{k: y_k != y_i} e^{s_ik/t})), averaged over
          positive pairs.
  supcon  the paper's eq. 15 (Khosla et al.): all other rows in the denominator, mean over
          positives outside the log; pytorch-metric-learning's SupConLoss.
For regression the release uses sample identity as the label (cross-modal InfoNCE).

Why ntxent is computed here and not by NTXentLoss: with label positives the library builds a
(positive pairs x negative pairs) matrix, about 40 million entries for 2 x 64 rows and 5
classes, which costs ~0.7 s per training step on a CPU. The same quantity needs only the
(rows x rows) similarity matrix: loss_ij = softplus(logsumexp_{k neg of i} s_ik/t - s_ij/t).
The test suite checks it equals NTXentLoss on random inputs.

`fused_contrastive_loss` is the fused-modality term of ConFu (Koutoupis, Zervou, Kontras, De Vos,
Tsakalides, Tsagkatakis, "The More, the Merrier: Contrastive Fusion for Higher-Order Multimodal
Alignment", arXiv 2511.21331; code estafons/confu), in our own, parameter-free reading: each
pair of modalities, fused as the L2-normalised sum of their L2-normalised latents, against each
remaining modality, in the same form and temperature as L_con. docs/methods.md says where it
differs from ConFu's code (a learned fusion MLP per pair, CLIP InfoNCE, tau 0.07).
"""
from __future__ import annotations

from itertools import combinations
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from pytorch_metric_learning.losses import SupConLoss

ContrastiveForm = Literal["ntxent", "supcon"]


class _NTXentWithLabels(torch.autograd.Function):
    """The ntxent form with its gradient written out: a training step records two autograd nodes
    instead of about forty, which on small models is most of the term's cost (benchmarks/cost.py).

    With z = e / |e|, l = z z^T / t, n_i = logsumexp over i's negatives of l_ik, positive pairs P
    and |P| their count: loss = sum_P softplus(n_i - l_ij) / |P|. Its gradient:
      dl_ij = -P_ij sigmoid(n_i - l_ij) / |P| + a_i q_ik,  a_i = sum_j P_ij sigmoid(n_i - l_ij) / |P|,
      q_ik = softmax of l_i over i's negatives (0 elsewhere);
      dz = (dl + dl^T) z / t;  de = (dz - z <z, dz>) / |e|   (F.normalize's eps: |e| >= 1e-12).
    tests/test_losses.py checks value and gradient against pytorch-metric-learning's NTXentLoss."""

    @staticmethod
    def forward(ctx, embeddings, labels, temperature):
        norm = embeddings.norm(dim=1, keepdim=True).clamp_min(1e-12)
        z = embeddings / norm
        logits = z @ z.T / temperature
        same = labels[:, None] == labels[None, :]
        positive = same.clone().fill_diagonal_(False)
        negatives = logits.masked_fill(same, float("-inf"))
        neg_lse = torch.logsumexp(negatives, dim=1, keepdim=True)
        gap = neg_lse - logits
        # -log(e^a / (e^a + e^b)) = softplus(b - a); b = -inf (no negatives) gives 0. The mean over
        # positive pairs is a masked sum: boolean indexing would make the host read its size.
        count = positive.sum().clamp_min(1)
        loss = (F.softplus(gap) * positive).sum() / count
        ctx.save_for_backward(z, norm, negatives, neg_lse, gap, positive, count)
        ctx.temperature = temperature
        return loss

    @staticmethod
    def backward(ctx, grad):
        z, norm, negatives, neg_lse, gap, positive, count = ctx.saved_tensors
        w = torch.sigmoid(gap) * positive / count
        q = torch.exp(negatives - neg_lse).nan_to_num_(0.0)   # a row without negatives: 0
        dl = q * w.sum(1, keepdim=True) - w
        dz = (dl + dl.T) @ z / ctx.temperature
        de = (dz - z * (z * dz).sum(1, keepdim=True)) / norm
        return de * grad, None, None


def ntxent_with_labels(embeddings: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    return _NTXentWithLabels.apply(embeddings, labels, temperature)


def contrastive_loss(latents: Sequence[torch.Tensor], labels: torch.Tensor | None, *,
                     form: ContrastiveForm = "ntxent", temperature: float = 0.5) -> torch.Tensor:
    """`labels=None` uses sample identity (regression): each sample's views are its positives."""
    embeddings = torch.cat(list(latents))
    if labels is None:
        labels = torch.arange(latents[0].shape[0], device=embeddings.device)
    labels = labels.reshape(-1).repeat(len(latents))
    if form == "supcon":
        return SupConLoss(temperature=temperature)(embeddings, labels)
    return ntxent_with_labels(embeddings, labels, temperature)


def fused_pairs(n_modalities: int) -> list[tuple[tuple[int, int], int]]:
    """((i, j), k) for every pair i < j of modalities and every other modality k, in index order:
    for M = 3, ((0, 1), 2), ((0, 2), 1), ((1, 2), 0); M(M-1)(M-2)/2 of them."""
    return [((i, j), k) for i, j in combinations(range(n_modalities), 2)
            for k in range(n_modalities) if k not in (i, j)]


def fused_contrastive_loss(latents: Sequence[torch.Tensor], labels: torch.Tensor | None, *,
                           form: ContrastiveForm = "ntxent", temperature: float = 0.5) -> torch.Tensor:
    """ConFu's fused-modality term (our reading, no parameters), M >= 3 latents of one width:

        f_ij = (z_i/|z_i| + z_j/|z_j|) / |z_i/|z_i| + z_j/|z_j||
        L_fus = mean over ((i, j), k) in fused_pairs(M) of contrastive_loss([f_ij, z_k], labels)

    with `contrastive_loss`'s form and temperature (the stacked [f_ij; z_k] with labels [y; y]:
    every same-label pair is a positive; `labels=None`: sample identity). The fused row is
    normalised again by the form itself, so the sum is passed as is (the same value).
    A pair whose normalised latents cancel (z_j/|z_j| = -z_i/|z_i|) has no direction: as in
    F.normalize, its norm is clamped at 1e-12."""
    if len(latents) < 3:
        raise ValueError(f"the fused contrastive term needs at least 3 modalities, got {len(latents)}")
    unit = [F.normalize(z, dim=1) for z in latents]
    terms = [contrastive_loss([unit[i] + unit[j], latents[k]], labels, form=form, temperature=temperature)
             for (i, j), k in fused_pairs(len(latents))]
    return torch.stack(terms).mean()
