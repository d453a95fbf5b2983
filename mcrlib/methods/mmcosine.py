"""MMCosine, multimodal cosine logits (Xu et al., ICASSP 2023; code GeWu-Lab/MMCosine_ICASSP23,
`main_CD.py` with --mmcosine).

What it changes: the fusion head. Each modality's logits are l_{m,k} = s * cos(z_m, w_{m,k}),
where w_{m,k} is modality m's slice of class k's fusion weight; features and class weight vectors
are L2-normalised and there is no bias. The fused logits are f = sum_m l_m and the loss is
CE(f, y), so no modality can dominate f by growing its feature or weight norms (|l_m| <= s).
The head is `mcrlib.models.cosine_fusion.CosineFusion`, which the method asks for through
`model_overrides` (model.fusion = 'cosine', model.fusion_params = {scale: s}): the run's config names it,
so training, evaluation, `model(batch).logits` and a model rebuilt from a saved run all use it.
Which parameters it scales: none; every parameter gets the plain CE gradient.
Logged: each modality's mean cosine logit of the true class, s * cos(z_m, w_{m,y}) (the code's
logged quantity), read from `output.contributions`.

Defaults: scale s = 10 (`--scaling` in the code, also MLB's; BalanceMM uses 15;
notes-peers.md section 4).

Deviations from the reference code:
- The code keeps its concat Linear's bias as an unused parameter; here the fusion has no bias
  parameter at all (`bias` is a zero, non-persistent buffer so `f_m = W_m z_m + b/M` code works).
- The code's optional supervised-contrastive term (`--lam`, default 0) is not implemented.
- Classification only (the cosine logits are class scores).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from mcrlib.config import ConfigError, check
from mcrlib.methods.base import Method, register
from mcrlib.models import cosine_fusion   # the head's one home (not re-exported here)


@register("mmcosine")
class MMCosine(Method):
    """Loss CE(f, y) (the base class's) on the cosine logits of the model's CosineFusion."""
    display = "MMCosine"
    rank = 90

    @dataclass(frozen=True)
    class Params:
        scale: float = 10.0   # s, the cosine logits' scale (official --scaling, MLB)

        def __post_init__(self):
            check(self.scale > 0, "method.params.scale", self.scale, "a scale > 0")

    @classmethod
    def unsupported(cls, params, task, modalities):
        if task != "classification":
            return "MMCosine's logits are cosines to class weight vectors: classification only"
        return None

    @classmethod
    def model_overrides(cls, params) -> dict:
        return {"fusion": "cosine", "fusion_params": {"scale": params.scale}}

    def __init__(self, params, *, model, task="classification"):
        super().__init__(params, model=model, task=task)
        if task != "classification":
            raise ConfigError("method.name='mmcosine' needs a classification task: its logits are "
                              "cosines to class weight vectors")
        # The run layer builds the model with model_overrides; a model built without them would
        # silently train a linear head (joint training) under this method's name.
        head = model.fusion
        expected = cosine_fusion.CosineFusion.Params(scale=params.scale)
        cosine = isinstance(head, cosine_fusion.CosineFusion)
        if not cosine or head.params != expected:
            found = f"CosineFusion with scale {head.params.scale}" if cosine else type(head).__name__
            raise ConfigError(f"method 'mmcosine' needs model.fusion='cosine' with model.fusion_params="
                              f"{{scale: {params.scale}}} (its model_overrides); the model's head is {found}")
        self.diagnostics: dict[str, torch.Tensor] = {}

    def loss(self, model, batch, output):
        # Detached tensors, not floats: the trainer averages them over the epoch on the device,
        # so logging them costs no sync per step.
        y = batch["label"][:, None]
        self.diagnostics = {f"mmcos_logit_y[{m}]": c.detach().float().gather(1, y).mean()
                            for m, c in output.contributions.items()}
        return super().loss(model, batch, output)
