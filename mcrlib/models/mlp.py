"""Small MLP encoder for vector inputs (the synthetic study)."""
from __future__ import annotations

from torch import nn


class MLPEncoder(nn.Sequential):
    """in_dim -> [Linear -> ReLU -> Dropout] x layers -> Linear -> latent_dim."""

    def __init__(self, *, in_dim: int, hidden_dim: int, latent_dim: int, layers: int = 2,
                 dropout: float = 0.0):
        blocks, width = [], in_dim
        for _ in range(layers):
            blocks += [nn.Linear(width, hidden_dim), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden_dim
        super().__init__(*blocks, nn.Linear(width, latent_dim))
        self.out_dim = latent_dim
