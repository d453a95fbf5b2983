"""Sentiment-regression metrics of CMU-MOSI / CMU-MOSEI (labels and predictions in [-3, 3]).

The scheme of Multimodal Transformer / MMSA that the paper's release reports for every head
(`General_Evaluator_Regression`): binary accuracy and weighted F1 of the sentiment's sign with
zero labels left out ("Acc-2", the headline number) and with them counted as non-negative,
7- and 5-class accuracy after clipping to [-3, 3] / [-2, 2] and rounding, MAE, and Pearson r.

Rounding is numpy's (half to even, as `np.round` in the release): 2.5 -> 2, 0.5 -> 0, -1.5 -> -2.
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping

import numpy as np
import torch
from scipy.stats import pearsonr

METRICS = ("acc2", "f1", "acc2_has0", "f1_has0", "acc7", "acc5", "mae", "corr")


def _flat(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().float().cpu().numpy()
    return np.asarray(values, dtype=np.float64).reshape(-1)


def _binary(truth: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """Accuracy and support-weighted F1 of boolean labels; NaN for an empty set."""
    if truth.size == 0:
        return math.nan, math.nan
    from sklearn.metrics import accuracy_score, f1_score   # here: importing the trainer imports no scikit-learn
    return (float(accuracy_score(truth, pred)),
            float(f1_score(truth, pred, average="weighted", zero_division=0)))


def multiclass_accuracy(preds, labels, bound: float) -> float:
    """Share of samples whose prediction and label, clipped to [-bound, bound] and rounded to
    the nearest integer (half to even), agree: 7 classes for bound 3, 5 classes for bound 2."""
    p, y = _flat(preds), _flat(labels)
    return float(np.mean(np.round(np.clip(p, -bound, bound)) == np.round(np.clip(y, -bound, bound))))


def pearson(preds, labels) -> float:
    """Pearson correlation; NaN when either side is constant or there are < 2 samples."""
    p, y = _flat(preds), _flat(labels)
    if p.size < 2 or np.all(p == p[0]) or np.all(y == y[0]):
        return math.nan
    return float(pearsonr(p, y).statistic)


def regression_metrics(preds, labels, *, zero_positive: bool = True) -> dict[str, float]:
    """All metrics of one head, from predictions and labels of any shape with N elements.

    acc2, f1        : sign of prediction vs sign of label over samples whose label != 0
                      (positive = > 0); f1 is support-weighted over the two classes.
    acc2_has0, f1_has0: over all samples; positive = >= 0 (zero_positive=True, the MMSA
                      convention) or > 0 (zero_positive=False, what the MCR release computes).
    acc7, acc5      : `multiclass_accuracy` with bounds 3 and 2.
    mae             : mean |pred - label|.
    corr            : Pearson r (NaN if undefined).
    Metrics that are undefined on the given samples (e.g. acc2 when every label is 0) are NaN.
    """
    p, y = _flat(preds), _flat(labels)
    if p.shape != y.shape:
        raise ValueError(f"{p.size} predictions but {y.size} labels")
    if p.size == 0:
        raise ValueError("regression metrics of an empty set of predictions")
    nonzero = y != 0
    acc2, f1 = _binary(y[nonzero] > 0, p[nonzero] > 0)
    if zero_positive:
        acc2_has0, f1_has0 = _binary(y >= 0, p >= 0)
    else:
        acc2_has0, f1_has0 = _binary(y > 0, p > 0)
    return {"acc2": acc2, "f1": f1, "acc2_has0": acc2_has0, "f1_has0": f1_has0,
            "acc7": multiclass_accuracy(p, y, 3.0), "acc5": multiclass_accuracy(p, y, 2.0),
            "mae": float(np.mean(np.abs(p - y))), "corr": pearson(p, y)}


def regression_head_metrics(predictions: Mapping[str, torch.Tensor], heads: Iterable[str], *,
                            zero_positive: bool = True) -> dict[str, float]:
    """`regression_metrics` of every head in `predictions` (as returned by
    `mcrlib.evaluation.predict`: one (N, 1) output per head plus "label"), keyed
    "<metric>_<head>", e.g. "acc2_fused", "mae_vision"."""
    labels = predictions["label"]
    out: dict[str, float] = {}
    for head in heads:
        for name, value in regression_metrics(predictions[head], labels, zero_positive=zero_positive).items():
            out[f"{name}_{head}"] = value
    return out


__all__ = ["METRICS", "multiclass_accuracy", "pearson", "regression_head_metrics", "regression_metrics"]
