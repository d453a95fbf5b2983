"""Linear probes: how much label information an encoder's frozen features hold."""
from __future__ import annotations

import warnings

import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def probe_accuracy(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                   max_iter: int = 500) -> float:
    """Test accuracy of a logistic regression fitted on standardised training features."""
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
    with warnings.catch_warnings():  # a probe that has not fully converged is still a probe
        warnings.simplefilter("ignore", ConvergenceWarning)
        probe.fit(train_x.numpy(), train_y.numpy())
    return float(probe.score(test_x.numpy(), test_y.numpy()))


def probe_epochs(epochs: list[dict], modalities) -> list[dict]:
    """Per recorded epoch: the probe accuracy of each encoder's features."""
    return [{m: probe_accuracy(e["train"][m], e["train"]["label"], e["test"][m], e["test"]["label"])
             for m in modalities} for e in epochs]
