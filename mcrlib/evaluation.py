"""Predictions of every head over a split, and their metrics."""
from __future__ import annotations

import torch

from mcrlib.data import TensorSplits
from mcrlib.metrics_regression import regression_head_metrics


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
                out.setdefault(key, []).append(batch[key])
    model.train(was_training)
    return {k: torch.cat(v) for k, v in out.items()}


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return (logits.argmax(-1) == labels).float().mean().item()


def head_metrics(predictions: dict[str, torch.Tensor], heads, task: str = "classification") -> dict[str, float]:
    """Classification: accuracy of each head and the fused cross-entropy.
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
    return metrics
