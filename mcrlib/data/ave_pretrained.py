"""AVE for the pretrained-encoder family (paper A.3: HuBERT for audio, ViViT for video, each
followed by a Conformer): the same videos, lists and event segments as `mcrlib.data.ave`, prepared
into their own folder with the inputs those encoders read.

- audio: the raw 16 kHz waveform of the event segment, tiled to 10 s and clipped to [-1, 1] as on
  the ResNet route, without the spectrogram -> (160000,) float32. `load` z-scores it with the
  train split's mean and std, as the release's CREMA-D waveform route does (its `wav_norm_*`
  statistics; the release's AVE HuBERT loader is not public, so this is our choice there).
- frames: 10 one-fps frames inside the event (the release's ViViT input: "10 frames"),
  224 x 224 uint8, selected as in `mcrlib.data.ave`.

    python -m mcrlib.data.prepare ave_pretrained     # the DVC stage prepare@ave_pretrained

Everything else (the lists, duplicates, missing and corrupt videos, the data report) is
`mcrlib.data.ave`'s; this module only changes the defaults of its settings.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mcrlib.data import ave, media
from mcrlib.data.spec import DatasetSpec, location
from mcrlib.data.tensors import TensorSplits


@dataclass(frozen=True)
class PrepareConfig(ave.PrepareConfig):
    """`mcrlib.data.ave.PrepareConfig` with the pretrained family's inputs (params.yaml:
    data.ave_pretrained)."""
    num_frames: int = 10
    audio: Literal["spectrogram", "waveform"] = "waveform"


@dataclass(frozen=True)
class LoadConfig:
    prepared: str = location("data/processed/ave_pretrained")


def prepare(cfg: PrepareConfig, out_dir, *, progress: bool = True):
    return ave.prepare(cfg, out_dir, progress=progress, dataset="ave_pretrained")


def load(cfg: LoadConfig) -> TensorSplits:
    """The prepared splits with the audio z-scored by the train split's scalar mean and std:
    "audio" (N, 160000) float32, "visual" (N, 10, 3, 224, 224) uint8 (default settings)."""
    data = media.load_cache(cfg.prepared, "ave_pretrained")
    train = data.splits["train"]["audio"]
    mean, std = train.mean(), train.std().clamp_min(1e-8)
    for split in data.splits.values():
        split["audio"] = (split["audio"] - mean) / std
    return data


SPEC = DatasetSpec(name="ave_pretrained", load_config=LoadConfig, load=load, prepare_config=PrepareConfig,
                   prepare=prepare, encoders={"audio": "waveform", "visual": "frames"},
                   root_env=ave.ROOT_ENV, source=ave.SOURCE)
