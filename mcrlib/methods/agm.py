"""AGM: Adaptive Gradient Modulation.

Reference: Li, Li, Hu, Wu, Liu, Liu, "Boosting Multi-modal Model Performance with Adaptive
Gradient Modulation", ICCV 2023; code lihong2303/AGM_ICCV2023 (`model/CREMAD_net.py` GradMod,
`run/CREMAD_main.py`); ported as `Bias_Infusion_AGM` in kkontras/MLB and kkontras/MCR.

Loss: CE(f, y) only. After backward, each step (all detached):
  mono-modal logits from zero-input passes (the model in eval mode, inputs of the absent
  modalities zeroed), M = 2: phi_1 = 1/2 [f(x1,x2) - f(0,x2) + f(x1,0)], phi_2 likewise, so
  phi_1 + phi_2 = f(x1,x2) and CE(phi_1 + phi_2) is the trained loss;
  s_m = mean_i -log max(softmax(phi_m)[y_i], 1e-8);  r_m = exp(M/(M-1) (mean(s) - s_m));
  target r*_m: the same formula on S_m, the mean of s_m over every step since the start
  (updated *after* the coefficient, as the official code); c_m = exp(alpha * min(r*_m - r_m, cap)).
  A modality doing better now than its history (r_m > r*_m) gets c_m < 1, a lagging one c_m > 1.
  (The official sign; BalanceMM's exp(M/(M-1)(s_m - mean(s))) inverts the ratio.)
  Then, as the official code: if any element of the fusion-head weight gradient (every weight
  matrix of `model.fusion`; not its bias) is outside [-clip, clip], the gradient norm of all
  model parameters is clipped to `clip`.
Fusion head: a linear one (model.fusion 'linear' or 'cosine'), as the official fc_out; a head
that mixes the modalities (ARM's) is refused with a ConfigError.
Scaled parameters: every parameter of `model.encoders[m]`, by c_m, in `after_backward`. With CE
of the fused logits as the only loss, encoder m receives gradient only through z_m, so scaling its
parameters' gradients equals a tensor hook multiplying dL/dz_m by c_m; doing it after backward
keeps the order "scale, then clip" explicit and uses the package's rule for gradient methods.
The fusion head, its bias and the (untrained) unimodal heads are not scaled.

Defaults and sources: alpha = 1.5 (the author's CREMA-D value, lihongcs/AGM#10, and the MLB
configs for CREMA-D/AVE; AV-MNIST 2.5, UR-Funny 4.0, MLB UCF101 0.8); cap = 10 and clip = 1 (official
code; BalanceMM uses 7 and 5). Always on (the author's window 0-1500 covers every epoch).

Deviations from the reference code:
  * Official: the zero-input passes keep their graph and identity modules with backward hooks
    scale dL/dphi_m by c_m. Then encoder m also gets (c_other - c_m)/2 times the gradient through
    its zero-input output z_m(0), and W_m is scaled too. Here the zero-input passes run without
    gradient, so encoder m gets exactly c_m times its joint-training gradient. This matches the
    notes' summary of the official code's net effect under a linear head.
  * M > 2 (the official code is 2-modality only): exact Shapley values over zero-input coalitions
    with v(empty) := 0, so sum_m phi_m = f(x) (the M = 2 case is the official formula). The MCR
    port's 3-modality variant uses cap 7 and updates S before the target; here the order stays official.
  * Regression (no official variant): s_m = L1(phi_m, y), a loss-like score like the CE.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import torch
import torch.nn.functional as F

from mcrlib.config import ConfigError, check
from mcrlib.methods.base import Method, register

_LOG_FLOOR = math.log(1e-8)  # official: probabilities below 1e-8 count as 1e-8


def agm_coefficients(scores: torch.Tensor, running: torch.Tensor, *, alpha: float,
                     cap: float) -> torch.Tensor:
    """c_m = exp(alpha * min(r*_m - r_m, cap)) from loss-like scores (lower = better)."""
    k = len(scores) / (len(scores) - 1)
    ratio = torch.exp(k * (scores.mean() - scores))
    target = torch.exp(k * (running.mean() - running))
    return torch.exp(alpha * torch.clamp(target - ratio, max=cap))


@torch.no_grad()
def mono_modal_logits(model, batch, fused: torch.Tensor) -> list[torch.Tensor]:
    """phi_m = sum over coalitions S without m of |S|!(M-|S|-1)!/M! [v(S+m) - v(S)], with
    v(S) = f(x_S, 0_rest) from eval-mode passes, v(all) = `fused` and v(empty) := 0."""
    names = model.modalities
    M = len(names)
    values = {frozenset(names): fused.detach()}
    was_training = model.training
    model.eval()  # the official padded passes run in eval mode
    for size in range(1, M):
        for kept in combinations(names, size):
            inputs = {m: batch[m] if m in kept else torch.zeros_like(batch[m]) for m in names}
            values[frozenset(kept)] = model(inputs).logits
    model.train(was_training)
    phi = []
    for m in names:
        others = [o for o in names if o != m]
        total = torch.zeros_like(fused)
        for size in range(M):
            weight = math.factorial(size) * math.factorial(M - size - 1) / math.factorial(M)
            for coalition in combinations(others, size):
                without = values.get(frozenset(coalition), 0.0)  # v(empty) := 0
                total = total + weight * (values[frozenset(coalition) | {m}] - without)
        phi.append(total)
    return phi


@register("agm")
class AGM(Method):
    display = "AGM"
    rank = 50

    @dataclass(frozen=True)
    class Params:
        alpha: float = 1.5   # modulation strength
        cap: float = 10.0    # upper bound on r*_m - r_m inside the exponent
        clip: float = 1.0    # fusion-head gradient threshold and global max norm; 0: no clipping

        def __post_init__(self):
            check(self.alpha >= 0, "method.params.alpha", self.alpha, "a number >= 0")
            check(self.cap > 0, "method.params.cap", self.cap, "a number > 0")
            check(self.clip >= 0, "method.params.clip", self.clip, "a number >= 0 (0 disables clipping)")

    @classmethod
    def modalities(cls, params, available):
        if len(available) < 2:
            raise ConfigError(f"method 'agm' needs at least two modalities, got {list(available)}")
        return available

    def __init__(self, params, *, model, task="classification"):
        super().__init__(params, model=model, task=task)
        M = len(model.modalities)
        if M < 2:
            raise ConfigError(f"method 'agm' needs at least two modalities, got {list(model.modalities)}")
        # The official method has a late-linear head (fc_out), whose weight gradient the clipping
        # check reads; a head that mixes the modalities (ARM's) is outside what it defines.
        if not model.fusion.additive:
            raise ConfigError(f"method 'agm' needs a linear fusion head (model.fusion 'linear' or "
                              f"'cosine': logits that are a sum of per-modality shares W_m z_m + b/M), "
                              f"the model's head is {type(model.fusion).__name__}")
        # S_m and the number of steps behind it: buffers, so a resumed run continues the means.
        self.register_buffer("running_score", torch.zeros(M, dtype=torch.float64))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.diagnostics: dict[str, float] = {}

    def scores(self, phi: list[torch.Tensor], y: torch.Tensor) -> torch.Tensor:
        if self.task == "regression":
            per = [F.l1_loss(p.reshape(-1), y.float().reshape(-1)) for p in phi]
        else:
            per = [-p.log_softmax(-1).gather(1, y.view(-1, 1)).clamp(min=_LOG_FLOOR).mean() for p in phi]
        return torch.stack(per).double().to(self.running_score.device)

    def update(self, scores: torch.Tensor) -> torch.Tensor:
        """The coefficients for this step's scores, then S <- S t/(t+1) + s/(t+1) (official order)."""
        coeffs = agm_coefficients(scores, self.running_score, alpha=self.params.alpha, cap=self.params.cap)
        t = self.steps.item()
        self.running_score.mul_(t / (t + 1)).add_(scores / (t + 1))
        self.steps.add_(1)
        return coeffs

    def after_backward(self, model, batch, output):
        names = model.modalities
        scores = self.scores(mono_modal_logits(model, batch, output.logits), batch["label"])
        coeffs = self.update(scores)
        for m, c in zip(names, coeffs.tolist()):
            for param in model.encoders[m].parameters():
                if param.grad is not None:
                    param.grad.mul_(c)
        clipped = 0.0
        # The official check reads the fusion head's weight gradient (fc_out.weight, not its
        # bias): here every weight matrix W_m of the additive head that has a gradient.
        head = [p.grad for p in model.fusion.branch_weights() if p.grad is not None]
        # one device sync for the whole check
        if self.params.clip > 0 and head and torch.stack([g.abs().max() for g in head]).max() > self.params.clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=self.params.clip)
            clipped = 1.0
        self.diagnostics = {**{f"s[{m}]": s for m, s in zip(names, scores.tolist())},
                            **{f"c[{m}]": c for m, c in zip(names, coeffs.tolist())},
                            "clipped": clipped}
