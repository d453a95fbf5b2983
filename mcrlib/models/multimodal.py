"""MultimodalModel: one encoder and one unimodal head per modality, and a fusion head."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import nn

from mcrlib.models.fusion import LateLinearFusion


@dataclass
class ModelOutput:
    logits: torch.Tensor                   # fused logits h (B, C)
    latents: dict[str, torch.Tensor]       # pooled feature z_m per modality (B, d)
    unimodal_logits: dict[str, torch.Tensor]  # u_m from each modality's own head (B, C)


class MultimodalModel(nn.Module):
    """forward(batch) -> ModelOutput. The unimodal heads see the *non-detached* latents, so a
    unimodal loss also trains its encoder (MCR's lambda_uni term, the multi-loss baseline)."""

    def __init__(self, *, encoders: Mapping[str, nn.Module], n_classes: int, fusion: nn.Module | None = None):
        super().__init__()
        self.modalities = tuple(encoders)
        self.encoders = nn.ModuleDict(encoders)
        dims = [enc.out_dim for enc in encoders.values()]
        self.unimodal_heads = nn.ModuleDict(
            {m: nn.Linear(d, n_classes) for m, d in zip(self.modalities, dims)})
        self.fusion = fusion or LateLinearFusion(latent_dims=dims, n_classes=n_classes)
        self.n_classes = n_classes

    def encode(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {m: self.encoders[m](batch[m]) for m in self.modalities}

    def head(self, latents: Mapping[str, torch.Tensor]) -> ModelOutput:
        z = [latents[m] for m in self.modalities]
        return ModelOutput(logits=self.fusion(z), latents=dict(latents),
                           unimodal_logits={m: self.unimodal_heads[m](latents[m]) for m in self.modalities})

    def forward(self, batch: Mapping[str, torch.Tensor]) -> ModelOutput:
        return self.head(self.encode(batch))
