"""Sequence encoder of the MOSI / MOSEI runs: MultiBench's `Transformer` (unimodals/common_models).

A bias-free 1x1 convolution projects each time step's features to d_model, a stack of PyTorch's
post-norm `nn.TransformerEncoderLayer`s (ReLU, sequence-first) encodes the sequence, and the
output at the LAST time step is the pooled feature. As in MultiBench there is no positional
encoding and no padding mask: end-padded steps are ordinary (zero) tokens, and the last step of
a padded sequence is a padding token that attends to the whole sequence.

Submodules are named `conv` and `transformer` as in MultiBench, so the state dict of the
release's `FactorCL_Uni.enc` loads into this module unchanged.
"""
from __future__ import annotations

import torch
from torch import nn


class TransformerEncoder(nn.Module):
    """(B, T, in_dim) -> (B, d_model): the encoder's output at time step T-1."""

    def __init__(self, *, in_dim: int, d_model: int = 40, n_heads: int = 5, n_layers: int = 5,
                 ff_dim: int = 2048, dropout: float = 0.1):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        self.conv = nn.Conv1d(in_dim, d_model, kernel_size=1, padding=0, bias=False)
        layer = nn.TransformerEncoderLayer(d_model=d_model, nhead=n_heads, dim_feedforward=ff_dim,
                                           dropout=dropout)
        # No padding mask is ever passed, so nested tensors would never be used; disabling them
        # only silences PyTorch's warning about sequence-first layers.
        self.transformer = nn.TransformerEncoder(layer, num_layers=n_layers, enable_nested_tensor=False)
        self.out_dim = d_model

    def sequence(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder outputs of every time step, (T, B, d_model) (sequence-first)."""
        h = self.conv(x.transpose(1, 2))          # (B, d, T)
        return self.transformer(h.permute(2, 0, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sequence(x)[-1]
