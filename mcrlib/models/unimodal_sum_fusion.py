"""A fusion head that is the scaled sum of the unimodal heads' logits (ReconBoost's ensemble)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from mcrlib.config import check
from mcrlib.models.fusion_head import FusionHead


class UnimodalSumFusion(FusionHead):
    """h = rate * sum_m u_m, where u_m are the model's unimodal heads' logits: the prediction of
    an ensemble of per-modality learners (ReconBoost's `boost_rate`). No parameters of its own.
    `model.fusion: unimodal_sum`, `model.fusion_params: {rate: r}`."""

    name = "unimodal_sum"

    @dataclass(frozen=True)
    class Params:
        rate: float = 1.0   # the ensemble's rate (ReconBoost's boost_rate)

        def __post_init__(self):
            check(self.rate > 0, "model.fusion_params.rate", self.rate, "a rate > 0")

    @classmethod
    def from_params(cls, params, *, latent_dims, n_outputs):
        return cls(rate=params.rate)

    def __init__(self, *, rate: float = 1.0):
        super().__init__()
        self.params = self.Params(rate=rate)
        self.rate = rate

    def logits_and_shares(self, latents, unimodal_logits):
        # Each learner's scaled logits are its share, but a method that reads shares (OGM, AGM)
        # modulates a fused head's branches, which this head has none of: it declares none.
        return self(unimodal_logits), None

    def forward(self, unimodal_logits: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.rate * torch.stack(list(unimodal_logits)).sum(0)
