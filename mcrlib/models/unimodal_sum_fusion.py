"""A fusion head that is the scaled sum of the unimodal heads' logits (ReconBoost's ensemble)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class UnimodalSumFusion(nn.Module):
    """h = rate * sum_m u_m, where u_m are the model's unimodal heads' logits: the prediction of
    an ensemble of per-modality learners (ReconBoost's `boost_rate`). No parameters of its own."""

    linear = False
    sums_unimodal = True   # MultimodalModel passes it the unimodal logits, not the latents

    def __init__(self, *, rate: float = 1.0):
        super().__init__()
        self.rate = rate

    def forward(self, unimodal_logits: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.rate * torch.stack(list(unimodal_logits)).sum(0)
