"""Pretrained encoders at their real checkpoints' sizes with random weights, for the paper rehearsal
(benchmarks/paper_rehearsal.py): the cost of a step depends on the shapes, not on the weights, and
no weights can be downloaded here.

`random_encoders(model_cfg)` swaps each encoder's `checkpoint` for `random_config`, the real
checkpoint's config.json values (PRETRAINED); `RandomBackboneCache` builds each such backbone once
and hands out copies while a rehearsal runs (a 24-layer Wav2Vec2 takes seconds to initialise).
"""
from __future__ import annotations

import copy
import dataclasses
import json

# The real checkpoints' configs (their config.json on the Hugging Face hub), minus the weights.
PRETRAINED = {
    "facebook/wav2vec2-large-robust": {
        "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096,
        "feat_extract_norm": "layer", "do_stable_layer_norm": True, "conv_bias": True,
        "feat_extract_activation": "gelu", "hidden_act": "gelu"},
    "facebook/wav2vec2-large-960h": {
        "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "intermediate_size": 4096,
        "feat_extract_norm": "group", "do_stable_layer_norm": False, "conv_bias": False},
    "ALM/hubert-base-audioset": {
        "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
        "feat_extract_norm": "group", "do_stable_layer_norm": False, "conv_bias": False},
    "google/vivit-b-16x2-kinetics400": {
        "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
        "image_size": 224, "num_frames": 32, "tubelet_size": [2, 16, 16], "hidden_act": "gelu_fast",
        "qkv_bias": True, "layer_norm_eps": 1e-6},
}


def random_encoders(model_cfg):
    """The model config with each pretrained encoder's `checkpoint` replaced by `random_config`,
    the real checkpoint's sizes (PRETRAINED)."""
    encoders = {}
    for modality, spec in model_cfg.encoders.items():
        spec = dict(spec)
        if "checkpoint" in spec:
            checkpoint = spec.pop("checkpoint")
            if checkpoint not in PRETRAINED:
                raise KeyError(f"no config of {checkpoint!r} in PRETRAINED")
            spec["random_config"] = dict(PRETRAINED[checkpoint])
        encoders[modality] = spec
    return dataclasses.replace(model_cfg, encoders=encoders)


class RandomBackboneCache:
    """Builds each random backbone once and hands out copies (a 24-layer Wav2Vec2 takes seconds to
    initialise); patched into the encoder modules while the rehearsal runs."""

    def __init__(self):
        self.models = {}

    def __enter__(self):
        from mcrlib.models import pretrained, speech_encoder, vivit_encoder
        self.modules, self.original = (speech_encoder, vivit_encoder), pretrained.load_backbone

        def load(kind, *, checkpoint=None, random_config=None):
            if random_config is None:
                return self.original(kind, checkpoint=checkpoint)
            key = (kind, json.dumps(random_config, sort_keys=True))
            if key not in self.models:
                self.models[key] = self.original(kind, random_config=random_config)
            return copy.deepcopy(self.models[key])
        for module in self.modules:
            module.load_backbone = load
        return self

    def __exit__(self, *exc):
        for module in self.modules:
            module.load_backbone = self.original
        self.models.clear()
