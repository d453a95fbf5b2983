"""Video Swin Transformer encoder (Something-Something V2's family: the release's Video-Swin-T).

torchvision's `swin3d_t` topology (patch (2, 4, 4), embed 96, depths [2, 2, 6, 2], heads
[3, 6, 12, 24], window (8, 7, 7)) with its classifier removed: frames (B, T, C, H, W) ->
features averaged over (T, H, W), (B, 768). uint8 frames are scaled to [0, 1] and normalised
with ImageNet statistics in the model, as the release does. Weights are randomly initialised:
the release starts from Kinetics-400, which this machine cannot download (torchvision's
`Swin3D_T_Weights.KINETICS400_V1` where it can be).
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models.video.swin_transformer import SwinTransformer3d

SWIN3D_T = {"patch_size": [2, 4, 4], "embed_dim": 96, "depths": [2, 2, 6, 2], "num_heads": [3, 6, 12, 24],
            "window_size": [8, 7, 7], "stochastic_depth_prob": 0.2}   # the release's drop-path


class SwinVideoEncoder(nn.Module):
    def __init__(self, *, in_channels: int = 3, **overrides):
        super().__init__()
        settings = {**SWIN3D_T, **overrides}
        self.swin = SwinTransformer3d(**settings, num_classes=1)
        self.swin.head = nn.Identity()
        if in_channels != 3:
            embed = self.swin.patch_embed.proj
            self.swin.patch_embed.proj = nn.Conv3d(in_channels, embed.out_channels, embed.kernel_size, embed.stride)
        self.out_dim = settings["embed_dim"] * 2 ** (len(settings["depths"]) - 1)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406][:in_channels]).view(1, -1, 1, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225][:in_channels]).view(1, -1, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        clips = x.transpose(1, 2)      # (B, T, C, H, W) -> (B, C, T, H, W)
        if clips.dtype == torch.uint8:
            clips = clips.float() / 255
        return self.swin((clips.float() - self.mean) / self.std)
