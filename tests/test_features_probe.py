"""The linear probes' training rows: a class-stratified draw fixed by a seed, never the first rows
of a (possibly class-sorted) training split; the same rows at every epoch and for every method."""
from types import SimpleNamespace

import torch

from mcrlib.data import TensorSplits
from mcrlib.features import FeatureRecorder, probe_rows
from tests.conftest import model_and_batch


def sorted_split(counts, n_features=4):
    """A training split stored sorted by class (as AV-Digits'): counts[c] rows of class c."""
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    torch.manual_seed(0)
    split = {"x0": torch.randn(len(labels), n_features), "x1": torch.randn(len(labels), n_features),
             "label": labels}
    return TensorSplits({"train": split, "val": split, "test": split}, modalities=("x0", "x1"),
                        n_classes=len(counts))


def test_probe_rows_of_a_class_sorted_split_cover_every_class_in_proportion(tmp_path):
    data = sorted_split([100] * 10)
    rows = FeatureRecorder(data, tmp_path, n_train=500).train_rows
    assert len(rows) == len(set(rows.tolist())) == 500
    assert torch.bincount(data.splits["train"]["label"][rows], minlength=10).tolist() == [50] * 10


def test_unequal_classes_keep_their_proportions():
    labels = sorted_split([300, 100, 100, 7]).splits["train"]["label"]
    counts = torch.bincount(labels[probe_rows(labels, 254)], minlength=4).tolist()
    assert sum(counts) == 254 and counts[:3] == [150, 50, 50] and counts[3] == 4   # 3.5 rounded up
    tiny = torch.bincount(labels[probe_rows(labels, 3)], minlength=4).tolist()
    assert tiny == [2, 1, 0, 0]   # shares 1.78, 0.59, 0.59, 0.04: largest remainders, ties to the lower class


def test_probe_rows_are_fixed_by_the_seed_and_the_data_alone(tmp_path):
    data = sorted_split([100] * 10)
    first = FeatureRecorder(data, tmp_path / "a", n_train=500).train_rows
    assert torch.equal(first, FeatureRecorder(data, tmp_path / "b", n_train=500).train_rows)
    other = FeatureRecorder(data, tmp_path / "c", n_train=500, seed=1).train_rows
    assert not torch.equal(first, other)
    # not a prefix of each class either: a uniform draw inside the class
    assert not torch.equal(first[:50], torch.arange(50))


def test_the_whole_split_when_n_train_is_at_least_its_size(tmp_path):
    data = sorted_split([30, 20])
    assert torch.equal(FeatureRecorder(data, tmp_path, n_train=50).train_rows, torch.arange(50))
    assert torch.equal(FeatureRecorder(data, tmp_path, n_train=1000).train_rows, torch.arange(50))


def test_regression_targets_get_a_uniform_draw():
    targets = torch.linspace(-3, 3, 200)
    rows = probe_rows(targets, 50, stratify=False)
    assert len(set(rows.tolist())) == 50 and rows.max() > 100   # not the first 50 (sorted) targets


def test_every_epoch_records_the_same_rows(tmp_path):
    data = sorted_split([40] * 5)
    model, _ = model_and_batch(batch=2)
    recorder = FeatureRecorder(data, tmp_path, n_train=100, batch_size=16)
    trainer = SimpleNamespace(model=model)
    recorder(trainer, 0, {})
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    recorder(trainer, 1, {})
    epochs = [torch.load(tmp_path / f"epoch_{k}.pt", weights_only=True) for k in (0, 1)]
    assert torch.equal(epochs[0]["train"]["label"], epochs[1]["train"]["label"])
    assert torch.bincount(epochs[0]["train"]["label"]).tolist() == [20] * 5
    expected = model.eval().encode({m: data.splits["train"][m][recorder.train_rows] for m in model.modalities})
    torch.testing.assert_close(epochs[1]["train"]["x0"], expected["x0"].detach())
