"""Per-epoch encoder features, recorded by a trainer callback for linear probes.

After every epoch the recorder runs the encoders (eval mode, no gradient) on a fixed subset of
the training split and on the whole test split and writes `features/epoch_<k>.pt` atomically,
so a run killed and resumed still has every epoch's file.

The probe's training subset (`probe_rows`) is a class-stratified random draw fixed by a seed
(PROBE_SEED = 0 by default, not the run's seed): it depends on the training labels alone, so every
epoch of a run and every method and seed on the same data probe the same rows. It is never "the
first n rows": a training split stored sorted by class (AV-Digits) would leave classes out.
"""
from __future__ import annotations

from pathlib import Path

import torch

from mcrlib.atomic import save_torch
from mcrlib.data.tensors import TensorSplits


PROBE_SEED = 0


def probe_rows(labels: torch.Tensor, n: int, *, seed: int = PROBE_SEED, stratify: bool = True) -> torch.Tensor:
    """Sorted indices of `n` rows drawn from `labels`' rows, fixed by `seed`; every row when
    n >= len(labels). Stratified (classification labels): each class gets its share
    n * n_c / N rounded by largest remainder (ties to the lower class index), so the class
    proportions are kept, and its rows are a uniform draw within the class. Not stratified
    (regression targets): a uniform draw of n rows."""
    total = len(labels)
    if n >= total:
        return torch.arange(total)
    generator = torch.Generator().manual_seed(seed)
    if not stratify:
        return torch.randperm(total, generator=generator)[:n].sort().values
    classes, counts = torch.unique(labels, return_counts=True)
    exact = counts.double() * n / total
    quota = exact.floor().long()
    remainder = exact - quota
    order = sorted(range(len(classes)), key=lambda i: (-remainder[i].item(), i))
    for i in order[:n - int(quota.sum())]:
        quota[i] += 1
    chosen = []
    for c, k in zip(classes, quota.tolist()):
        members = torch.nonzero(labels == c).flatten()
        chosen.append(members[torch.randperm(len(members), generator=generator)[:k]])
    return torch.cat(chosen).sort().values


class FeatureRecorder:
    def __init__(self, data: TensorSplits, folder: str | Path, n_train: int, batch_size: int = 256,
                 seed: int = PROBE_SEED):
        self.data, self.folder, self.batch_size = data, Path(folder), batch_size
        # A fixed subset of the training split for the probes, the same for every epoch, method and
        # run seed (it depends on the labels and `seed` only): a class-stratified draw.
        self.train_rows = probe_rows(data.splits["train"]["label"], n_train, seed=seed,
                                     stratify=data.task == "classification")

    @torch.no_grad()
    def _features(self, model, split: str, rows=None) -> dict[str, torch.Tensor]:
        tensors = self.data.splits[split]
        rows = torch.arange(len(tensors["label"])) if rows is None else rows
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        out = {m: [] for m in model.modalities}
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start:start + self.batch_size]
            latents = model.encode({m: tensors[m][chunk].to(device) for m in model.modalities})
            for m, z in latents.items():
                out[m].append(z.float().cpu())
        model.train(was_training)
        return {**{m: torch.cat(v) for m, v in out.items()}, "label": tensors["label"][rows]}

    def __call__(self, trainer, epoch: int, record: dict) -> None:
        save_torch({"train": self._features(trainer.model, "train", self.train_rows),
                    "test": self._features(trainer.model, "test")}, self.folder / f"epoch_{epoch}.pt")


def load_features(run_path: str | Path) -> list[dict]:
    """Every recorded epoch's features of a run, in epoch order."""
    files = sorted(Path(run_path, "features").glob("epoch_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
    return [torch.load(f, weights_only=True) for f in files]
