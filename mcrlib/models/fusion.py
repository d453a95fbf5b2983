"""Late linear fusion: h(z_1..z_M) = sum_m W_m z_m + b, one branch per modality."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from mcrlib.models.fusion_head import FusionHead


class LateLinearFusion(FusionHead):
    """Equivalent to a linear layer on the concatenated latents, but kept as bias-free
    per-modality branches with one shared bias so any branch can be detached on its own
    (MCR routes each divergence's gradient to one encoder this way). `model.fusion: linear`,
    no params.

    The additive head's interface (what `additive = True` promises, and what OGM, AGM, MSLR,
    MMCosine and L_MIPD read): `contributions` (W_m z_m), `combine`, `bias` and `branch_weights`."""

    # L_MIPD may perturb the contributions W_m z_m instead of z_m (losses/mipd.py), and
    # `logits_and_shares` returns each modality's share W_m z_m + b/M.
    name = "linear"
    additive = True

    @classmethod
    def from_params(cls, params, *, latent_dims, n_outputs):
        return cls(latent_dims=latent_dims, n_classes=n_outputs)

    def __init__(self, *, latent_dims: Sequence[int], n_classes: int):
        super().__init__()
        self.params = self.Params()
        self.branches = nn.ModuleList(nn.Linear(d, n_classes, bias=False) for d in latent_dims)
        self.bias = nn.Parameter(torch.zeros(n_classes))

    def contributions(self, latents: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """W_m z_m for every modality m."""
        return [branch(z) for branch, z in zip(self.branches, latents)]

    def combine(self, contributions: Sequence[torch.Tensor],
                detach: Sequence[bool] | None = None) -> torch.Tensor:
        """Sum of branch outputs plus bias; a detached branch passes no gradient to its
        encoder nor to its W_m. The shared bias always receives gradient."""
        detach = detach or [False] * len(contributions)
        total = self.bias
        for c, d in zip(contributions, detach):
            total = total + (c.detach() if d else c)
        return total

    def branch_weights(self) -> list[torch.Tensor]:
        """W_m of every modality: the head's weight matrices (its bias aside), e.g. for AGM's
        clipping check, which reads their gradients."""
        return [branch.weight for branch in self.branches]

    def logits_and_shares(self, latents, unimodal_logits):
        """The logits and each modality's share W_m z_m + b/M of them (the bias split evenly)."""
        parts = self.contributions(latents)
        logits = self.combine(parts)
        share = self.bias / len(parts)
        return logits, [c + share for c in parts]

    def forward(self, latents: Sequence[torch.Tensor], detach: Sequence[bool] | None = None):
        return self.combine(self.contributions(latents), detach)
