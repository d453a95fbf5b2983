"""MMCosine's fusion head (Xu et al., ICASSP 2023): cosine logits, no bias."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from mcrlib.config import check
from mcrlib.models.fusion import LateLinearFusion


class CosineFusion(LateLinearFusion):
    """h(z_1..z_M) = sum_m s * cos(z_m, w_{m,k}). LateLinearFusion's branches, `combine` and
    interface (so sliced unimodal logits and per-branch detaching keep working), with cosine
    contributions and no bias. `model.fusion: cosine`, `model.fusion_params: {scale: s}`."""

    name = "cosine"

    @dataclass(frozen=True)
    class Params:
        scale: float = 10.0   # s, the cosine logits' scale (MMCosine's default)

        def __post_init__(self):
            check(self.scale > 0, "model.fusion_params.scale", self.scale, "a scale > 0")

    @classmethod
    def from_params(cls, params, *, latent_dims, n_outputs):
        return cls(latent_dims=latent_dims, n_classes=n_outputs, scale=params.scale)

    def __init__(self, *, latent_dims: Sequence[int], n_classes: int, scale: float = 10.0):
        super().__init__(latent_dims=latent_dims, n_classes=n_classes)
        self.params = self.Params(scale=scale)
        self.scale = scale
        # MMCosine has no bias; a zero buffer (not trained, not saved) keeps `fusion.bias / M` valid.
        del self.bias
        self.register_buffer("bias", torch.zeros(n_classes), persistent=False)

    def contributions(self, latents: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """s * cos(z_m, w_{m,k}) for every modality m: each row of W_m is one class's weight."""
        return [self.scale * F.linear(F.normalize(z, dim=1), F.normalize(branch.weight, dim=1))
                for branch, z in zip(self.branches, latents)]
