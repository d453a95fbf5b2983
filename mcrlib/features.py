"""Per-epoch encoder features, recorded by a trainer callback for linear probes.

After every epoch the recorder runs the encoders (eval mode, no gradient) on a fixed subset of
the training split and on the whole test split and writes `features/epoch_<k>.pt` atomically,
so a run killed and resumed still has every epoch's file.
"""
from __future__ import annotations

from pathlib import Path

import torch

from mcrlib.atomic import save_torch
from mcrlib.data import TensorSplits


class FeatureRecorder:
    def __init__(self, data: TensorSplits, folder: str | Path, n_train: int, batch_size: int = 256):
        self.data, self.folder, self.batch_size = data, Path(folder), batch_size
        # A fixed, seed-independent subset: the first n_train training rows.
        self.train_rows = torch.arange(min(n_train, len(data.splits["train"]["label"])))

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
