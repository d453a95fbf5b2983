"""In-memory datasets of tensors, batched through torch's DataLoader."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler


class TensorDictDataset(Dataset):
    """Rows of a dict of equally long tensors; indexing with a list of rows returns a batch."""

    def __init__(self, tensors: dict[str, torch.Tensor]):
        lengths = {len(t) for t in tensors.values()}
        if len(lengths) != 1:
            raise ValueError(f"tensors of unequal length: { {k: len(v) for k, v in tensors.items()} }")
        self.tensors = tensors

    def __len__(self):
        return len(next(iter(self.tensors.values())))

    def __getitem__(self, rows):
        return {k: t[rows] for k, t in self.tensors.items()}


@dataclass
class TensorSplits:
    """train/val/test dicts of tensors: one tensor per modality, plus `label` and `group`."""
    splits: dict[str, dict[str, torch.Tensor]]
    modalities: tuple[str, ...]
    n_classes: int
    group_names: tuple[str, ...] = ()
    task: str = "classification"   # or "regression" (one real-valued target, n_classes = 1)
    # modality -> encoder family (mcrlib.data.spec.ENCODER_FAMILIES), set by load_dataset from the
    # dataset's spec; empty for tensors made by hand, whose families follow their samples' rank.
    encoders: dict = dataclasses.field(default_factory=dict)

    def to(self, device) -> "TensorSplits":
        """The same splits with every tensor on `device` (a GPU keeps the data resident: no
        host-to-device copy per batch)."""
        moved = {name: {k: t.to(device) for k, t in split.items()} for name, split in self.splits.items()}
        return dataclasses.replace(self, splits=moved)

    def loader(self, split: str, batch_size: int, epoch: int = 0, seed: int = 0) -> DataLoader:
        """Batches of `split`. Training order depends only on (seed, epoch), so a resumed run
        sees exactly the batches an uninterrupted one would."""
        dataset = TensorDictDataset(self.splits[split])
        if split == "train":
            gen = torch.Generator().manual_seed(seed * 100_003 + epoch)
            # drop_last: a trailing batch of one sample has no permutation partner.
            sampler = BatchSampler(RandomSampler(dataset, generator=gen), batch_size, drop_last=True)
        else:
            sampler = BatchSampler(SequentialSampler(dataset), batch_size, drop_last=False)
        return DataLoader(dataset, sampler=sampler, batch_size=None)
