"""Divergences between the clean and the perturbed prediction.

The `_rows` forms return one value per row and broadcast the second argument over the first's
leading dimensions, so L_MIPD evaluates every (modality, subset, copy) against one (B, C)
reference in a single call; `jsd` and `mse_divergence` are their means over rows.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LN2 = math.log(2.0)


class _JSDRows(torch.autograd.Function):
    """JSD per row with a hand-written backward pass. With g_p = log p - log m,
    dJSD/dp = g_p / 2 and, through the softmax, dJSD/da = p * (g_p - KL(p||m)) / 2 for p's
    logits a (likewise for q). Autograd through the composed ops runs ~20 element-wise kernels
    on the P*B*C logits; this runs 8, which is most of L_MIPD's cost on small models
    (docs/performance.md)."""

    @staticmethod
    def forward(ctx, logits_p, logits_q):
        log_p = torch.log_softmax(logits_p, dim=-1)
        log_q = torch.log_softmax(logits_q, dim=-1)
        log_m = torch.logaddexp(log_p, log_q).sub_(LN2)      # log of the mixture m = (p + q) / 2
        p, q = log_p.exp(), log_q.exp()
        g_p, g_q = log_p - log_m, log_q - log_m               # broadcast: either side may be (B, C)
        kl_p, kl_q = (p * g_p).sum(-1, keepdim=True), (q * g_q).sum(-1, keepdim=True)
        ctx.save_for_backward(p, q, g_p, g_q, kl_p, kl_q)
        ctx.shapes = logits_p.shape, logits_q.shape
        return (kl_p + kl_q).squeeze(-1).mul_(0.5)

    @staticmethod
    def backward(ctx, grad):
        p, q, g_p, g_q, kl_p, kl_q = ctx.saved_tensors
        shape_p, shape_q = ctx.shapes
        half = grad.unsqueeze(-1) * 0.5
        grad_p = grad_q = None
        if ctx.needs_input_grad[0]:
            grad_p = (p * (g_p - kl_p) * half).sum_to_size(shape_p)
        if ctx.needs_input_grad[1]:
            grad_q = (q * (g_q - kl_q) * half).sum_to_size(shape_q)
        return grad_p, grad_q


def jsd_rows(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence of softmax(logits_p) and softmax(logits_q) per row: natural
    log, summed over the last (class) dimension; in [0, ln 2]. The arguments broadcast against
    each other (each softmax runs on its own, unbroadcast rows); gradients come back in each
    argument's own shape."""
    return _JSDRows.apply(logits_p, logits_q)


def jsd_rows_reference(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """`jsd_rows` composed from PyTorch's ops (F.kl_div), differentiated by autograd: the
    reference the tests hold the fused form to."""
    log_p = F.log_softmax(logits_p, dim=-1)
    log_q = F.log_softmax(logits_q, dim=-1)
    log_m = torch.logaddexp(log_p, log_q) - LN2
    kl_pm = F.kl_div(log_m, log_p, reduction="none", log_target=True)
    kl_qm = F.kl_div(log_m, log_q, reduction="none", log_target=True)
    return 0.5 * (kl_pm + kl_qm).sum(-1)


def jsd(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """`jsd_rows` averaged over rows (PyTorch's "batchmean" of the two KL terms)."""
    return jsd_rows(logits_p, logits_q).mean()


def mse_rows(pred_p: torch.Tensor, pred_q: torch.Tensor) -> torch.Tensor:
    """The regression counterpart (the release's MCR_Reg): squared difference per row, averaged
    over the last dimension."""
    return (pred_p - pred_q).square().mean(-1)


def mse_divergence(pred_p: torch.Tensor, pred_q: torch.Tensor) -> torch.Tensor:
    """Mean squared difference (F.mse_loss): `mse_rows` averaged over rows."""
    return mse_rows(pred_p, pred_q).mean()
