"""L_con: supervised contrastive loss on the stacked latents of all modalities (eq. 11-12).

Two forms, both from pytorch-metric-learning (which L2-normalises the embeddings):
  ntxent  the release's semantics (NTXentLoss with labels): every same-label pair is a
          positive, the denominator holds the positive and the different-label rows.
  supcon  the paper's eq. 15 (Khosla et al.): all other rows in the denominator, mean over
          positives outside the log.
For regression the release uses sample identity as the label (cross-modal InfoNCE).
"""
from __future__ import annotations

from typing import Literal, Sequence

import torch
from pytorch_metric_learning.losses import NTXentLoss, SupConLoss

ContrastiveForm = Literal["ntxent", "supcon"]


def contrastive_loss(latents: Sequence[torch.Tensor], labels: torch.Tensor | None, *,
                     form: ContrastiveForm = "ntxent", temperature: float = 0.5) -> torch.Tensor:
    """`labels=None` uses sample identity (regression): each sample's views are its positives."""
    embeddings = torch.cat(list(latents))
    if labels is None:
        labels = torch.arange(latents[0].shape[0], device=embeddings.device)
    labels = labels.reshape(-1).repeat(len(latents))
    loss_fn = NTXentLoss(temperature=temperature) if form == "ntxent" else SupConLoss(temperature=temperature)
    return loss_fn(embeddings, labels)
