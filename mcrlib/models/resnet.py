"""ResNet-18 encoders from torchvision, for spectrograms, images and video frames.

`width=64` is torchvision's ResNet-18 itself (its first conv adapted to the input channels, the
classifier removed). Other widths keep the ResNet-18 topology (torchvision BasicBlocks, [2, 2, 2, 2],
widths w, 2w, 4w, 8w) at a fraction of the cost, for CPU profiles. Inputs smaller than 32 pixels
get the CIFAR stem (3x3 conv, stride 1, no max-pool) so an 8x8 image is not reduced to one pixel
before the first block.
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet18
from torchvision.models.resnet import BasicBlock, conv1x1


def _stage(inplanes: int, planes: int, stride: int) -> nn.Sequential:
    down = None
    if stride != 1 or inplanes != planes:
        down = nn.Sequential(conv1x1(inplanes, planes, stride), nn.BatchNorm2d(planes))
    return nn.Sequential(BasicBlock(inplanes, planes, stride, down), BasicBlock(planes, planes))


def resnet18_trunk(*, in_channels: int, width: int = 64, small_input: bool = False) -> nn.Sequential:
    """ResNet-18 up to global average pooling: (B, C, H, W) -> (B, 8 * width)."""
    if width == 64 and not small_input:
        net = resnet18(weights=None)
        net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        net.fc = nn.Identity()
        return nn.Sequential(net)
    if small_input:
        stem = [nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
    else:
        stem = [nn.Conv2d(in_channels, width, 7, 2, 3, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True),
                nn.MaxPool2d(3, 2, 1)]
    stages = [_stage(width, width, 1), _stage(width, 2 * width, 2), _stage(2 * width, 4 * width, 2),
              _stage(4 * width, 8 * width, 2)]
    trunk = nn.Sequential(*stem, *stages, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    for m in trunk.modules():  # torchvision's initialisation
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    return trunk


# Below this base width the trunk keeps the plain (contiguous) memory format. Two reasons, both
# measured (docs/cpu-heap-corruption.md): on CPU, channels-last is slower there (a joint AV-Digits
# step takes 0.57x the time in the plain format at width 2, 0.74x at width 4, but 1.26x at width 8),
# and the backward pass of the channels-last trunk at widths 2 and 4 corrupted the heap with torch
# 2.11 on one CPU (free(): invalid next size, segfaults). No configuration reaches that path.
CHANNELS_LAST_MIN_WIDTH = 8


class ImageEncoder(nn.Module):
    """Spectrograms or images (B, C, H, W) -> pooled feature (B, 8 * width)."""

    def __init__(self, *, in_channels: int, width: int = 64, small_input: bool = False):
        super().__init__()
        # channels-last: oneDNN's (and cuDNN's) fast layout for convolutions, ~25% faster steps on
        # CPU at width 8; the plain format below CHANNELS_LAST_MIN_WIDTH (see there).
        self.memory_format = torch.channels_last if width >= CHANNELS_LAST_MIN_WIDTH else torch.contiguous_format
        self.trunk = resnet18_trunk(in_channels=in_channels, width=width,
                                    small_input=small_input).to(memory_format=self.memory_format)
        self.out_dim = 8 * width

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x.float().contiguous(memory_format=self.memory_format))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class FramesEncoder(ImageEncoder):
    """Video frames (B, T, C, H, W): frames folded into the batch, features averaged over time
    (and space, by the trunk's pooling), as the paper's visual ResNet-18. uint8 frames are scaled
    to [0, 1] and normalised with ImageNet statistics here, so cached frames stay compact."""

    def __init__(self, *, in_channels: int = 3, width: int = 64, small_input: bool = False):
        super().__init__(in_channels=in_channels, width=width, small_input=small_input)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406][:in_channels]).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225][:in_channels]).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t = x.shape[:2]
        frames = x.flatten(0, 1)
        if frames.dtype == torch.uint8:
            frames = frames.float() / 255
        features = self.features((frames - self.mean) / self.std)
        return features.view(b, t, -1).mean(1)
