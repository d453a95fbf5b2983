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


def jsd_rows(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence of softmax(logits_p) and softmax(logits_q) per row: natural
    log, summed over the last (class) dimension; in [0, ln 2]."""
    log_p = F.log_softmax(logits_p, dim=-1)
    log_q = F.log_softmax(logits_q, dim=-1)
    # log of the mixture m = (p + q) / 2, computed stably in log space
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
