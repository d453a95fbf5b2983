"""MMCosine's fusion head (Xu et al., ICASSP 2023): cosine logits, no bias."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from mcrlib.models.fusion import LateLinearFusion


class CosineFusion(LateLinearFusion):
    """h(z_1..z_M) = sum_m s * cos(z_m, w_{m,k}). LateLinearFusion's branches, `combine` and
    interface (so sliced unimodal logits and per-branch detaching keep working), with cosine
    contributions and no bias. `model.fusion: cosine`, `model.cosine_scale: s`."""

    def __init__(self, *, latent_dims: Sequence[int], n_classes: int, scale: float = 10.0):
        super().__init__(latent_dims=latent_dims, n_classes=n_classes)
        self.scale = scale
        # MMCosine has no bias; a zero buffer (not trained, not saved) keeps `fusion.bias / M` valid.
        del self.bias
        self.register_buffer("bias", torch.zeros(n_classes), persistent=False)

    def contributions(self, latents: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """s * cos(z_m, w_{m,k}) for every modality m: each row of W_m is one class's weight."""
        return [self.scale * F.linear(F.normalize(z, dim=1), F.normalize(branch.weight, dim=1))
                for branch, z in zip(self.branches, latents)]
