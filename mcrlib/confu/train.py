"""ConFu's training loop: self-supervised, fixed epochs, AdamW with a cosine schedule.

Reference: ConFu (Koutoupis et al., arXiv 2511.21331, CVPR 2026; code estafons/confu,
`src/experiments/av_mnist/confu.py`): AdamW (lr 1e-4, weight decay 1e-4), cosine learning-rate
schedule, the model's contrastive objective on mini-batches of aligned samples (row i of every
modality is one sample; the rest of the batch are its negatives).

Deviations from the authors' code, and why:
- no validation-based checkpoint selection: the model after the last epoch is evaluated (no
  label is seen in training, and a fixed budget keeps every method's runs alike);
- the cosine schedule steps per batch down to 0 over the run, no warm-up;
- the last incomplete batch of an epoch is dropped (an InfoNCE over a handful of rows is noise);
- the learning rate is a parameter (the study's recipe states its own value and why).

mcrlib.train.Trainer is not used: it trains a supervised fusion model (labels, early stopping on
validation accuracy, a run cache) and ConFu needs none of that.
"""
from __future__ import annotations

from typing import Mapping

import torch
from tqdm.auto import tqdm

from mcrlib.confu.model import ConFuModel


def fit(model: ConFuModel, data: Mapping[str, torch.Tensor], *, epochs: int, batch_size: int, lr: float = 1e-4,
        weight_decay: float = 1e-4, seed: int = 0, progress: bool = True, desc: str = "ConFu") -> list[float]:
    """Train `model` on `data` (modality -> (N, ...) tensor, rows aligned across modalities) for
    `epochs` epochs; returns the mean training loss of each epoch. Deterministic in `seed` (batch
    order and dropout) given the model's initial weights."""
    sizes = {m: len(data[m]) for m in model.modalities if m in data}
    if set(sizes) != set(model.modalities):
        raise KeyError(f"fit: data lacks modalities {sorted(set(model.modalities) - set(sizes))}; "
                       f"it has {list(data)}")
    n = next(iter(sizes.values()))
    if len(set(sizes.values())) != 1:
        raise ValueError(f"fit: the modalities have different numbers of rows {sizes}; rows must be aligned samples")
    if not (isinstance(epochs, int) and epochs >= 1):
        raise ValueError(f"fit: epochs={epochs!r}; expected an integer >= 1")
    if not (isinstance(batch_size, int) and 2 <= batch_size <= n):
        raise ValueError(f"fit: batch_size={batch_size!r}; expected an integer in 2..{n} (the number of samples): "
                         "a contrastive batch needs negatives")
    steps_per_epoch = n // batch_size
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=epochs * steps_per_epoch)
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)                       # dropout
    history = []
    model.train()
    for _ in tqdm(range(epochs), desc=desc, disable=not progress, leave=False):
        order = torch.randperm(n, generator=generator)
        total = 0.0
        for step in range(steps_per_epoch):
            rows = order[step * batch_size:(step + 1) * batch_size]
            loss = model.loss(model({m: data[m][rows] for m in model.modalities}))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item()
        history.append(total / steps_per_epoch)
    model.eval()
    return history


@torch.no_grad()
def embed(model: ConFuModel, data: Mapping[str, torch.Tensor], *, batch_size: int = 1024) -> dict:
    """`model`'s embeddings of every row of `data`, in eval mode: {"z": {m: (N, d)}, "fused":
    {(i, j): (N, d)}}."""
    model.eval()
    n = len(data[model.modalities[0]])
    parts = [model({m: data[m][start:start + batch_size] for m in model.modalities}) for start in range(0, n, batch_size)]
    return {"z": {m: torch.cat([p["z"][m] for p in parts]) for m in model.modalities},
            "fused": {pair: torch.cat([p["fused"][pair] for p in parts]) for pair in parts[0]["fused"]}}
