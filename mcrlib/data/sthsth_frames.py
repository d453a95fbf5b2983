"""Frames of Something-Something V2 as packed in HDF5 by Radevski et al. (multimodal
distillation): reading, frame sampling and the evaluation transform, one video at a time.

HDF5 schema (both files, `dataset.hdf5` for RGB and `flow_dataset.hdf5` for optical flow rendered
as RGB JPEGs): the key is the video id; under it either
- a 1-D dataset whose n-th element holds the JPEG bytes of frame n (the multimodal-distillation
  layout: `resource[video_id][indices]` then `Image.open(BytesIO(element))`; elements may be
  fixed-length bytes, variable-length bytes or variable-length uint8 arrays), or
- a group with one scalar bytes dataset per frame, named after the frame file (the older STLT
  `pil2hdf5.py` layout), ordered by natural sort of the names.
"""
from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass

import h5py
import numpy as np
import torch
from PIL import Image
from torchvision.transforms import functional as TF


def sample_indices(length: int, num_frames: int) -> list[int]:
    """The release's frame sampler at evaluation (`GeneralSampler.get_seq_frames` with
    FRAME_UNIFORM, one clip): `num_frames` segments over [0, length-1], the middle of each.
    A video shorter than `num_frames` gets repeated indices."""
    seg = (length - 1) / num_frames
    return [(round(seg * i) + round(seg * (i + 1))) // 2 for i in range(num_frames)]


def _natural_key(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _as_bytes(element) -> bytes:
    if isinstance(element, bytes):                 # also np.bytes_
        return bytes(element)
    if isinstance(element, (np.ndarray, np.void)):  # vlen uint8 rows, opaque or 0-d bytes
        return element.tobytes()
    raise TypeError(f"a frame stored as {type(element).__name__}, expected JPEG bytes")


class VideoFrames:
    """The frames of one video in one HDF5 file: `len()` and `read(indices) -> [bytes]`."""

    def __init__(self, node):
        self.node = node
        self.names = sorted(node.keys(), key=_natural_key) if isinstance(node, h5py.Group) else None

    def __len__(self):
        return len(self.names) if self.names is not None else len(self.node)

    def read(self, indices: list[int]) -> dict[int, bytes]:
        unique = sorted(set(indices))   # h5py fancy indexing wants increasing indices
        if self.names is not None:
            return {i: _as_bytes(self.node[self.names[i]][()]) for i in unique}
        return {i: _as_bytes(e) for i, e in zip(unique, self.node[unique])}


def decode_frame(data: bytes, image_size: int) -> torch.Tensor:
    """JPEG bytes -> (3, S, S) uint8: the release's evaluation transform (PIL bilinear resize of
    the short side to S, then centre crop S x S). Raises on unreadable or truncated data."""
    with Image.open(io.BytesIO(data)) as img:
        img = img.convert("RGB")    # decodes now: a truncated/corrupt JPEG raises here
    img = TF.center_crop(TF.resize(img, image_size), image_size)
    return TF.pil_to_tensor(img)


@dataclass
class Clip:
    """One video's result: tensors, or `reason` why it was skipped."""
    index: int
    rgb: torch.Tensor | None = None
    flow: torch.Tensor | None = None
    rgb_frames: int = 0
    flow_frames: int = 0
    reason: str = ""


class ClipReader(torch.utils.data.Dataset):
    """Decodes the sampled frames of listed videos from both HDF5 files (opened lazily, so each
    DataLoader worker has its own handles). Indices are sampled from the FLOW length and used for
    both modalities, as the release does (flow has one frame fewer than RGB)."""

    def __init__(self, ids: list[str], rgb_path: str, flow_path: str, num_frames: int,
                 image_size: int):
        self.ids, self.paths = ids, {"rgb": rgb_path, "flow": flow_path}
        self.num_frames, self.image_size = num_frames, image_size
        self.files = None

    def __len__(self):
        return len(self.ids)

    def close(self):
        if self.files:
            for f in self.files.values():
                f.close()
        self.files = None

    def __getitem__(self, i: int) -> Clip:
        if self.files is None:
            self.files = {m: h5py.File(p, "r") for m, p in self.paths.items()}
        vid, clip = self.ids[i], Clip(index=i)
        videos = {}
        for m, path in self.paths.items():
            if vid not in self.files[m]:
                clip.reason = f"missing from {os.path.basename(path)} ({m})"
                return clip
            videos[m] = VideoFrames(self.files[m][vid])
        clip.rgb_frames, clip.flow_frames = len(videos["rgb"]), len(videos["flow"])
        if clip.flow_frames == 0:
            clip.reason = "no flow frames"
            return clip
        indices = sample_indices(clip.flow_frames, self.num_frames)
        if max(indices) >= clip.rgb_frames:
            clip.reason = f"RGB has {clip.rgb_frames} frames, flow {clip.flow_frames}: " \
                          f"sampled frame {max(indices)} is missing from RGB"
            return clip
        for m, video in videos.items():
            try:
                raw = video.read(indices)
            except (OSError, TypeError, KeyError) as err:
                clip.reason = f"{m}: unreadable HDF5 entry ({err})"
                return clip
            decoded = {}
            for j, data in raw.items():
                try:
                    decoded[j] = decode_frame(data, self.image_size)
                except Exception as err:  # PIL raises several types for bad data
                    why = re.sub(r" <[^>]* at 0x[0-9a-f]+>", "", str(err))  # no object address
                    clip.reason = f"{m}: corrupt JPEG at frame {j} ({type(err).__name__}: {why})"
                    return clip
            setattr(clip, m, torch.stack([decoded[j] for j in indices]))
        return clip


def keep_as_is(clip: Clip) -> Clip:
    """DataLoader collate function: results pass through unchanged (picklable for workers)."""
    return clip
