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


@torch.no_grad()
def encoder_latents(model, data, split: str, modality: str, batch_size: int = 1024) -> torch.Tensor:
    """The frozen `modality` encoder's latents over `split` (model in eval mode), in the split's order."""
    was_training = model.training
    model.eval()
    inputs = data.splits[split][modality]   # every row in order (the training loader shuffles and drops the last batch)
    out = [model.encoders[modality](inputs[i:i + batch_size]).float() for i in range(0, len(inputs), batch_size)]
    model.train(was_training)
    return torch.cat(out)


def run_probe(result, modality: str, data=None) -> float:
    """Test accuracy of a linear probe on the `modality` encoder of a run's best-validation model,
    fitted on the training split: how much label information that encoder learned inside the
    multimodal model (the calibration's direct sign of competition compares it with the modality's
    own unimodal model)."""
    model, data = result.load_model(data)
    return probe_accuracy(encoder_latents(model, data, "train", modality), data.splits["train"]["label"],
                          encoder_latents(model, data, "test", modality), data.splits["test"]["label"])
