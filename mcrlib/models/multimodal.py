"""MultimodalModel: one encoder and one unimodal head per modality, and a fusion head."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import torch
from torch import nn

from mcrlib.models.fusion import LateLinearFusion
from mcrlib.models.fusion_head import FusionHead


@dataclass
class ModelOutput:
    logits: torch.Tensor                   # fused logits h (B, C)
    latents: dict[str, torch.Tensor]       # pooled feature z_m per modality (B, d)
    unimodal_logits: dict[str, torch.Tensor]  # u_m from each modality's own head (B, C)
    # Each modality's share of the fused logits, W_m z_m + b/M (they sum to `logits`), from an
    # additive fusion head (late linear, cosine); None for a head that mixes the modalities (ARM)
    # or sums the unimodal heads (ReconBoost's). OGM, MSLR and MMCosine read it instead of the
    # head's internals (AGM reads the head's weight gradients, through `branch_weights`).
    contributions: dict[str, torch.Tensor] | None = None


class MultimodalModel(nn.Module):
    """forward(batch) -> ModelOutput. The unimodal heads see the *non-detached* latents, so a
    unimodal loss also trains its encoder (MCR's lambda_uni term, the multi-loss baseline)."""

    def __init__(self, *, encoders: Mapping[str, nn.Module], n_classes: int,
                 fusion: FusionHead | Callable[[list[int], int], FusionHead] | None = None):
        super().__init__()
        self.modalities = tuple(encoders)
        self.encoders = nn.ModuleDict(encoders)
        dims = [enc.out_dim for enc in encoders.values()]
        self.unimodal_heads = nn.ModuleDict(
            {m: nn.Linear(d, n_classes) for m, d in zip(self.modalities, dims)})
        # A factory (latent widths, classes) -> head is called here, after the unimodal heads, so
        # every head draws its initial weights at the same point of the random stream.
        if fusion is None:
            fusion = LateLinearFusion(latent_dims=dims, n_classes=n_classes)
        elif not isinstance(fusion, nn.Module):
            fusion = fusion(dims, n_classes)
        self.fusion = fusion
        self.n_classes = n_classes

    def encode(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {m: self.encoders[m](batch[m]) for m in self.modalities}

    def head(self, latents: Mapping[str, torch.Tensor]) -> ModelOutput:
        z = [latents[m] for m in self.modalities]
        unimodal = {m: self.unimodal_heads[m](latents[m]) for m in self.modalities}
        logits, shares = self.fusion.logits_and_shares(z, [unimodal[m] for m in self.modalities])
        contributions = None if shares is None else dict(zip(self.modalities, shares))
        return ModelOutput(logits=logits, latents=dict(latents), unimodal_logits=unimodal,
                           contributions=contributions)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> ModelOutput:
        return self.head(self.encode(batch))
