"""MMCosine, multimodal cosine logits (Xu et al., ICASSP 2023; code GeWu-Lab/MMCosine_ICASSP23,
`main_CD.py` with --mmcosine).

What it changes: the fusion head. Each modality's logits are l_{m,k} = s * cos(z_m, w_{m,k}),
where w_{m,k} is modality m's slice of class k's fusion weight; features and class weight vectors
are L2-normalised and there is no bias. The fused logits are f = sum_m l_m and the loss is
CE(f, y), so no modality can dominate f by growing its feature or weight norms (|l_m| <= s).
The method installs `CosineFusion` as `model.fusion` when it is built (before the optimizer), so
training, evaluation and `model(batch).logits` all use the cosine logits.
Which parameters it scales: none; every parameter gets the plain CE gradient.

Defaults: scale s = 10 (`--scaling` in the code, also MLB's; BalanceMM uses 15;
notes-peers.md section 4).

Deviations from the reference code:
- The code keeps its concat Linear's bias as an unused parameter; here the fusion has no bias
  parameter at all (`bias` is a zero, non-persistent buffer so `f_m = W_m z_m + b/M` code works).
- The code's optional supervised-contrastive term (`--lam`, default 0) is not implemented.
- The fusion is installed on the model, so a saved `model.pt` has cosine weights: rebuild it by
  constructing this method on a fresh model before `load_state_dict` (a plain model refuses the
  state: it expects a `fusion.bias` entry).
- Classification only (the cosine logits are class scores).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F

from mcrlib.config import ConfigError, check
from mcrlib.methods.base import Method, register
from mcrlib.models.fusion import LateLinearFusion


class CosineFusion(LateLinearFusion):
    """h(z_1..z_M) = sum_m s * cos(z_m, w_{m,k}). LateLinearFusion's branches, `combine` and
    interface (so sliced unimodal logits and per-branch detaching keep working), with cosine
    contributions and no bias."""

    def __init__(self, *, latent_dims: Sequence[int], n_classes: int, scale: float = 10.0):
        super().__init__(latent_dims=latent_dims, n_classes=n_classes)
        self.scale = scale
        # MMCosine has no bias; a zero buffer (not trained, not saved) keeps `fusion.bias / M` valid.
        del self.bias
        self.register_buffer("bias", torch.zeros(n_classes), persistent=False)

    def contributions(self, latents: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """s * cos(z_m, w_{m,k}) for every modality m: each row of W_m is one class's weight."""
        return [self.scale * F.linear(F.normalize(z, dim=1), F.normalize(branch.weight, dim=1))
                for branch, z in zip(self.branches, latents)]


@register("mmcosine")
class MMCosine(Method):
    """Loss CE(f, y) (the base class's) on the cosine logits of the installed CosineFusion."""

    @dataclass(frozen=True)
    class Params:
        scale: float = 10.0   # s, the cosine logits' scale

        def __post_init__(self):
            check(self.scale > 0, "method.params.scale", self.scale, "a scale > 0")

    def __init__(self, params, *, model, task="classification"):
        super().__init__(params, model=model, task=task)
        if task != "classification":
            raise ConfigError("method.name='mmcosine' needs a classification task: its logits are "
                              "cosines to class weight vectors")
        dims = [model.encoders[m].out_dim for m in model.modalities]
        # Installed here, before the Trainer builds the optimizer from model.parameters().
        model.fusion = CosineFusion(latent_dims=dims, n_classes=model.n_classes, scale=params.scale)
        self.diagnostics: dict[str, float] = {}

    def loss(self, model, batch, output):
        terms = super().loss(model, batch, output)
        # The code's logged quantity: each modality's mean cosine logit of the true class.
        with torch.no_grad():
            contribs = model.fusion.contributions([output.latents[m] for m in model.modalities])
            y = batch["label"][:, None]
            self.diagnostics = {f"mmcos_logit_y[{m}]": c.gather(1, y).mean().item()
                                for m, c in zip(model.modalities, contribs)}
        return terms
