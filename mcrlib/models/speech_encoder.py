"""Speech encoder of the pretrained-encoder ("Conformer") family: wav2vec 2.0 / HuBERT + Conformer.

A waveform (B, L) -> a pretrained speech transformer -> its last hidden states (B, T', H) ->
`ConformerHead` (1x1-conv bottleneck, Conformer, mean over time) -> (B, d_model). The release
(paper appendix A.3): CREMA-D audio uses `facebook/wav2vec2-large-robust` (backbone="wav2vec2",
H = 1024), AVE audio `ALM/hubert-base-audioset` (backbone="hubert", H = 768); the convolutional
feature encoder is frozen (what `freeze_feature_encoder()` does) and only the first 12 transformer layers
are kept (`keep_layers`; a model with fewer layers keeps all of them). The rest of the backbone
(feature projection, positional convolution, the kept layers, the encoder's final LayerNorm) is
fine-tuned, with the model's own training behaviour (SpecAugment masking and LayerDrop as its
config sets them).

Defaults: keep_layers 12 and the frozen feature encoder are the release's; `head` is the keyword
arguments of `ConformerHead` (its defaults are the CREMA-D head; AVE uses d_model=768).
`checkpoint` / `random_config`: see `load_backbone` (exactly one of them).

The input is the raw waveform, already normalised by the data loader (`cremad_faces`,
`ave_pretrained`: z-scored with the train split's mean and std, the release's waveform route);
every sample is used at its prepared, fixed length (no attention mask).

Deviation: the release feeds the hidden states to the Conformer time-first although it expects
batch-first, so attention mixes the samples of a batch; here it gets (B, T', H) (see
`conformer_head.py`).
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from mcrlib.models.conformer_head import ConformerHead
from mcrlib.models.pretrained import load_backbone


class SpeechConformerEncoder(nn.Module):
    """(B, L) waveform -> (B, d_model)."""

    def __init__(self, *, backbone: Literal["wav2vec2", "hubert"], checkpoint: str | None = None,
                 random_config: dict | None = None, keep_layers: int = 12, freeze_feature_encoder: bool = True,
                 head: dict | None = None):
        super().__init__()
        if backbone not in ("wav2vec2", "hubert"):
            raise ValueError(f"speech backbone {backbone!r}: expected 'wav2vec2' or 'hubert'")
        if keep_layers < 1:
            raise ValueError(f"keep_layers={keep_layers} must be at least 1")
        self.backbone = load_backbone(backbone, checkpoint=checkpoint, random_config=random_config)
        layers = self.backbone.encoder.layers
        if keep_layers < len(layers):
            self.backbone.encoder.layers = layers[:keep_layers]
        self.backbone.config.num_hidden_layers = len(self.backbone.encoder.layers)
        if freeze_feature_encoder:   # Wav2Vec2Model.freeze_feature_encoder(); HubertModel lacks the method
            self.backbone.feature_extractor._freeze_parameters()
        self.head = ConformerHead(in_dim=self.backbone.config.hidden_size, **(head or {}))
        self.out_dim = self.head.out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2:
            raise ValueError(f"SpeechConformerEncoder takes waveforms (B, L), got shape {tuple(x.shape)}")
        hidden = self.backbone(input_values=x.float()).last_hidden_state      # (B, T', H)
        return self.head(hidden)
