"""MMPareto: boosting multimodal learning with innocent unimodal assistance.

Reference: Wei, Hu, "MMPareto: Boosting Multimodal Learning with Innocent Unimodal Assistance",
ICML 2024; code GeWu-Lab/MMPareto_ICML2024 (`code/MMPareto.py`, train_epoch;
`code/min_norm_solvers.py`, MinNormSolver); ported as `trainer/MMPareto_trainer.py` in
GeWu-Lab/BalanceBenchmark and `Bias_Infusion_MMPareto` in kkontras/MCR.

Loss: L_mm + sum_m L_m, all weights 1: L_mm = CE(f, y) on the fused logits, L_m = CE(u_m, y) on
modality m's own linear head (L1 for regression).
Backward (replaces the default sum-and-backward), for every encoder m, over its parameters:
  g_mm = grad L_mm and g_m = grad L_m, computed separately and flattened over the encoder;
  if cos(g_mm, g_m) > 0: (w1, w2) = (1/2, 1/2), else the min-norm point of the segment,
  argmin_{w1 + w2 = 1, w >= 0} ||w1 g_mm + w2 g_m|| (MinNormSolver, analytic for two vectors);
  direction d = 2 w1 g_mm + 2 w2 g_m;
  magnitude per parameter tensor t, with n0 = ||g_mm,t + g_m,t|| (the naive summed gradient):
  g_t = gamma * d_t * max(1, n0 / ||d_t||), i.e. (n0/||d_t||) d_t gamma if n0/||d_t|| > 1, else
  d_t gamma. Everything else (fusion head, unimodal heads, any parameter outside the encoders)
  gets the naive gradient of the summed loss.

Defaults and sources:
  gamma = 1.5: hard-coded `gamma=1.5` in the official train_epoch (BalanceBenchmark's `alpha`).
  The loss weights are 1 (official `loss = loss_mm + loss_a + loss_v`); there is no window
  (the official applies the rule at every step).

Optimiser: the official code trains with SGD (momentum 0.9, weight decay 1e-4, lr 2e-3, step
decay); here every method shares the study's optimiser (Adam in the quick profile), so that all
methods have one budget. With Adam the rescale to the naive norm matters less: Adam normalises
each parameter's step by its own running gradient scale.

Deviations from the reference code:
  * Two backward passes (grad of L_mm, grad of sum_m L_m) instead of one per loss plus one of the
    total: encoder m reaches only L_mm and L_m, so the encoder-m part of grad sum_m L_m is exactly
    grad L_m, and the naive gradient is g_mm + g_m (the reference's last pass, up to rounding).
    The gradients come from torch.autograd.grad, never from accumulated .grad.
  * Two or more modalities: each encoder has its own pair (L_mm, L_m) (the reference: audio and
    visual only). Encoder m is `model.encoders[m]` (reference: parameter names containing
    'audio'/'visual' and not 'head').
  * Where d_t = 0 the tensor gets no gradient (a Pareto-stationary point for it). The reference
    writes NaN there only when the summed gradient is not 0 (n0 / ||d_t|| = n0 / 0); where neither
    loss gives the tensor a gradient (n0 = 0 too) it gives 0, as here.
  * Regression (no reference): every loss is L1.
  * The branch test is on the dot product (same sign as the cosine) and the solver's weights are
    computed on the device, without the reference's `.cpu()` per dot product (host syncs).
  The solver's edge values 0.999 / 0.001 are kept; in the conflict branch they occur only when one
  of the two gradients is exactly zero.
  BalanceBenchmark's port bugs are avoided: it never zeroed .grad between the per-loss backward
  passes (its "unimodal" gradient contained the multimodal one), and in the conflict branch it
  discarded the solver's weights, so d = 0 and the rescale divided by zero (NaN).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from mcrlib.config import ConfigError, check
from mcrlib.methods.base import Method, register, task_loss


def min_norm_weight(aa: torch.Tensor, ab: torch.Tensor, bb: torch.Tensor) -> torch.Tensor:
    """c minimising ||c a + (1 - c) b|| over c in [0, 1], from <a,a>, <a,b>, <b,b>, exactly as
    MinNormSolver._min_norm_element_from2 (with its 0.999 / 0.001 at the ends)."""
    denom = aa + bb - 2 * ab   # ||a - b||^2, > 0 wherever the interior branch is taken
    interior = (bb - ab) / torch.where(denom > 0, denom, torch.ones_like(denom))
    return torch.where(ab >= aa, 0.999, torch.where(ab >= bb, 0.001, interior))


def pareto_gradients(g_mm: list[torch.Tensor], g_uni: list[torch.Tensor], gamma: float,
                     sizes: torch.Tensor | None = None):
    """(gradients, cos, w1) for one encoder from its per-tensor gradients of L_mm and of L_m.
    `sizes`: the tensors' numels on the device (cached by the caller; built here if None)."""
    numels = [g.numel() for g in g_mm]
    a = torch.cat([g.reshape(-1) for g in g_mm])
    b = torch.cat([g.reshape(-1) for g in g_uni])
    aa, ab, bb = a.dot(a), a.dot(b), b.dot(b)
    cos = ab / (aa.sqrt() * bb.sqrt()).clamp_min(1e-12)
    # torch.where, not `if`: the branch is taken on the device (no host sync per step)
    w1 = torch.where(ab > 0, 0.5, min_norm_weight(aa, ab, bb))
    d = (2 * w1) * a + (2 * (1 - w1)) * b
    n0 = torch.stack(torch._foreach_norm((a + b).split(numels)))
    nd = torch.stack(torch._foreach_norm(d.split(numels)))
    ratio = torch.where(nd > 0, n0 / torch.where(nd > 0, nd, torch.ones_like(nd)), 1.0)
    scale = gamma * ratio.clamp_min(1.0)
    if sizes is None:
        sizes = torch.tensor(numels, device=d.device)
    g = d * scale.repeat_interleave(sizes, output_size=d.numel())
    return [part.view_as(x) for part, x in zip(g.split(numels), g_mm)], cos, w1


