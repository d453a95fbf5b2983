"""Conformer head of the pretrained-encoder ("Conformer") family (paper appendix A.3).

(B, T, in_dim) -> a 1x1 convolution to a `bottleneck` of 50 channels -> a linear projection to
d_model -> torchaudio's `Conformer` -> the mean over (valid) time steps, (B, d_model). The
release puts this head on every pretrained backbone's hidden states (wav2vec 2.0, HuBERT, ViViT:
see `speech_encoder.py` and `vivit_encoder.py`), and uses it directly as the encoder of
precomputed feature sequences (CREMA-D's 1408-d face features per frame).

Defaults are the release's CREMA-D settings: bottleneck 50, d_model 512, 5 layers, 8 heads,
feed-forward width 4 x d_model, depthwise-convolution kernel 31, dropout 0.1; AVE uses
d_model 768. torchaudio's Conformer layers are its defaults otherwise: macaron feed-forward
halves, BatchNorm in the convolution module, convolution after self-attention.

Deviation: the release feeds the sequence to the Conformer time-first, (T, B, D), while the
Conformer expects batch-first (B, T, D), so its self-attention mixes the samples of a batch (and
its "time" axis is the batch). Here the Conformer gets (B, T, D): each sample attends over its own
time steps, and a sample's output in evaluation mode does not depend on the rest of the batch
(in training mode the convolution module's BatchNorm uses batch statistics, as in any BatchNorm
network).

`forward(x, lengths=None)`: `lengths` (B,) are the numbers of valid (leading) time steps, passed
to the Conformer as its padding mask and used for the mean; None means every step is valid.
"""
from __future__ import annotations

import torch
from torch import nn


class ConformerHead(nn.Module):
    """(B, T, in_dim) -> (B, d_model): a Conformer over a 1x1-conv bottleneck, mean-pooled."""

    def __init__(self, *, in_dim: int, bottleneck: int = 50, d_model: int = 512, n_layers: int = 5,
                 n_heads: int = 8, ffn_mult: int = 4, conv_kernel: int = 31, dropout: float = 0.1):
        super().__init__()
        from torchaudio.models import Conformer

        if d_model % n_heads:
            raise ValueError(f"d_model={d_model} is not divisible by n_heads={n_heads}")
        if conv_kernel % 2 == 0:
            raise ValueError(f"conv_kernel={conv_kernel} must be odd (the Conformer pads it to 'same')")
        self.conv = nn.Conv1d(in_dim, bottleneck, kernel_size=1)
        self.proj = nn.Linear(bottleneck, d_model)
        self.conformer = Conformer(input_dim=d_model, num_heads=n_heads, ffn_dim=ffn_mult * d_model,
                                   num_layers=n_layers, depthwise_conv_kernel_size=conv_kernel,
                                   dropout=dropout)
        self.in_dim = in_dim
        self.out_dim = d_model

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.in_dim:
            raise ValueError(f"ConformerHead takes (B, T, {self.in_dim}) sequences, got shape {tuple(x.shape)}")
        batch, steps = x.shape[:2]
        if lengths is None:
            lengths = torch.full((batch,), steps, dtype=torch.long, device=x.device)
        else:
            lengths = lengths.to(device=x.device, dtype=torch.long)
            if lengths.shape != (batch,) or bool((lengths < 1).any()) or bool((lengths > steps).any()):
                raise ValueError(f"lengths must be {batch} numbers of valid steps in [1, {steps}], "
                                 f"got {lengths.tolist()}")
            x = x[:, :int(lengths.max())]   # the Conformer's padding mask is as long as the longest sample
        h = self.proj(self.conv(x.transpose(1, 2)).transpose(1, 2))      # (B, T, d_model)
        h, _ = self.conformer(h, lengths)
        valid = (torch.arange(h.shape[1], device=x.device) < lengths[:, None]).to(h.dtype)   # (B, T)
        return (h * valid[..., None]).sum(1) / valid.sum(1, keepdim=True).clamp(min=1)
