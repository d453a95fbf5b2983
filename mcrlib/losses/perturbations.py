"""Perturbations of a modality for L_MIPD (appendix C.1, Table 4): a pluggable piece.

A perturbation first draws its randomness for one training step (`draw`), shared by every
perturbed subset within that step (the release shares one permutation per copy), then
`apply`s it to one modality, returning `copies * B` rows (the copies stacked along the batch).
A perturbation that `acts_on_rows` (a map of the batch's rows that commutes with a linear map:
a permutation, zeroing) may be applied to a modality's fusion contribution W_m z_m instead of z_m.

`space` says what `apply` receives. Latent perturbations get the latent z_m of the step's
forward pass, so the fusion head alone sees the copies. Input perturbations get the input x_m;
the method passes their output through the encoders again, an extra encoder pass on
`copies * B` rows per modality: the cost Table 4 and appendix A.6 weigh.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch


@dataclass
class Permute:
    """Within-batch latent permutation (the paper's default): z~ = z[pi], P permutations."""
    copies: int = 32
    space: ClassVar[str] = "latent"
    acts_on_rows: ClassVar[bool] = True   # W z[pi] = (W z)[pi]: see mcrlib.losses.mipd

    def draw(self, batch_size: int, device, generator=None) -> torch.Tensor:
        """(copies, B) row indices: P independent uniform permutations in one op (the arg-sort
        of i.i.d. uniforms), drawn on `device` unless a CPU `generator` is given."""
        if generator is not None:
            return torch.rand(self.copies, batch_size, generator=generator).argsort(dim=1).to(device)
        return torch.rand(self.copies, batch_size, device=device).argsort(dim=1)

    def apply(self, z: torch.Tensor, draw: torch.Tensor) -> torch.Tensor:
        return z[draw.reshape(-1)]


def _batch_noise(x: torch.Tensor, copies: int) -> torch.Tensor:
    """x + eps * std_batch(x), eps ~ N(0, I): `copies` noisy copies stacked, (copies * B, ...).
    The std is taken over the batch, separately for every element (feature, pixel, time step)."""
    xf = x.detach().float() if not x.is_floating_point() else x
    eps = torch.randn((copies, *x.shape), device=x.device)
    return (xf + eps * xf.detach().std(0, keepdim=True)).reshape(-1, *x.shape[1:])


@dataclass
class NoiseLatent:
    """z~ = z + eps * std_batch(z), eps ~ N(0, I), P copies."""
    copies: int = 32
    space: ClassVar[str] = "latent"

    def draw(self, batch_size: int, device, generator=None) -> int:
        return batch_size

    def apply(self, z: torch.Tensor, draw) -> torch.Tensor:
        return _batch_noise(z, self.copies)


@dataclass
class ZeroLatent:
    """z~ = 0, a single copy."""
    copies: int = 1
    space: ClassVar[str] = "latent"
    acts_on_rows: ClassVar[bool] = True   # W 0 = 0: the zeroed contribution

    def draw(self, batch_size: int, device, generator=None) -> None:
        return None

    def apply(self, z: torch.Tensor, draw) -> torch.Tensor:
        return torch.zeros_like(z)


@dataclass
class NoiseInput:
    """x~ = x + eps * std_batch(x) per input element, eps ~ N(0, I), P copies, each passed
    through the encoders. Integer inputs (uint8 video frames) are rounded and clipped back to
    their type, so the encoder scales them as it scales the clean frames."""
    copies: int = 32
    space: ClassVar[str] = "input"

    def draw(self, batch_size: int, device, generator=None) -> None:
        return None

    def apply(self, x: torch.Tensor, draw) -> torch.Tensor:
        noisy = _batch_noise(x, self.copies)
        if x.is_floating_point():
            return noisy
        info = torch.iinfo(x.dtype)
        return noisy.round().clamp(info.min, info.max).to(x.dtype)


@dataclass
class ZeroInput:
    """x~ = 0 (Shapley-style, as AGM's zero-input passes), a single copy through the encoders."""
    copies: int = 1
    space: ClassVar[str] = "input"

    def draw(self, batch_size: int, device, generator=None) -> None:
        return None

    def apply(self, x: torch.Tensor, draw) -> torch.Tensor:
        return torch.zeros_like(x)


PERTURBATIONS = {"permute": Permute, "noise_latent": NoiseLatent, "zero_latent": ZeroLatent,
                 "noise_input": NoiseInput, "zero_input": ZeroInput}
SINGLE_COPY = (ZeroLatent, ZeroInput)   # a constant needs no copies: P is ignored


def make_perturbation(name: str, copies: int):
    """`copies` is P for the perturbations that draw several copies; the zero ones have one."""
    cls = PERTURBATIONS[name]
    return cls() if cls in SINGLE_COPY else cls(copies=copies)