def _add_grad(param: torch.Tensor, grad: torch.Tensor) -> None:
    # as .backward() does: into .grad (None after the trainer's zero_grad), accumulating otherwise
    if param.grad is None:
        param.grad = grad
    else:
        param.grad.add_(grad)


@register("mmpareto")
class MMPareto(Method):
    display = "MMPareto"
    rank = 110

    @dataclass(frozen=True)
    class Params:
        gamma: float = 1.5              # magnitude factor (official train_epoch: gamma = 1.5)

        def __post_init__(self):
            check(self.gamma > 0, "method.params.gamma", self.gamma, "a number > 0")

    def __init__(self, params, *, model, task="classification"):
        super().__init__(params, model=model, task=task)
        if len(model.modalities) < 2:
            raise ConfigError(f"method 'mmpareto' balances two or more modalities, the model has "
                              f"{list(model.modalities)}")
        self.diagnostics: dict[str, torch.Tensor] = {}
        self._sizes: dict[tuple, torch.Tensor] = {}   # per encoder: its tensors' numels, on the device

    def loss(self, model, batch, output):
        y = batch["label"]
        uni = sum(task_loss(u, y, self.task) for u in output.unimodal_logits.values())
        return {"task": task_loss(output.logits, y, self.task), "unimodal": uni}

    def backward(self, terms, model):
        params = [p for p in [*model.parameters(), *self.parameters()] if p.requires_grad]
        # Separate gradients of the two objectives (never read from accumulated .grad).
        g_mm = torch.autograd.grad(terms["task"], params, retain_graph=True, allow_unused=True)
        g_uni = torch.autograd.grad(terms["unimodal"], params, allow_unused=True)
        index = {id(p): i for i, p in enumerate(params)}
        in_encoder = set()
        diagnostics = {}
        for m in model.modalities:
            enc = [(index[id(p)], p) for p in model.encoders[m].parameters() if id(p) in index]
            enc = [(i, p) for i, p in enc if g_mm[i] is not None or g_uni[i] is not None]
            in_encoder.update(i for i, _ in enc)
            if not enc:
                continue
            a = [g_mm[i] if g_mm[i] is not None else torch.zeros_like(p) for i, p in enc]
            b = [g_uni[i] if g_uni[i] is not None else torch.zeros_like(p) for i, p in enc]
            key = (m, a[0].device, tuple(x.numel() for x in a))
            if key not in self._sizes:   # built once: a host-to-device copy per step is avoided
                self._sizes[key] = torch.tensor(key[2], device=a[0].device)
            grads, cos, w1 = pareto_gradients(a, b, self.params.gamma, self._sizes[key])
            for (_, p), g in zip(enc, grads):
                _add_grad(p, g)
            diagnostics[f"pareto_cos[{m}]"] = cos.detach()
            diagnostics[f"pareto_w_mm[{m}]"] = w1.detach()
        for i, p in enumerate(params):
            if i in in_encoder:
                continue
            parts = [g for g in (g_mm[i], g_uni[i]) if g is not None]
            if parts:
                _add_grad(p, sum(parts))
        self.diagnostics = diagnostics
