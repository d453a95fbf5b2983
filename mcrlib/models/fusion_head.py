"""The fusion-head interface: what a model and a method may ask of any fusion head.

A head is a plug-in: `model.fusion` names it and `model.fusion_params` holds its own params
(validated against its `Params` by mcrlib.models.fusion_params, under the key path
`model.fusion_params`), so neither the run config nor the Method interface names a field of a
particular head, and a saved model rebuilds from its run's config alone. The registry of heads
by name is mcrlib.models.FUSION_HEADS.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn


class FusionHead(nn.Module, abc.ABC):
    """The fused logits from the modalities' latents (or their unimodal heads' logits).

    MultimodalModel calls `logits_and_shares` and nothing else. A method reads a head only
    through what this class declares (`params`, `additive`, `logits_and_shares`), what the
    additive head adds (mcrlib.models.fusion.LateLinearFusion: `contributions`, `combine`,
    `bias`, `branch_weights`), or, for a method that brings its own head (ARM), that head's
    own public methods."""

    name = "base"   # the `model.fusion` value that selects it (mcrlib.models.FUSION_HEADS)
    # True: the logits are a sum of per-modality shares plus a bias, `logits_and_shares` returns
    # the shares (LateLinearFusion and its subclasses); gradient-modulation methods need this.
    additive = False

    @dataclass(frozen=True)
    class Params:
        """The head's own params (`model.fusion_params`)."""

    params: "FusionHead.Params"

    @classmethod
    @abc.abstractmethod
    def from_params(cls, params, *, latent_dims: Sequence[int], n_outputs: int) -> "FusionHead":
        """The head for encoders of these latent widths (the one constructor the model uses)."""
        raise NotImplementedError

    @abc.abstractmethod
    def logits_and_shares(self, latents: Sequence[torch.Tensor], unimodal_logits: Sequence[torch.Tensor]
             ) -> tuple[torch.Tensor, list[torch.Tensor] | None]:
        """(fused logits, each modality's share of them or None), both in the model's modality
        order. The shares sum to the logits; a head that mixes the modalities returns None."""
        raise NotImplementedError
