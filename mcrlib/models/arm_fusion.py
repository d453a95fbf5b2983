"""ARM's fusion head (Gao et al., AAAI 2025): asymmetric re-fusion of two modalities."""
from __future__ import annotations

import torch
from torch import nn

FLOOR = 1e-6   # contributions are floored: a zero would divide by zero (the release has no guard)


class ARMFusion(nn.Module):
    """z_f = fuse([z_1; z_2]); logits = classifier(refuse([(C_2/C_1) z_1; (C_1/C_2) z_2])).
    The contributions C_m live in a buffer (checkpointed) that the ARM method sets each training
    step from its estimates (mcrlib.methods.arm); evaluation uses the last ones."""

    linear = False

    def __init__(self, *, latent_dim: int, n_classes: int):
        super().__init__()
        self.fuse = nn.Linear(2 * latent_dim, latent_dim).requires_grad_(False)  # never trained (release)
        self.refuse = nn.Linear(2 * latent_dim, latent_dim)
        self.classifier = nn.Linear(latent_dim, n_classes)   # shared by z_f, z_1, z_2 and the re-fusion
        self.register_buffer("modality_contributions", torch.ones(2))  # C_1, C_2

    def scales(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(C_2/C_1, C_1/C_2): each modality is scaled by the other's contribution over its own."""
        c1, c2 = self.modality_contributions.clamp(min=FLOOR)
        return c2 / c1, c1 / c2

    def forward(self, latents):
        z1, z2 = latents
        s1, s2 = self.scales()
        return self.classifier(self.refuse(torch.cat([s1 * z1, s2 * z2], dim=1)))
