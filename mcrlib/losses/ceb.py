"""L_CEB: reconstruct the latents from the detached prediction (eq. 13).

Pushes encoder features towards what is recoverable from the prediction, compressing
task-irrelevant content. The decoder g: Linear(C -> d) -> ReLU -> Linear(d -> sum of d_m),
both bias-free, takes the *detached* fused logits; the latents are not detached.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class CEBDecoder(nn.Module):
    def __init__(self, *, n_classes: int, latent_dims: Sequence[int]):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_classes, latent_dims[0], bias=False), nn.ReLU(),
                                 nn.Linear(latent_dims[0], sum(latent_dims), bias=False))

    def forward(self, logits: torch.Tensor, latents: Sequence[torch.Tensor]) -> torch.Tensor:
        return F.mse_loss(self.net(logits.detach()), torch.cat(list(latents), dim=1))
