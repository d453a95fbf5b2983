"""MLB: Multi-Loss Balanced training.

Reference: Kontras, Chatzichristos, Blaschko, De Vos, "Improving Multimodal Learning with
Multi-Loss Gradient Modulation", BMVC 2024 (arXiv 2405.07930); code kkontras/MLB
(`Bias_Infusion_MLB`), also kkontras/MCR (`Bias_Infusion_MLB`, `_3d`, `_Reg`, `_3d_Reg`).

Loss: Multi-Loss, CE(f, y) + uni_weight * sum_m CE(u_m, y) with each modality's own head u_m.
After backward, each step (detached):
  score_m = mean_i softmax(u_m)[y_i],  rho_m = mean(scores of the other modalities) / score_m,
  k_m = 1 + tanh(alpha * (rho_m - 1))  in (0, 2):
  the lagging modality (rho_m > 1) is boosted, the leading one damped. With a cap `beta`
  (the reference's tanh_mode "2"): if rho_m > 1, k_m = 1 + (beta - 1) * tanh(alpha * (rho_m - 1)),
  so the boost stays below beta (beta < 1 turns the boost into a mild damping).
Scaled parameters: every parameter of `model.encoders[m]` and the weight (not the bias) of the
unimodal head `model.unimodal_heads[m]`; the fusion branches and the fusion bias are untouched.

Defaults and sources:
  alpha = 0.8: the MLB repository's CREMA-D and AVE configs (UCF101: 1.0). The MCR release's
    run.sh tunes it per dataset (CREMA-D 0.5 with beta 10, AVE 2.0 with beta 1, UCF 2.0 with
    beta 0.5, MOSEI V-T 2.5, V-T-A 0.5, MOSI 1.5, Sth-Sth 2.0 with beta 0.5).
  beta = None (no cap, tanh_mode "1"); uni_weight = 1.0 (Multi-Loss weights 1, MLB configs).
  start_epoch = 0, end_epoch = None: always on (the configs' 0-1500 window), inclusive.

Deviations from the reference code:
  * Regression follows the authors' `_Reg` ports: score_m = MSE(u_m, y) (lower is better) and
    rho_m = score_m / mean(other scores).
  * Scores are floored at 1e-12 so that a fully underflowed softmax cannot divide by zero.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch.nn.functional as F

from mcrlib.config import ConfigError, check
from mcrlib.methods.base import Method, register, task_loss

_FLOOR = 1e-12


def mlb_coefficients(scores: Sequence[float], *, alpha: float, beta: float | None = None,
                     higher_is_better: bool = True) -> tuple[list[float], list[float]]:
    """(rho_m, k_m) for every modality from its score against the mean of the others."""
    scores = [max(s, _FLOOR) for s in scores]
    rhos, ks = [], []
    for m, own in enumerate(scores):
        others = sum(scores[:m] + scores[m + 1:]) / (len(scores) - 1)
        rho = others / own if higher_is_better else own / others
        t = math.tanh(alpha * (rho - 1))
        rhos.append(rho)
        ks.append(1 + (beta - 1) * t if beta is not None and rho > 1 else 1 + t)
    return rhos, ks


@register("mlb")
class MLB(Method):
    display = "MLB"
    rank = 60

    @dataclass(frozen=True)
    class Params:
        uni_weight: float = 1.0         # weight of the unimodal heads' losses (Multi-Loss)
        alpha: float = 0.8              # modulation strength
        beta: float | None = None       # cap on the boost of a lagging modality (tanh_mode "2")
        start_epoch: int = 0            # first epoch with modulation (inclusive)
        end_epoch: int | None = None    # last epoch with modulation (inclusive); None: no end

        def __post_init__(self):
            check(self.uni_weight >= 0, "method.params.uni_weight", self.uni_weight, "a weight >= 0")
            check(self.alpha >= 0, "method.params.alpha", self.alpha, "a number >= 0")
            check(self.beta is None or self.beta > 0, "method.params.beta", self.beta,
                  "null (no cap) or a number > 0")
            check(self.start_epoch >= 0, "method.params.start_epoch", self.start_epoch, "an epoch >= 0")
            check(self.end_epoch is None or self.end_epoch >= self.start_epoch, "method.params.end_epoch",
                  self.end_epoch, f"null or an epoch >= start_epoch ({self.start_epoch})")

    def __init__(self, params, *, model, task="classification"):
        super().__init__(params, model=model, task=task)
        if len(model.modalities) < 2:
            raise ConfigError(f"method 'mlb' balances two or more modalities, the model has "
                              f"{list(model.modalities)}")
        self.diagnostics: dict[str, float] = {}

    def loss(self, model, batch, output):
        # Multi-Loss, written out here (not inherited) so this file alone defines the method.
        y = batch["label"]
        uni = sum(task_loss(u, y, self.task) for u in output.unimodal_logits.values())
        return {"task": task_loss(output.logits, y, self.task), "unimodal": self.params.uni_weight * uni}

    def active(self) -> bool:
        return self.in_window(self.params.start_epoch, self.params.end_epoch)

    def scores(self, model, batch, output) -> list[float]:
        y = batch["label"]
        logits = [output.unimodal_logits[m].detach() for m in model.modalities]
        if self.task == "regression":
            return [F.mse_loss(u.reshape(-1), y.float().reshape(-1)).item() for u in logits]
        return [u.softmax(-1).gather(1, y.view(-1, 1)).mean().item() for u in logits]

    def after_backward(self, model, batch, output):
        names = model.modalities
        rhos, ks = mlb_coefficients(self.scores(model, batch, output), alpha=self.params.alpha,
                                    beta=self.params.beta, higher_is_better=self.task != "regression")
        if not self.active():
            ks = [1.0] * len(names)
        self.diagnostics = {**{f"rho[{m}]": r for m, r in zip(names, rhos)},
                            **{f"k[{m}]": k for m, k in zip(names, ks)}}
        if not self.active():
            return
        for m, k in zip(names, ks):
            scaled = [*model.encoders[m].parameters(), model.unimodal_heads[m].weight]
            for param in scaled:
                if param.grad is not None:
                    param.grad.mul_(k)
