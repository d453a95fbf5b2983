"""PMR, Prototypical Modal Rebalance (Fan et al., CVPR 2023; code fanyunfeng-bit/Modal-Imbalance-PMR,
`main_Prototype_grad.py`, the version implemented here).

What it changes: the objective. Before each epoch, every modality gets class prototypes
c_{m,k} = mean encoder feature of class k, taken in eval mode without gradient over the first
`prototype_fraction` of the epoch's training batches. Prototype logits are -||z_m - c_{m,k}||_2
(Euclidean, not squared). Per batch, score_m = sum_i softmax(-dist_m)_i[y_i] and
rho = score_1 / score_2; the slower modality (rho > 1: modality 2, rho < 1: modality 1, rho = 1:
none) gets the prototype cross-entropy: L = CE(h, y) + alpha * CE(-dist_slow, y). This hard switch
is the code's; the paper's rho-dependent weight and its entropy regulariser are not in it.
Which parameters it moves: the prototype term reaches only the slow modality's encoder (the
prototypes are constants); the fusion head sees CE(h, y) only.

Defaults (argparse of main_Prototype_grad.py, notes-peers.md section 3): alpha 1.0 (the scripts
use 2.0-3.0 on CREMA-D, MLB 1.75/3, BalanceMM 0.6), momentum 0.2 (`momentum_coef`; scripts 0.0,
BalanceMM 0.5), prototype_fraction 0.1 (`all_num // 10` batches), window start_epoch 0 to
end_epoch 100 inclusive (`modulation_starts/ends`; the scripts end at 70).

Deviations from the reference code:
- Momentum: c <- (1 - momentum) c_new + momentum c_old. The code recomputes prototypes after
  each epoch with that epoch's index and blends only when the index is >= 1, so the prototypes
  used in epochs 0 and 1 are unblended; here they are computed at the start of epoch e and
  blended from e >= 2, which reproduces that schedule.
- The prototype batches are the first batches of the coming epoch's own shuffle (the trainer's
  `state.loader("train")`), not a separate shuffle. If a class is absent from them (the code
  divides by zero and gets NaN), further batches are read until every class has appeared.
- M > 2 modalities (not in the code): every modality whose score is the lowest gets the term,
  unless all scores are equal. For M = 2 this is the code's switch.
- Classification only (prototypes need classes).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from mcrlib.config import ConfigError, check
from mcrlib.methods.base import Method, register, task_loss


def prototype_logits(z: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """-||z_i - c_k||_2 for every sample i and class k (B, C). The exact, non-matmul distance:
    the matmul form can return small non-zero distances for identical vectors."""
    return -torch.cdist(z, prototypes, compute_mode="donot_use_mm_for_euclid_dist")


@register("pmr")
class PMR(Method):
    display = "PMR"
    rank = 80

    @dataclass(frozen=True)
    class Params:
        # Defaults: the argparse of main_Prototype_grad.py.
        alpha: float = 1.0               # weight of the slow modality's prototype CE
        momentum: float = 0.2            # `momentum_coef`: share of the old prototypes kept (epoch >= 2)
        prototype_fraction: float = 0.1  # `all_num // 10`: share of the train batches in the prototypes
        start_epoch: int = 0             # the prototype term is active for start <= epoch <= end
        end_epoch: int = 100             # modulation_starts / modulation_ends, inclusive

        def __post_init__(self):
            check(self.alpha >= 0, "method.params.alpha", self.alpha, "a weight >= 0")
            check(0 <= self.momentum < 1, "method.params.momentum", self.momentum, "a number in [0, 1)")
            check(0 < self.prototype_fraction <= 1, "method.params.prototype_fraction",
                  self.prototype_fraction, "a fraction in (0, 1]")
            check(self.start_epoch >= 0, "method.params.start_epoch", self.start_epoch, "an integer >= 0")
            check(self.end_epoch >= self.start_epoch, "method.params.end_epoch", self.end_epoch,
                  f"an integer >= start_epoch={self.start_epoch}")

    @classmethod
    def unsupported(cls, params, task, modalities):
        if task != "classification":
            return "PMR's prototypes are class means: classification only"
        return None

    def __init__(self, params, *, model, task="classification"):
        super().__init__(params, model=model, task=task)
        if task != "classification":
            raise ConfigError("method.name='pmr' needs a classification task: its prototypes are class means")
        self.names = tuple(model.modalities)
        # Buffers, so a resumed run blends with the prototypes the interrupted run had.
        for i, m in enumerate(self.names):
            self.register_buffer(f"prototypes_{i}", torch.zeros(model.n_classes, model.encoders[m].out_dim))
        self.diagnostics: dict[str, float] = {}
        self._n_train_batches: int | None = None

    def prototypes(self, m: str) -> torch.Tensor:
        return getattr(self, f"prototypes_{self.names.index(m)}")

    @torch.no_grad()
    def compute_prototypes(self, model, batches, n_batches: int) -> dict[str, torch.Tensor]:
        """Class means of each modality's features over the first `n_batches` batches (more if a
        class has not appeared yet). Classes never seen keep their current prototype."""
        n_classes = model.n_classes
        device = self.prototypes_0.device
        sums = {m: torch.zeros_like(self.prototypes(m)) for m in self.names}
        counts = torch.zeros(n_classes, device=device)
        was_training = model.training
        model.eval()  # the code's prototypes are eval-mode features (no dropout, BN running stats)
        for i, batch in enumerate(batches):
            if i >= n_batches and bool((counts > 0).all()):
                break
            y = batch["label"].to(device)
            z = model.encode({m: batch[m].to(device) for m in self.names})
            counts += torch.bincount(y, minlength=n_classes).float()
            for m in self.names:
                sums[m].index_add_(0, y, z[m].float())
        model.train(was_training)
        seen = (counts > 0).unsqueeze(1)
        return {m: torch.where(seen, sums[m] / counts.clamp(min=1).unsqueeze(1), self.prototypes(m))
                for m in self.names}

    def on_epoch_start(self, state):
        super().on_epoch_start(state)
        # floor, as the code's `all_num // 10`, but at least one batch; 1e-9 absorbs float error
        n_batches = max(1, math.floor(self.n_train_batches(state) * self.params.prototype_fraction + 1e-9))
        fresh = self.compute_prototypes(state.model, state.loader("train"), n_batches)
        mu = self.params.momentum if state.epoch >= 2 else 0.0
        for m in self.names:
            self.prototypes(m).copy_((1 - mu) * fresh[m] + mu * self.prototypes(m))

    def n_train_batches(self, state) -> int:
        """Batches in a training epoch: fixed within a run, so counted once, by a pass over
        `state.loader("train")` (the EpochState does not carry the count). The pass runs under a
        forked RNG: opening a DataLoader draws from torch's global generator, and training must
        see the same draws as without the count."""
        if self._n_train_batches is None:
            with torch.random.fork_rng(devices=[]):
                self._n_train_batches = sum(1 for _ in state.loader("train"))
        return self._n_train_batches

    def slow_modalities(self, scores: torch.Tensor) -> list[str]:
        """The modalities whose prototype score is lowest; none when all scores are equal."""
        low = scores.min()
        if bool((scores == low).all()):
            return []
        return [m for m, s in zip(self.names, scores) if s == low]

    def loss(self, model, batch, output):
        y = batch["label"]
        terms = {"task": task_loss(output.logits, y, self.task)}
        logits = {m: prototype_logits(output.latents[m], self.prototypes(m)) for m in self.names}
        # score_m = sum_i p_proto,m(y_i); only their order matters (rho > 1 or < 1)
        scores = torch.stack([F.softmax(logits[m].detach(), 1).gather(1, y[:, None]).sum() for m in self.names])
        active = self.in_window(self.params.start_epoch, self.params.end_epoch)
        slow = self.slow_modalities(scores) if active else []
        proto = output.logits.new_zeros(())
        for m in slow:
            proto = proto + F.cross_entropy(logits[m], y)
        terms["prototype"] = self.params.alpha * proto
        self.diagnostics = {f"pmr_slow[{m}]": float(m in slow) for m in self.names}
        if len(self.names) == 2:
            self.diagnostics["pmr_rho"] = (scores[0] / scores[1].clamp(min=1e-30)).item()
        return terms
