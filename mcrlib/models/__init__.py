"""Models built from configs."""
from __future__ import annotations

import torch

from mcrlib.config import ModelConfig
from mcrlib.data import TensorSplits
from mcrlib.models.fusion import LateLinearFusion
from mcrlib.models.mlp import MLPEncoder
from mcrlib.models.resnet import FramesEncoder, ImageEncoder
from mcrlib.models.swin import SwinVideoEncoder
from mcrlib.models.transformer import TransformerEncoder
from mcrlib.models.multimodal import ModelOutput, MultimodalModel


def build_encoder(cfg: ModelConfig, sample: torch.Tensor, name: str):
    """The encoder for one modality, from the shape of one sample."""
    if sample.dim() == 1:
        return MLPEncoder(in_dim=sample.shape[0], hidden_dim=cfg.hidden_dim, latent_dim=cfg.latent_dim,
                          layers=cfg.layers, dropout=cfg.dropout)
    if sample.dim() == 2:   # (T, D): feature sequence (CMU-MOSI/MOSEI)
        return TransformerEncoder(in_dim=sample.shape[1])
    if sample.dim() == 3:   # (C, H, W): spectrogram or image
        return ImageEncoder(in_channels=sample.shape[0], width=cfg.resnet_width, small_input=min(sample.shape[1:]) < 32)
    if sample.dim() == 4 and cfg.video_encoder == "swin3d_t":   # (T, C, H, W): video frames
        return SwinVideoEncoder(in_channels=sample.shape[1])
    if sample.dim() == 4:
        return FramesEncoder(in_channels=sample.shape[1], width=cfg.resnet_width, small_input=min(sample.shape[2:]) < 32)
    raise ValueError(f"modality {name!r}: no encoder for samples of shape {tuple(sample.shape)}")


def build_model(cfg: ModelConfig, data: TensorSplits, modalities=None) -> MultimodalModel:
    """One encoder per modality of `data` (all, or the given subset)."""
    modalities = tuple(modalities or data.modalities)
    train = data.splits["train"]
    encoders = {m: build_encoder(cfg, train[m][0], m) for m in modalities}
    n_outputs = 1 if data.task == "regression" else data.n_classes
    return MultimodalModel(encoders=encoders, n_classes=n_outputs)


__all__ = ["FramesEncoder", "ImageEncoder", "TransformerEncoder", "LateLinearFusion", "MLPEncoder", "ModelOutput", "MultimodalModel",
           "SwinVideoEncoder",
           "build_encoder", "build_model"]
