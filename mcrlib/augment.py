"""Training-time augmentation of video frames (paper A.2, the release's ResNet loaders):
RandomResizedCrop back to the stored frame size, then a horizontal flip with probability 1/2.

Applied by the Trainer to training batches only, on the batch's device, to every frame-stack
modality (B, T, C, H, W). One crop box and one flip are drawn per sample and shared by all its
frames and all its frame modalities (Sth-Sth's RGB and flow stay aligned), with torch's global
generator, so a resumed run draws what an uninterrupted one would. Deviation: the release crops
CREMA-D's frames independently and from the original resolution; here frames are cropped as a
clip, from the cached 224 x 224 frames.
"""
from __future__ import annotations

import math

import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

SCALE = (0.08, 1.0)          # torchvision's RandomResizedCrop defaults, as the release
RATIO = (3 / 4, 4 / 3)


def frame_modalities(batch: dict[str, torch.Tensor], modalities) -> list[str]:
    return [m for m in modalities if batch[m].dim() == 5]


def augment_frames(batch: dict[str, torch.Tensor], modalities, scale=SCALE, ratio=RATIO) -> dict[str, torch.Tensor]:
    """A copy of `batch` whose frame-stack modalities are cropped and flipped per sample."""
    frames = frame_modalities(batch, modalities)
    if not frames:
        return batch
    out = dict(batch)
    reference = batch[frames[0]]
    height, width = reference.shape[-2:]
    clips = {m: [] for m in frames}
    for i in range(reference.shape[0]):
        top, left, h, w = v2.RandomResizedCrop.get_params(reference[i], list(scale), list(ratio))
        flip = bool(torch.rand(()) < 0.5)
        for m in frames:
            clip = batch[m][i]
            sy, sx = clip.shape[-2] / height, clip.shape[-1] / width   # the same box, relatively
            box = (math.floor(top * sy), math.floor(left * sx), max(1, round(h * sy)), max(1, round(w * sx)))
            clip = F.resized_crop(clip, *box, size=list(clip.shape[-2:]), antialias=True)
            clips[m].append(F.horizontal_flip(clip) if flip else clip)
    out.update({m: torch.stack(c) for m, c in clips.items()})
    return out
