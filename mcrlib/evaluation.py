"""Predictions of every head over a split, and their metrics.

Classification metrics of every head (fused and each unimodal head), keyed `<metric>_<head>`:
accuracy (`acc`), macro-F1 (`f1`, scikit-learn's definition) and the expected calibration error (`ece`,
15 equal-width confidence bins, Guo et al. 2017), plus the fused cross-entropy (`loss_fused`).

Modality contributions to the fused prediction (`modality_contributions`, computed once per
trained run on the test split by `mcrlib.runs._train`, and at the logit level for the composite
ensemble), both on the fused accuracy:
  contrib_permute_<m>  accuracy minus the accuracy when modality m's representation (a model's
                       latent z_m) is permuted across the WHOLE split (one randperm of all rows,
                       not per batch), every other modality's unchanged;
  contrib_shapley_<m>  the Shapley value of m for the game v(S) = fused accuracy with only the
                       modalities in S kept and the others' representations replaced by zeros
                       (v(empty) = all zeros); the values sum to v(all) - v(empty).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from itertools import combinations
from math import factorial

import torch

from mcrlib.data.tensors import TensorSplits
from mcrlib.metrics_regression import regression_head_metrics

ECE_BINS = 15


@torch.no_grad()
def predict(model, data: TensorSplits, split: str, batch_size: int, device) -> dict[str, torch.Tensor]:
    """{"fused": logits, "<modality>": unimodal-head logits, "label", and "group" if present}."""
    was_training = model.training
    model.eval()
    out: dict[str, list] = {}
    for batch in data.loader(split, batch_size):
        inputs = {m: batch[m].to(device) for m in model.modalities}
        output = model(inputs)
        heads = {"fused": output.logits, **output.unimodal_logits}
        for key, value in heads.items():
            out.setdefault(key, []).append(value.float().cpu())
        for key in ("label", "group"):
            if key in batch:
                out.setdefault(key, []).append(batch[key].cpu())
    model.train(was_training)
    return {k: torch.cat(v) for k, v in out.items()}


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return (logits.argmax(-1) == labels).float().mean().item()


def macro_f1(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Unweighted mean over classes of the per-class F1 of the arg-max predictions, as
    scikit-learn's `f1_score(average="macro", zero_division=0)`: over the classes present among
    the labels or the predictions (a class with no true and no predicted sample is not counted),
    F1_c = 2 TP_c / (2 TP_c + FP_c + FN_c), the formula scikit-learn uses since 1.3.

    Computed here from one confusion count, because the trainer reads it for every head of every
    validation epoch: scikit-learn's input checks cost ~9 ms a call, more than an epoch of the
    synthetic MLP. tests/test_measures.py checks it against scikit-learn's f1_score."""
    labels = labels.cpu().long()
    predicted = logits.argmax(-1).cpu()
    n_classes = int(max(logits.shape[-1], labels.max().item() + 1 if len(labels) else 0))
    true_count = torch.bincount(labels, minlength=n_classes).double()
    predicted_count = torch.bincount(predicted, minlength=n_classes).double()
    true_positive = torch.bincount(labels[predicted == labels], minlength=n_classes).double()
    present = (true_count + predicted_count) > 0
    # 2 TP + FP + FN = (TP + FN) + (TP + FP): the true and the predicted count of the class
    f1 = 2 * true_positive[present] / (true_count[present] + predicted_count[present])
    return float(f1.mean()) if len(f1) else 0.0


def expected_calibration_error(logits: torch.Tensor, labels: torch.Tensor, n_bins: int = ECE_BINS) -> float:
    """ECE (Guo et al. 2017): confidence = the highest softmax probability, binned into `n_bins`
    equal-width bins ((0, 1/n], (1/n, 2/n], ..., upper edge included);
    ECE = sum_b |B_b| / n * |accuracy(B_b) - mean confidence(B_b)|, empty bins contributing 0."""
    probabilities = logits.detach().double().softmax(-1)
    confidence, predicted = probabilities.max(-1)
    correct = (predicted.cpu() == labels.cpu()).double()
    confidence = confidence.cpu()
    inner_edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)[1:-1]
    bins = torch.bucketize(confidence, inner_edges, right=False)   # edges[b-1] < c <= edges[b]
    gap = torch.zeros(n_bins, dtype=torch.float64).index_add_(0, bins, correct - confidence)
    # |B_b|/n * |acc_b - conf_b| = |sum_{i in B_b} (correct_i - conf_i)| / n
    return float(gap.abs().sum() / len(labels))


