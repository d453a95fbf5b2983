"""OGM / OGM-GE: On-the-fly Gradient Modulation (+ Generalization Enhancement).

Reference: Peng, Wei, Deng, Wang, Hu, "Balanced Multimodal Learning via On-the-fly Gradient
Modulation", CVPR 2022; code GeWu-Lab/OGM-GE_CVPR2022 (`main.py`, train_epoch); ported as
`Bias_Infusion_OGM` in kkontras/MLB and kkontras/MCR.

Loss: CE(f, y) only (joint training). After backward, each step:
  s_m = sum_i softmax(f_m)[y_i] with the sliced logits f_m = W_m z_m + b/M of the fusion head
  (`ModelOutput.contributions`; a linear head, late linear or cosine, else a ConfigError),
  rho_1 = s_1 / s_2, rho_2 = 1 / rho_1; the dominant modality u (rho_u > 1) has its encoder
  gradients multiplied by k_u = 1 - tanh(alpha * rho_u), the other by 1. It is tanh(alpha * rho),
  not tanh(alpha * (rho - 1)): k jumps from 1 to 1 - tanh(alpha) where dominance switches.
  OGM-GE then adds N(0, sigma^2) noise to *both* encoders' gradients, sigma = std of the original
  (unscaled) gradient tensor + 1e-8.
Scaled parameters: every parameter of `model.encoders[m]` (the fusion head, its bias and the
unimodal heads are never touched).

Defaults and sources:
  alpha = 0.8: OGM-GE README value for CREMA-D, the MLB configs (CREMA-D, AVE), and the MCR
    release's run.sh for UCF, MOSEI V-T, MOSI V-T and Sth-Sth (CREMA-D 1.0, AVE 0.6).
  ge = False: the MCR paper reports "OGM" and the MLB configs use plain OGM (the official
    repository's default is OGM-GE; set ge: true for it).
  start_epoch = 0, end_epoch = None (always on, inclusive window; as the MLB configs, 0-1500).
    The official default is epochs 0-50 of 100.

Deviations from the reference code:
  * Every encoder parameter is scaled (official: only 4-D conv weights; BalanceMM: every
    non-1-D parameter) -- the project's single rule for gradient-scaling baselines.
  * Exactly two modalities (the reference is two-modality only; BalanceMM's 3-modality variant is
    ad hoc). With three or more modalities construction raises a ConfigError.
  * Regression (no reference): s_m = 1 / MSE(f_m, y) of the sliced prediction, so that
    rho_1 = MSE_2 / MSE_1, as the authors' MLB regression port uses MSE ratios.
  * Scores are floored at 1e-12 (a fully underflowed softmax would divide by zero), and a
    one-element gradient gets sigma = 1e-8 (its sample std is undefined).
  * A tie (rho = 1) damps the second modality, exactly as the reference's `if rho_1 > 1 ... else`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mcrlib.config import ConfigError, check
from mcrlib.methods.base import Method, register

_FLOOR = 1e-12


def ogm_coefficients(score_1: float, score_2: float, *, alpha: float) -> tuple[float, float, float]:
    """(k_1, k_2, rho_1) for two scores (higher = better). Only the dominant modality is damped."""
    rho = max(score_1, _FLOOR) / max(score_2, _FLOOR)
    if rho > 1:
        return 1.0 - math.tanh(alpha * rho), 1.0, rho
    return 1.0, 1.0 - math.tanh(alpha / rho), rho


def sliced_logits(model, output) -> list[torch.Tensor]:
    """f_m = W_m z_m + b/M: each modality's share of the fused logits (`output.contributions`),
    detached, in fp32 (under bf16 autocast the forward pass made them bf16), in model order."""
    return [output.contributions[m].detach().float() for m in model.modalities]


@register("ogm")
class OGM(Method):
    display = "OGM"
    rank = 40

    @dataclass(frozen=True)
    class Params:
        alpha: float = 0.8              # modulation strength
        ge: bool = False                # add Gaussian noise (OGM-GE)
        start_epoch: int = 0            # first epoch with modulation (inclusive)
        end_epoch: int | None = None    # last epoch with modulation (inclusive); None: no end

        def __post_init__(self):
            check(self.alpha >= 0, "method.params.alpha", self.alpha, "a number >= 0")
            check(self.start_epoch >= 0, "method.params.start_epoch", self.start_epoch, "an epoch >= 0")
            check(self.end_epoch is None or self.end_epoch >= self.start_epoch, "method.params.end_epoch",
                  self.end_epoch, f"null or an epoch >= start_epoch ({self.start_epoch})")

    @classmethod
    def unsupported(cls, params, task, modalities):
        if len(modalities) != 2:
            return f"OGM's ratio compares exactly two modalities, not {len(modalities)}"
        return None

    def __init__(self, params, *, model, task="classification"):
        super().__init__(params, model=model, task=task)
        if len(model.modalities) != 2:
            raise ConfigError(f"method 'ogm' needs exactly two modalities, the model has "
                              f"{list(model.modalities)}; pick two modalities or use 'mlb'")
        # The scores read each modality's share of the fused logits (ModelOutput.contributions),
        # which only a linear head (late linear, cosine) has.
        if not model.fusion.additive:
            raise ConfigError(f"method 'ogm' needs a linear fusion head (model.fusion 'linear' or "
                              f"'cosine': logits that are a sum of per-modality shares W_m z_m + b/M), "
                              f"the model's head is {type(model.fusion).__name__}")
        self.diagnostics: dict[str, float] = {}

    def active(self) -> bool:
        return self.in_window(self.params.start_epoch, self.params.end_epoch)

    def scores(self, model, batch, output) -> list[float]:
        y = batch["label"]
        sliced = sliced_logits(model, output)
        if self.task == "regression":
            errors = [F.mse_loss(f.reshape(-1), y.float().reshape(-1)).item() for f in sliced]
            return [1.0 / max(e, _FLOOR) for e in errors]
        return [f.softmax(-1).gather(1, y.view(-1, 1)).sum().item() for f in sliced]

    def after_backward(self, model, batch, output):
        names = model.modalities
        k1, k2, rho = ogm_coefficients(*self.scores(model, batch, output), alpha=self.params.alpha)
        coefficients = dict(zip(names, (k1, k2))) if self.active() else dict.fromkeys(names, 1.0)
        self.diagnostics = {f"rho[{names[0]}]": rho, f"rho[{names[1]}]": 1.0 / rho,
                            **{f"k[{m}]": k for m, k in coefficients.items()}}
        if not self.active():
            return
        for m in names:
            for param in model.encoders[m].parameters():
                if param.grad is None:
                    continue
                g = param.grad
                if self.params.ge:
                    # The noise scale comes from the gradient *before* scaling (reference).
                    sigma = (g.std().item() if g.numel() > 1 else 0.0) + 1e-8
                    param.grad = g * coefficients[m] + torch.randn_like(g) * sigma
                else:
                    g.mul_(coefficients[m])
