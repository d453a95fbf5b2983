"""Divergences between the clean and the perturbed prediction."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LN2 = math.log(2.0)


def jsd(logits_p: torch.Tensor, logits_q: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon divergence of softmax(logits_p) and softmax(logits_q): natural log,
    summed over classes, averaged over rows; in [0, ln 2]."""
    log_p = F.log_softmax(logits_p, dim=-1)
    log_q = F.log_softmax(logits_q, dim=-1)
    # log of the mixture m = (p + q) / 2, computed stably in log space
    log_m = torch.logsumexp(torch.stack([log_p, log_q]), dim=0) - LN2
    kl_pm = F.kl_div(log_m, log_p, reduction="batchmean", log_target=True)
    kl_qm = F.kl_div(log_m, log_q, reduction="batchmean", log_target=True)
    return 0.5 * (kl_pm + kl_qm)


def mse_divergence(pred_p: torch.Tensor, pred_q: torch.Tensor) -> torch.Tensor:
    """The regression counterpart (the release's MCR_Reg): mean squared difference."""
    return F.mse_loss(pred_p, pred_q)