def head_metrics(predictions: dict[str, torch.Tensor], heads, task: str = "classification") -> dict[str, float]:
    """Classification: accuracy, macro-F1 and ECE of each head and the fused cross-entropy.
    Regression (CMU-MOSI/MOSEI): the paper's metrics of each head (mcrlib.metrics_regression),
    acc_<head> = binary accuracy without zero labels; the fused MAE is the loss."""
    labels = predictions["label"]
    if task == "regression":
        metrics = regression_head_metrics(predictions, heads)
        for h in heads:  # the paper's headline accuracy: the sign, zero labels left out
            metrics[f"acc_{h}"] = metrics[f"acc2_{h}"]
        metrics["loss_fused"] = metrics["mae_fused"]
        return metrics
    metrics = {f"acc_{h}": accuracy(predictions[h], labels) for h in heads}
    metrics["loss_fused"] = torch.nn.functional.cross_entropy(predictions["fused"], labels).item()
    metrics.update({f"f1_{h}": macro_f1(predictions[h], labels) for h in heads})
    metrics.update({f"ece_{h}": expected_calibration_error(predictions[h], labels) for h in heads})
    return metrics


# ---- modality contributions ------------------------------------------------------------------

def modality_contributions(fuse: Callable[[dict[str, torch.Tensor]], torch.Tensor],
                           parts: Mapping[str, torch.Tensor], labels: torch.Tensor, *,
                           generator: torch.Generator) -> dict[str, float]:
    """{"contrib_permute_<m>", "contrib_shapley_<m>"} of every modality m of `parts`.

    `parts`: one representation per modality, rows aligned with `labels` (a model's latents, or
    an ensemble member's logits); `fuse(parts) -> fused logits` over all rows. Permutations come
    from `generator`, one randperm of all rows per modality, drawn in the order of `parts`.
    Shapley: phi_m = sum over S not holding m of |S|! (M-|S|-1)! / M! [v(S + m) - v(S)], with
    v(S) the fused accuracy when the modalities outside S are zeros."""
    names = list(parts)
    n_rows = len(labels)

    def value(current: Mapping[str, torch.Tensor]) -> float:
        return accuracy(fuse(dict(current)), labels)

    clean = value(parts)
    out = {}
    for m in names:
        permutation = torch.randperm(n_rows, generator=generator)
        out[f"contrib_permute_{m}"] = clean - value({**parts, m: parts[m][permutation]})
    coalition_value = {}
    for size in range(len(names) + 1):
        for kept in combinations(names, size):
            coalition_value[frozenset(kept)] = (
                clean if size == len(names) else
                value({k: v if k in kept else torch.zeros_like(v) for k, v in parts.items()}))
    total = factorial(len(names))
    for m in names:
        others = [k for k in names if k != m]
        phi = 0.0
        for size in range(len(others) + 1):
            weight = factorial(size) * factorial(len(names) - size - 1) / total
            for kept in combinations(others, size):
                phi += weight * (coalition_value[frozenset(kept) | {m}] - coalition_value[frozenset(kept)])
        out[f"contrib_shapley_{m}"] = phi
    return out


@torch.no_grad()
def split_latents(model, data: TensorSplits, split: str, batch_size: int, device) -> dict[str, torch.Tensor]:
    """Every modality's latent z_m over `split` (model in eval mode, on the CPU), in split order."""
    was_training = model.training
    model.eval()
    out: dict[str, list] = {m: [] for m in model.modalities}
    for batch in data.loader(split, batch_size):
        for m, z in model.encode({m: batch[m].to(device) for m in model.modalities}).items():
            out[m].append(z.cpu())
    model.train(was_training)
    return {m: torch.cat(v) for m, v in out.items()}


@torch.no_grad()
def model_contributions(model, data: TensorSplits, split: str = "test", *, seed: int = 0,
                        batch_size: int = 256, device="cpu") -> dict[str, float]:
    """`modality_contributions` of a trained model at the latent level: the split is encoded once
    (in batches), then the fused logits of every perturbed set of latents come from the model's
    own fusion path (`model.head`, so the fusion head the run's config names, e.g. MMCosine's or ARM's,
    is the one evaluated), in batches of `batch_size` rows. The latents are permuted across the
    whole split, not within batches. Deterministic: torch.Generator seeded with `seed`."""
    was_training = model.training
    model.eval()
    latents = split_latents(model, data, split, batch_size, device)

    def fuse(parts: dict[str, torch.Tensor]) -> torch.Tensor:
        n_rows = len(next(iter(parts.values())))
        logits = [model.head({m: z[start:start + batch_size].to(device) for m, z in parts.items()}).logits.float().cpu()
                  for start in range(0, n_rows, batch_size)]
        return torch.cat(logits)

    try:
        return modality_contributions(fuse, latents, data.splits[split]["label"],
                                      generator=torch.Generator().manual_seed(seed))
    finally:
        model.train(was_training)
