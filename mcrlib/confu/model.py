"""ConFu's model: per-modality encoders and projections, and a fusion MLP per pair of modalities,
trained by ConFu's contrastive objective, its pairwise baseline (λ = 0), Symile's or GRAM's.

Reference: S. Koutoupis, M. A. Zervou, K. Kontras, M. De Vos, P. Tsakalides, G. Tsagkatakis, "The
More, the Merrier: Contrastive Fusion for Higher-Order Multimodal Alignment" (ConFu, arXiv
2511.21331, CVPR 2026); code estafons/confu, `src/modules/models/confu.py`. The objectives are
`mcrlib.losses.higher_order` (its docstring states them); this module builds what they score:

    e_m  = encoder_m(x_m)                                   (each modality's encoding)
    z_m  = normalise(Linear_m(e_m))                         (its embedding in the shared space)
    f_ij = normalise(MLP_ij([e_i ; e_j]))                   (each pair's fused embedding)
    MLP_ij = Linear(d_i + d_j, 512) -> ReLU -> Dropout(0.1) -> Linear(512, embed_dim)

`objective="confu"` trains with `confu_loss(z, f, lam)`: λ = 0.5 is ConFu, λ = 0 its pairwise
baseline (the fusion MLPs are built, as in the authors' code, but get no gradient). `objective=
"symile"` (Saporta et al., NeurIPS 2024) trains with `symile_loss` on the z_m alone; it builds no
fusion MLP (its two-to-one score is the multilinear inner product, `evaluate.two_to_one_scores`).
`objective="gram"` (Cicchetti et al., ICLR 2025) trains with `gram_loss`: the volume spanned by the
anchor modality (the last one: the caption, or x3, as GRAM anchors text) with the others at each
sample; it builds no fusion MLP either (its two-to-one score is minus that volume).

Deviations from the authors' code, and why:
- encoders: small MLPs on the prepared features (`MLPEncoder`) or the caption GRU
  (`text_encoder.CaptionEncoder`), trained from scratch (authors: pretrained or larger towers; the
  budget here is one CPU core for the whole study, and no weights may be downloaded);
- Symile and GRAM: same encoders, projections and L2 normalisation as ConFu, logit scale fixed
  at 1/τ (both reference codes learn it); so the four objectives differ only in what they
  contrast;
- temperature fixed at τ = 0.07 (the authors' value), not learned.
"""
from __future__ import annotations

from itertools import combinations
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from mcrlib.losses.higher_order import LAMBDA, TAU, confu_loss, gram_loss, symile_loss

OBJECTIVES = ("confu", "symile", "gram")
PAIR_SEPARATOR = "+"


class MLPEncoder(nn.Module):
    """(B, ...) features, flattened -> (B, out_dim): Linear, ReLU, Linear."""

    def __init__(self, *, in_dim: int, hidden_dim: int = 256, out_dim: int = 128):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, out_dim))
        self.out_dim = out_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class FusionMLP(nn.Module):
    """ConFu's pair fusion on [e_i ; e_j]: two layers (hidden 512), dropout 0.1; the output is
    L2-normalised by the model."""

    def __init__(self, *, in_dim: int, out_dim: int, hidden_dim: int = 512, dropout: float = 0.1):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(hidden_dim, out_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def pair_key(i: str, j: str) -> str:
    return f"{i}{PAIR_SEPARATOR}{j}"


class ConFuModel(nn.Module):
    """Encoders, projections and pair-fusion MLPs (module docstring). `encoders` maps each modality
    (three or more, in this order) to a module with an `out_dim` attribute; `forward(batch)` takes a
    mapping with every modality and returns {"z": {m: (B, embed_dim)}, "fused": {(i, j): (B,
    embed_dim)}} (no "fused" entries for Symile or GRAM), every vector of unit norm. GRAM's anchor is
    the last modality (`anchor`)."""

    def __init__(self, *, encoders: Mapping[str, nn.Module], embed_dim: int = 64, fusion_hidden: int = 512,
                 dropout: float = 0.1, objective: str = "confu", lam: float = LAMBDA, tau: float = TAU):
        super().__init__()
        if len(encoders) < 3:
            raise ValueError(f"ConFuModel: {len(encoders)} modalities ({list(encoders)}); ConFu aligns three or "
                             "more: pass one encoder per modality")
        if objective not in OBJECTIVES:
            raise ValueError(f"ConFuModel: objective={objective!r}; expected one of {list(OBJECTIVES)}")
        if not 0 <= lam <= 1:
            raise ValueError(f"ConFuModel: lam={lam!r}; expected a weight in [0, 1] (0.5: ConFu, 0: pairwise)")
        if not tau > 0:
            raise ValueError(f"ConFuModel: tau={tau!r}; expected a temperature > 0")
        missing = [m for m, enc in encoders.items() if not isinstance(getattr(enc, "out_dim", None), int)]
        if missing:
            raise ValueError(f"ConFuModel: the encoders of {missing} have no integer `out_dim`; set it to the "
                             "width of their output")
        self.modalities = tuple(encoders)
        self.anchor = self.modalities[-1]
        self.objective, self.lam, self.tau = objective, float(lam), float(tau)
        self.encoders = nn.ModuleDict(encoders)
        self.projections = nn.ModuleDict({m: nn.Linear(enc.out_dim, embed_dim) for m, enc in encoders.items()})
        self.pairs = tuple(combinations(self.modalities, 2))
        self.fusion = nn.ModuleDict()
        if objective == "confu":
            for i, j in self.pairs:
                self.fusion[pair_key(i, j)] = FusionMLP(in_dim=encoders[i].out_dim + encoders[j].out_dim,
                                                        out_dim=embed_dim, hidden_dim=fusion_hidden, dropout=dropout)

    def encode(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        absent = [m for m in self.modalities if m not in batch]
        if absent:
            raise KeyError(f"ConFuModel: the batch lacks modalities {absent}; it has {list(batch)}")
        return {m: self.encoders[m](batch[m]) for m in self.modalities}

    def modality_embedding(self, modality: str, x: torch.Tensor) -> torch.Tensor:
        """z of one modality alone (e.g. the ten captions of a zero-shot gallery)."""
        if modality not in self.modalities:
            raise KeyError(f"ConFuModel: no modality {modality!r}; it has {list(self.modalities)}")
        return F.normalize(self.projections[modality](self.encoders[modality](x)), dim=-1)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> dict:
        e = self.encode(batch)
        z = {m: F.normalize(self.projections[m](e[m]), dim=-1) for m in self.modalities}
        fused = {(i, j): F.normalize(self.fusion[pair_key(i, j)](torch.cat([e[i], e[j]], dim=-1)), dim=-1)
                 for i, j in self.pairs if pair_key(i, j) in self.fusion}
        return {"z": z, "fused": fused}

    def loss(self, out: dict) -> torch.Tensor:
        """The training objective on `forward`'s output."""
        if self.objective == "symile":
            return symile_loss([out["z"][m] for m in self.modalities], tau=self.tau)
        if self.objective == "gram":
            return gram_loss(out["z"][self.anchor], [out["z"][m] for m in self.modalities if m != self.anchor],
                             tau=self.tau)
        return confu_loss(out["z"], out["fused"], lam=self.lam, tau=self.tau)
