"""Models built from configs."""
from __future__ import annotations

import inspect

import torch

from mcrlib.config import ENCODER_KINDS, ConfigError, ModelConfig, from_dict
from mcrlib.models.arm_fusion import ARMFusion
from mcrlib.models.cosine_fusion import CosineFusion
from mcrlib.models.unimodal_sum_fusion import UnimodalSumFusion
from mcrlib.data.tensors import TensorSplits
from mcrlib.models.fusion import LateLinearFusion
from mcrlib.models.fusion_head import FusionHead
from mcrlib.models.conformer_head import ConformerHead
from mcrlib.models.mlp import MLPEncoder
from mcrlib.models.resnet import FramesEncoder, ImageEncoder
from mcrlib.models.speech_encoder import SpeechConformerEncoder
from mcrlib.models.swin import SwinVideoEncoder
from mcrlib.models.transformer import TransformerEncoder
from mcrlib.models.multimodal import ModelOutput, MultimodalModel
from mcrlib.models.vivit_encoder import VideoConformerEncoder


# The family of a modality's samples by tensor rank: only for TensorSplits made by hand (tests,
# benchmarks); a dataset declares its families in its spec.
_FAMILY_BY_RANK = {1: "mlp", 2: "sequence", 3: "resnet2d", 4: "frames"}
# The pretrained-encoder family (paper A.3): model.encoders' kinds. transformers is imported by
# these classes only when one is built, so a run without them never pays its import.
_ENCODER_CLASSES = {"speech_conformer": SpeechConformerEncoder, "video_conformer": VideoConformerEncoder,
                    "conformer": ConformerHead}


def _configured_encoder(spec: dict, sample: torch.Tensor, name: str):
    """model.encoders[name]: {kind, ...arguments}; a Conformer over features reads its width."""
    kind, args = spec["kind"], {k: v for k, v in spec.items() if k != "kind"}
    if sample.dim() != ENCODER_KINDS[kind]:
        raise ConfigError(f"model.encoders.{name}: kind {kind!r} reads samples of rank {ENCODER_KINDS[kind]}, "
                          f"but modality {name!r} has samples of shape {tuple(sample.shape)}")
    cls = _ENCODER_CLASSES[kind]
    if kind == "conformer":
        args = {"in_dim": sample.shape[-1], **args}
    allowed = [p for p in inspect.signature(cls).parameters if p != "self"]
    unknown = sorted(set(args) - set(allowed))
    if unknown:
        raise ConfigError(f"model.encoders.{name}: unknown arguments {unknown} for kind {kind!r}; "
                          f"allowed: {allowed}")
    return cls(**args)


def build_encoder(cfg: ModelConfig, sample: torch.Tensor, name: str, family: str | None = None):
    """The encoder of one modality: model.encoders' entry for it, else its declared family's
    default, with sizes read from one sample."""
    if name in cfg.encoders:
        return _configured_encoder(cfg.encoders[name], sample, name)
    family = family or _FAMILY_BY_RANK.get(sample.dim())
    if family == "waveform":
        raise ConfigError(f"modality {name!r} holds raw waveforms (family 'waveform'), which only the "
                          "pretrained family encodes: set model.encoders."
                          f"{name} = {{kind: speech_conformer, backbone: wav2vec2 or hubert, checkpoint: "
                          "<hub id or local folder>}")
    expected = {"mlp": 1, "sequence": 2, "resnet2d": 3, "frames": 4}
    if family not in expected:
        raise ValueError(f"modality {name!r}: no encoder family {family!r} (samples of shape "
                         f"{tuple(sample.shape)}); expected one of {sorted(expected)}")
    if sample.dim() != expected[family]:
        raise ValueError(f"modality {name!r}: encoder family {family!r} takes samples of rank "
                         f"{expected[family]}, got shape {tuple(sample.shape)}")
    if family == "mlp":
        return MLPEncoder(in_dim=sample.shape[0], hidden_dim=cfg.hidden_dim, latent_dim=cfg.latent_dim,
                          layers=cfg.layers, dropout=cfg.dropout)
    if family == "sequence":   # (T, D): feature sequence (CMU-MOSI/MOSEI)
        return TransformerEncoder(in_dim=sample.shape[1])
    if family == "resnet2d":   # (C, H, W): spectrogram or image
        return ImageEncoder(in_channels=sample.shape[0], width=cfg.resnet_width, small_input=min(sample.shape[1:]) < 32)
    if cfg.video_encoder == "swin3d_t":   # (T, C, H, W): video frames
        return SwinVideoEncoder(in_channels=sample.shape[1])
    return FramesEncoder(in_channels=sample.shape[1], width=cfg.resnet_width, small_input=min(sample.shape[2:]) < 32)


def build_model(cfg: ModelConfig, data: TensorSplits, modalities=None) -> MultimodalModel:
    """One encoder per modality of `data` (all, or the given subset)."""
    modalities = tuple(modalities or data.modalities)
    train = data.splits["train"]
    encoders = {m: build_encoder(cfg, train[m][0], m, data.encoders.get(m)) for m in modalities}
    n_outputs = 1 if data.task == "regression" else data.n_classes
    return MultimodalModel(encoders=encoders, n_classes=n_outputs,
                           fusion=lambda dims, n: build_fusion(cfg, dims, n))


# The fusion heads by `model.fusion` name: each a FusionHead with its own Params
# (`model.fusion_params`), so a new head is one class and one entry here.
FUSION_HEADS: dict[str, type[FusionHead]] = {cls.name: cls for cls in
                                              (LateLinearFusion, CosineFusion, ARMFusion, UnimodalSumFusion)}


def fusion_head_class(name: str) -> type[FusionHead]:
    if name not in FUSION_HEADS:
        raise ConfigError(f"model.fusion={name!r} is invalid: expected one of {list(FUSION_HEADS)}")
    return FUSION_HEADS[name]


def fusion_params(name: str, params):
    """The validated params of fusion head `name` (errors name the key, model.fusion_params.*)."""
    return from_dict(fusion_head_class(name).Params, params or {}, "model.fusion_params")


def build_fusion(cfg: ModelConfig, latent_dims: list[int], n_outputs: int) -> FusionHead:
    """The fusion head `cfg.fusion`, with its `cfg.fusion_params`, for encoders of these widths."""
    return fusion_head_class(cfg.fusion).from_params(fusion_params(cfg.fusion, cfg.fusion_params),
                                                     latent_dims=latent_dims, n_outputs=n_outputs)


__all__ = ["FramesEncoder", "ImageEncoder", "TransformerEncoder", "LateLinearFusion", "MLPEncoder", "ModelOutput", "MultimodalModel",
           "SwinVideoEncoder", "ConformerHead", "SpeechConformerEncoder", "VideoConformerEncoder",
           "build_encoder", "build_fusion", "build_model", "FusionHead", "FUSION_HEADS", "fusion_params", "ARMFusion", "CosineFusion", "UnimodalSumFusion"]
