"""D&R: Diagnosing & Re-learning.

Reference: Wei, Li, Hu, "Diagnosing and Re-learning for Balanced Multimodal Learning", ECCV 2024;
code GeWu-Lab/Diagnosing_Relearning_ECCV2024 (`code/ours.py`, known here from the project's notes,
notes-peers.md §10); ported by the same lab as `balancemm/trainer/ReLearning_trainer.py` in
GeWu-Lab/BalanceBenchmark (BalanceMM, read here: the details below marked "BalanceMM") and as
`Bias_Infusion_DnR` in kkontras/MCR.

Loss: CE(f, y) on the fused logits only (joint training). θ_init, every encoder's parameters at
the start of training (after any `initialise`), is copied when the method is built and kept as
buffers, so it is checkpointed with the method and a resumed run re-learns towards the same θ_init.
Diagnosis, in on_epoch_end of epoch e (0-based), when e > 0, e % reinit_epoch == 0 and
e // reinit_epoch <= reinit_num (so at most reinit_num times: epochs R, 2R, ..., reinit_num·R):
  1. with the model in eval mode and no gradient, the encoder features z_m of the train split and
     of the val split;
  2. per split and modality: each feature dimension min-max scaled to [-1, 1] over that split
     (scikit-learn's MinMaxScaler(feature_range=(-1, 1)) fitted on the split itself, as
     BalanceMM; a constant dimension maps to -1), KMeans with k = number of classes, and the
     cluster purity = sum over clusters of the majority label's count / n;
  3. Δ_m = |purity_train_m - purity_val_m| (each from modality m's OWN features),
     w_m = tanh(move_lambda · Δ_m);
  4. every parameter of encoder m: θ ← w_m θ_init + (1 - w_m) θ_current.
A modality that clusters its train data much better than its val data is memorising (the
diagnosis); pulling it back towards its initialisation lets it re-learn (the re-learning).

Defaults and sources:
  move_lambda = 3.0, reinit_epoch = 20, reinit_num = 3: official `ours.py` (90 epochs, so re-inits
    at epochs 20, 40 and 60). BalanceMM uses 3 / 15 / 2.
  KMeans: n_init = 10. BalanceMM leaves it to scikit-learn's default, 10 starts before 1.4 and
    one k-means++ start since; 10 makes the purity, hence w, depend less on one start (the cost:
    10 clusterings per split, modality and diagnosis, on the CPU). random_state from the run's
    seed and the epoch (BalanceMM: 0), the same for the train and the val clustering.
  Budget: the embedded profiles train 6-60 epochs with early stopping (patience 10). With
    reinit_epoch >= max_epochs (or early stopping before epoch reinit_epoch) D&R never acts and is
    joint training; short runs need reinit_epoch set in the study's params (about 2/9 of
    max_epochs keeps the official schedule's shape: 20, 40, 60 of 90).

Optimiser: the official code trains with SGD (momentum 0.9, weight decay 1e-4, lr 2e-3, step
decay); here every method shares the study's optimiser (Adam in the quick profile), so that all
methods have one budget.

Timing, as the official code: the diagnosis and re-initialisation run after the epoch's
validation (on_epoch_end): the official GeWu-Lab code re-initialises after its per-epoch
evaluation and checkpointing, so the epoch's record and selection see the trained model and the
re-initialised one is first validated after the next epoch. (BalanceMM's port diagnoses before
the epoch's validation instead.) The re-init lands before the epoch's checkpoint here, so a
resumed run is exact.

Deviations from the reference code:
  * Re-initialised parameters: every parameter of `model.encoders[m]` (BalanceMM: every
    parameter whose name contains the modality). Buffers (batch norm statistics), the heads, the
    fusion and the optimizer state are left as they are, as in BalanceMM.
  * The train features come through the trainer's train loader, in the epoch's order, without
    augmentation, its last partial batch dropped (up to batch_size - 1 samples not clustered).
  * Regression (no reference; CMU-MOSI/MOSEI): k = 2 and purity against the label's sign, zero
    labels left out, as the project's binary accuracy.
  * The MCR port computes the audio val purity from the visual features; here each modality's
    val purity comes from its own features.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from mcrlib.config import check
from mcrlib.methods.base import EpochState, Method, register

KMEANS_N_INIT = 10


def purity(clusters, labels) -> float:
    """Cluster purity: for each cluster the count of its most frequent label, summed, over n.
    Cluster ids and labels may be any integers (negative too, gaps allowed)."""
    clusters, labels = np.asarray(clusters).ravel(), np.asarray(labels).ravel()
    if len(clusters) != len(labels) or len(labels) == 0:
        raise ValueError(f"purity of {len(clusters)} cluster ids against {len(labels)} labels")
    _, c = np.unique(clusters, return_inverse=True)
    _, y = np.unique(labels, return_inverse=True)
    counts = np.zeros((c.max() + 1, y.max() + 1), dtype=np.int64)
    np.add.at(counts, (c, y), 1)
    return float(counts.max(axis=1).sum() / len(labels))


def cluster_purity(features: np.ndarray, labels: np.ndarray, k: int, random_state: int) -> float:
    """Purity of KMeans(k) on `features` min-max scaled to [-1, 1] per dimension."""
    from sklearn.cluster import KMeans               # here: importing the method imports no sklearn
    from sklearn.preprocessing import MinMaxScaler
    scaled = MinMaxScaler(feature_range=(-1, 1)).fit_transform(np.asarray(features, dtype=np.float64))
    clusters = KMeans(n_clusters=k, n_init=KMEANS_N_INIT, random_state=random_state).fit_predict(scaled)
    return purity(clusters, labels)


def reinit_weight(purity_train: float, purity_val: float, move_lambda: float) -> tuple[float, float]:
    """(Δ, w): the purity gap and the re-initialisation weight tanh(move_lambda · Δ)."""
    gap = abs(purity_train - purity_val)
    return gap, math.tanh(move_lambda * gap)


@torch.no_grad()
def soft_reinit(params, init, w: float) -> None:
    """θ ← w θ_init + (1 - w) θ for each parameter, in place."""
    for p, p0 in zip(params, init, strict=True):
        p.copy_(w * p0 + (1 - w) * p)


def diagnoses_at(epoch: int, reinit_epoch: int, reinit_num: int) -> bool:
    """Whether epoch `epoch` (0-based) ends with a diagnosis: every reinit_epoch epochs, epoch > 0,
    at most reinit_num times (BalanceMM's counter, which counts every multiple, is epoch // R)."""
    return epoch > 0 and epoch % reinit_epoch == 0 and epoch // reinit_epoch <= reinit_num


@torch.no_grad()
def encoder_features(model, batches, task: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """({m: z_m (n, d)}, cluster labels (n,)) of every batch, the model in eval mode (its mode is
    restored after). Regression: the label's sign, zero labels left out."""
    was_training = model.training
    model.eval()
    try:
        feats: dict[str, list[torch.Tensor]] = {m: [] for m in model.modalities}
        labels = []
        for batch in batches:
            latents = model.encode(batch)
            for m in model.modalities:
                feats[m].append(latents[m].float())
            labels.append(batch["label"])
    finally:
        model.train(was_training)
    y = torch.cat(labels).cpu()   # one transfer per split, once per diagnosis
    z = {m: torch.cat(v).cpu().numpy() for m, v in feats.items()}
    if task == "regression":
        keep = (y != 0).numpy()
        return {m: v[keep] for m, v in z.items()}, (y[keep] > 0).long().numpy()
    return z, y.numpy()


class _Snapshot(nn.Module):
    """A copy of a module's parameters as buffers p0, p1, ... (in `parameters()` order), so that
    it travels with the method's state_dict (checkpoints) and its device."""

    def __init__(self, module: nn.Module):
        super().__init__()
        for i, p in enumerate(module.parameters()):
            self.register_buffer(f"p{i}", p.detach().clone())

    def tensors(self) -> list[torch.Tensor]:
        return list(self.buffers())


@register("dnr")
class DnR(Method):
    display = "D&R"
    rank = 130

    @dataclass(frozen=True)
    class Params:
        move_lambda: float = 3.0        # λ in w_m = tanh(λ Δ_m) (official ours.py; BalanceMM 3)
        reinit_epoch: int = 20          # diagnose every this many epochs (official; BalanceMM 15)
        reinit_num: int = 3             # at most this many diagnoses (official; BalanceMM 2)

        def __post_init__(self):
            check(self.move_lambda >= 0, "method.params.move_lambda", self.move_lambda, "a number >= 0")
            check(self.reinit_epoch >= 1, "method.params.reinit_epoch", self.reinit_epoch, "an integer >= 1")
            check(self.reinit_num >= 0, "method.params.reinit_num", self.reinit_num, "an integer >= 0")

    def __init__(self, params, *, model, task="classification"):
        super().__init__(params, model=model, task=task)
        # θ_init: the encoders as they start training (built here, after `initialise`).
        self.theta_init = nn.ModuleDict({m: _Snapshot(model.encoders[m]) for m in model.modalities})
        self.n_clusters = 2 if task == "regression" else model.n_classes
        self.diagnostics: dict[str, float] = {}

    def on_epoch_end(self, state: EpochState) -> None:
        p = self.params
        if diagnoses_at(state.epoch, p.reinit_epoch, p.reinit_num):
            self.diagnose(state)

    def diagnose(self, state: EpochState) -> dict[str, float]:
        """Purities, gaps and weights of each modality, then the soft re-initialisation."""
        model = state.model
        z_train, y_train = encoder_features(model, state.loader("train"), self.task)
        z_val, y_val = encoder_features(model, state.loader("val"), self.task)
        # One KMeans seed per (run seed, epoch): reproducible, and not the same draw at every diagnosis.
        random_state = int(np.random.SeedSequence([state.seed, state.epoch]).generate_state(1)[0])
        diagnostics = {}
        for m in model.modalities:
            # each modality's val purity from its OWN val features (the MCR port's bug: not so)
            pt = cluster_purity(z_train[m], y_train, self.n_clusters, random_state)
            pv = cluster_purity(z_val[m], y_val, self.n_clusters, random_state)
            gap, w = reinit_weight(pt, pv, self.params.move_lambda)
            soft_reinit(model.encoders[m].parameters(), self.theta_init[m].tensors(), w)
            diagnostics.update({f"purity_train[{m}]": pt, f"purity_val[{m}]": pv,
                                f"gap[{m}]": gap, f"w[{m}]": w})
        diagnostics["reinits"] = float(state.epoch // self.params.reinit_epoch)
        # The last diagnosis: the trainer logs it in every later epoch's record as train_<key>.
        self.diagnostics = diagnostics
        return diagnostics
