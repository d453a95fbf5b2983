"""Ensemble of the unimodal models: no further training, their test outputs combined.

Fused logits = sum over modalities of each unimodal model's standardised logits (the release:
global mean and std of the logit tensor); probability averaging is reported beside it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from mcrlib.methods.base import Method, register, unimodal_configs


def standardise(logits: torch.Tensor) -> torch.Tensor:
    return (logits - logits.mean()) / (logits.std() + 1e-8)


def combine(logits: list[torch.Tensor], how: str) -> torch.Tensor:
    if how == "probabilities":
        return torch.stack([l.softmax(-1) for l in logits]).mean(0).log()
    return sum(standardise(l) for l in logits)


@register("ensemble")
class Ensemble(Method):
    composite = True
    uses_unimodal_runs = True

    @dataclass(frozen=True)
    class Params:
        combine: Literal["standardised_logits", "probabilities"] = "standardised_logits"

    @classmethod
    def member_configs(cls, config, modalities):
        """The unimodal runs this ensemble combines (trained once, shared through the run cache)."""
        return unimodal_configs(config, modalities)

    @classmethod
    def required_runs(cls, config, modalities):
        return {f"member:{m}": c for m, c in cls.member_configs(config, modalities).items()}
