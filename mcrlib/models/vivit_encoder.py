"""Video encoder of the pretrained-encoder ("Conformer") family: ViViT + Conformer (AVE video).

Frames (B, T, C, H, W) -> `transformers`' `VivitModel` -> its last hidden states, the [CLS]
token and the T/t x H/p x W/p tubelet tokens, (B, N, hidden) -> `ConformerHead` (1x1-conv
bottleneck, Conformer, mean over tokens) -> (B, d_model). The release (paper appendix A.3):
`google/vivit-b-16x2-kinetics400` (hidden 768, tubelet 2x16x16, 32 frames of 224x224) on AVE's
10 frames, then a 5-layer Conformer with d_model 768 (`head`: the keyword arguments of
`ConformerHead`; pass d_model=768 for AVE). The whole backbone is fine-tuned.

Pixel normalisation is done in the module, with `VivitImageProcessor`'s defaults (transformers
5.24, models/vivit/image_processing_vivit.py): rescale by 1/127.5 with offset (x * 1/127.5 - 1,
so [0, 255] -> [-1, 1]), then normalise with IMAGENET_STANDARD_MEAN / _STD = 0.5 / 0.5, i.e.
[0, 255] -> [-3, 1]. uint8 frames are taken as [0, 255]; float frames as [0, 1] (scaled by 255
first), so a clip gives the same output either way. The processor's resize (shortest edge 256)
and centre crop (224) are the data loader's job: the frames come at their final size.

Frames or image size other than the checkpoint's (`num_frames`, `image_size` of its config):
give them to the constructor (`num_frames=`, `image_size=`), and the position embeddings of the
tubelet grid are resampled once, trilinearly over (time, height, width), the [CLS] position
kept; a clip of another size is then an error naming the configured sizes. transformers'
`interpolate_pos_encoding=True` is not used: the installed version (5.24) treats the positions
as one square 2-D grid and interpolates only height and width, so it fails for videos with more
than one temporal tubelet (the 32-frame checkpoint has 16), e.g. on AVE's 10 frames.

Deviations: the release feeds the tokens to the Conformer time-first although it expects
batch-first, so attention mixes the samples of a batch; here it gets (B, N, hidden) (see
`conformer_head.py`). ViViT's pooler (unused: the head pools) is dropped, so every parameter gets
a gradient.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from mcrlib.models.conformer_head import ConformerHead
from mcrlib.models.pretrained import load_backbone

# VivitImageProcessor's defaults (see the module docstring).
RESCALE_FACTOR = 1 / 127.5
OFFSET = 1.0
IMAGE_MEAN = (0.5, 0.5, 0.5)
IMAGE_STD = (0.5, 0.5, 0.5)


def _pair(size) -> tuple[int, int]:
    return (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))


class VideoConformerEncoder(nn.Module):
    """(B, T, C, H, W) frames, uint8 in [0, 255] or float in [0, 1] -> (B, d_model)."""

    def __init__(self, *, checkpoint: str | None = None, random_config: dict | None = None,
                 head: dict | None = None, num_frames: int | None = None,
                 image_size: int | tuple[int, int] | None = None):
        super().__init__()
        self.vivit = load_backbone("vivit", checkpoint=checkpoint, random_config=random_config)
        self.vivit.pooler = None
        config = self.vivit.config
        if num_frames is not None or image_size is not None:
            self._resample_positions(num_frames if num_frames is not None else config.num_frames,
                                     _pair(image_size if image_size is not None else config.image_size))
        channels = config.num_channels
        self.register_buffer("mean", torch.tensor(IMAGE_MEAN[:channels]).view(1, 1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGE_STD[:channels]).view(1, 1, -1, 1, 1), persistent=False)
        self.head = ConformerHead(in_dim=config.hidden_size, **(head or {}))
        self.out_dim = self.head.out_dim

    def _sizes(self) -> str:
        config = self.vivit.config
        return f"num_frames={config.num_frames}, image_size={config.image_size}"

    def _resample_positions(self, num_frames: int, image_size: tuple[int, int]):
        """Resample the tubelet grid's position embeddings to clips of num_frames x image_size."""
        config, embeddings = self.vivit.config, self.vivit.embeddings
        tubelet = [int(s) for s in config.tubelet_size]
        old = (config.num_frames // tubelet[0],) + tuple(s // p for s, p in zip(_pair(config.image_size), tubelet[1:]))
        sizes = (num_frames,) + image_size
        if any(s % p or s < p for s, p in zip(sizes, tubelet)):
            raise ValueError(f"ViViT clips of {num_frames} frames of {image_size[0]}x{image_size[1]} do not "
                             f"divide into tubelets of {tubelet} (time, height, width); the checkpoint "
                             f"was trained on {self._sizes()}")
        new = tuple(s // p for s, p in zip(sizes, tubelet))
        if new == old:
            return
        positions = embeddings.position_embeddings.data          # (1, 1 + T'H'W', D)
        grid = positions[:, 1:].reshape(1, *old, -1).permute(0, 4, 1, 2, 3)
        grid = F.interpolate(grid, size=new, mode="trilinear", align_corners=False)
        resampled = torch.cat([positions[:, :1], grid.permute(0, 2, 3, 4, 1).reshape(1, -1, positions.shape[-1])], 1)
        embeddings.position_embeddings = nn.Parameter(resampled.contiguous())
        config.num_frames = num_frames
        config.image_size = image_size[0] if image_size[0] == image_size[1] else list(image_size)
        embeddings.patch_embeddings.num_patches = new[0] * new[1] * new[2]
        embeddings.patch_embeddings.image_size = image_size
        embeddings.image_size = image_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        config = self.vivit.config
        if x.dim() != 5 or x.shape[2] != config.num_channels:
            raise ValueError(f"VideoConformerEncoder takes frames (B, T, {config.num_channels}, H, W), "
                             f"got shape {tuple(x.shape)}")
        if (x.shape[1], *x.shape[3:]) != (config.num_frames, *_pair(config.image_size)):
            raise ValueError(f"ViViT clip of {x.shape[1]} frames of {x.shape[3]}x{x.shape[4]}, but the model "
                             f"takes {self._sizes()}: build the encoder with num_frames= and image_size= "
                             f"of the clips to resample its position embeddings")
        tokens = self.vivit(pixel_values=self.pixel_values(x)).last_hidden_state   # (B, 1 + T'H'W', hidden)
        return self.head(tokens)

    def pixel_values(self, x: torch.Tensor) -> torch.Tensor:
        """Frames (uint8 in [0, 255] or float in [0, 1]) normalised as VivitImageProcessor does."""
        frames = x.float() if x.dtype == torch.uint8 else x.float() * 255
        return (frames * RESCALE_FACTOR - OFFSET - self.mean) / self.std
