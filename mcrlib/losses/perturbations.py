"""Perturbations of a modality for L_MIPD (appendix C.1, Table 4): a pluggable piece.

A perturbation first draws its randomness for one training step (`draw`), shared by every
perturbed subset within that step (the release shares one permutation per copy), then
`apply`s it to the latent z_m of each perturbed modality, returning `copies * B` rows.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Permute:
    """Within-batch latent permutation (the paper's default): z~ = z[pi], P permutations."""
    copies: int = 32

    def draw(self, batch_size: int, device, generator=None) -> torch.Tensor:
        return torch.stack([torch.randperm(batch_size, generator=generator).to(device)
                            for _ in range(self.copies)])

    def apply(self, z: torch.Tensor, draw: torch.Tensor) -> torch.Tensor:
        return z[draw.reshape(-1)]


@dataclass
class NoiseLatent:
    """z~ = z + eps * std_batch(z), eps ~ N(0, I), P copies."""
    copies: int = 32

    def draw(self, batch_size: int, device, generator=None) -> int:
        return batch_size

    def apply(self, z: torch.Tensor, draw) -> torch.Tensor:
        eps = torch.randn((self.copies, *z.shape), device=z.device)
        return (z + eps * z.detach().std(0, keepdim=True)).reshape(-1, *z.shape[1:])


@dataclass
class ZeroLatent:
    """z~ = 0, a single copy."""
    copies: int = 1

    def draw(self, batch_size: int, device, generator=None) -> None:
        return None

    def apply(self, z: torch.Tensor, draw) -> torch.Tensor:
        return torch.zeros_like(z)


PERTURBATIONS = {"permute": Permute, "noise_latent": NoiseLatent, "zero_latent": ZeroLatent}


def make_perturbation(name: str, copies: int):
    """`copies` is P for the perturbations that draw several copies; zero_latent has one."""
    cls = PERTURBATIONS[name]
    return cls() if cls is ZeroLatent else cls(copies=copies)
