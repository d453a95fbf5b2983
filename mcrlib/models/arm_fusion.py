"""ARM's fusion head (Gao et al., AAAI 2025): asymmetric re-fusion of two modalities."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from mcrlib.config import ConfigError
from mcrlib.models.fusion_head import FusionHead

FLOOR = 1e-6   # contributions are floored: a zero would divide by zero (the release has no guard)


class ARMFusion(FusionHead):
    """z_f = fuse([z_1; z_2]); logits = classifier(refuse([(C_2/C_1) z_1; (C_1/C_2) z_2])).
    The contributions C_m live in a buffer (checkpointed) that the ARM method sets each training
    step from its estimates (mcrlib.methods.arm) through `set_contributions`; evaluation uses the
    last ones. `model.fusion: arm`, no params. Its own interface, beyond FusionHead's, for the ARM
    method: `fuse_latents` (z_f), `classifier` (shared by z_f and every z_m), `set_contributions`,
    `scales`."""

    name = "arm"

    @classmethod
    def from_params(cls, params, *, latent_dims: Sequence[int], n_outputs: int):
        if len(latent_dims) != 2 or len(set(latent_dims)) != 1:
            raise ConfigError(f"model.fusion='arm' needs two modalities of equal latent width (one "
                              f"classifier is shared by z_f and every z_m), got widths {list(latent_dims)}")
        return cls(latent_dim=latent_dims[0], n_classes=n_outputs)

    def __init__(self, *, latent_dim: int, n_classes: int):
        super().__init__()
        self.params = self.Params()
        self.fuse = nn.Linear(2 * latent_dim, latent_dim).requires_grad_(False)  # never trained (release)
        self.refuse = nn.Linear(2 * latent_dim, latent_dim)
        self.classifier = nn.Linear(latent_dim, n_classes)   # shared by z_f, z_1, z_2 and the re-fusion
        self.register_buffer("modality_contributions", torch.ones(2))  # C_1, C_2

    def fuse_latents(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        """z_f = fuse([z_1; z_2]), the fused feature ARM's estimates compare each z_m with."""
        return self.fuse(torch.cat([z1, z2], dim=1))

    def set_contributions(self, values) -> None:
        """C_1, C_2 for the following forward passes (detached numbers, as the release's)."""
        self.modality_contributions.copy_(torch.tensor(values))

    def scales(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(C_2/C_1, C_1/C_2): each modality is scaled by the other's contribution over its own."""
        c1, c2 = self.modality_contributions.clamp(min=FLOOR)
        return c2 / c1, c1 / c2

    def logits_and_shares(self, latents, unimodal_logits):
        return self(latents), None   # the re-fusion mixes the modalities: no per-modality shares

    def forward(self, latents):
        z1, z2 = latents
        s1, s2 = self.scales()
        return self.classifier(self.refuse(torch.cat([s1 * z1, s2 * z2], dim=1)))
