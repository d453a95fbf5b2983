"""Models built from configs."""
from __future__ import annotations

from mcrlib.config import ModelConfig
from mcrlib.data import TensorSplits
from mcrlib.models.fusion import LateLinearFusion
from mcrlib.models.mlp import MLPEncoder
from mcrlib.models.multimodal import ModelOutput, MultimodalModel


def build_model(cfg: ModelConfig, data: TensorSplits, modalities=None) -> MultimodalModel:
    """MLP encoders for the vector modalities of `data` (all, or the given subset)."""
    modalities = tuple(modalities or data.modalities)
    train = data.splits["train"]
    encoders = {m: MLPEncoder(in_dim=train[m].shape[1], hidden_dim=cfg.hidden_dim,
                              latent_dim=cfg.latent_dim, layers=cfg.layers, dropout=cfg.dropout)
                for m in modalities}
    return MultimodalModel(encoders=encoders, n_classes=data.n_classes)


__all__ = ["LateLinearFusion", "MLPEncoder", "ModelOutput", "MultimodalModel", "build_model"]
