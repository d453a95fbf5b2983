"""Smallest standalone reproduction of the CPU heap corruption reported with torch 2.11: the backward
pass of a channels-last ResNet-18 trunk (torchvision BasicBlocks) at base width 2 or 4, on CPU.

    python docs/repro_channels_last_heap.py channels_last 2    # the reported crash path
    python docs/repro_channels_last_heap.py plain 2            # the path mcrlib takes at width < 8

Needs only torch and torchvision; see docs/cpu-heap-corruption.md for what was seen where.
"""
import sys

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, conv1x1


def stage(inplanes: int, planes: int, stride: int) -> nn.Sequential:
    down = nn.Sequential(conv1x1(inplanes, planes, stride), nn.BatchNorm2d(planes)) if stride != 1 or inplanes != planes else None
    return nn.Sequential(BasicBlock(inplanes, planes, stride, down), BasicBlock(planes, planes))


def main(layout: str, width: int, steps: int = 5) -> None:
    fmt = {"channels_last": torch.channels_last, "plain": torch.contiguous_format}[layout]
    torch.set_num_threads(1)
    torch.manual_seed(0)
    w = width
    net = nn.Sequential(nn.Conv2d(1, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
                        stage(w, w, 1), stage(w, 2 * w, 2), stage(2 * w, 4 * w, 2), stage(4 * w, 8 * w, 2),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten()).to(memory_format=fmt)
    x = torch.randn(32, 1, 64, 33).contiguous(memory_format=fmt)    # an AV-Digits spectrogram batch
    for _ in range(steps):
        net(x).pow(2).mean().backward()
    print(f"ok: {layout} width {width}, {steps} backward passes, torch {torch.__version__}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
