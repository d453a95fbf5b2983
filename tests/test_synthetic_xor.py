"""The three-modality XOR-like generator (mcrlib.data.synthetic_xor): the label is independent of
each of u and v alone and determined by both; x1 and x2 alone are at chance, x3 above it;
determinism by seed; shapes, groups and validation."""
import pytest
import torch
from scipy import stats

from mcrlib.config import ConfigError
from mcrlib.data import DATASETS, load_dataset
from mcrlib.data.synthetic_xor import GROUPS, MODALITIES, SyntheticXorConfig, draw_factors, load

SMALL = dict(latent_dim=4, input_dim=16, n_train=400, n_val=100, n_test=400)


def test_label_is_independent_of_each_factor_and_determined_by_both():
    cfg = SyntheticXorConfig(n_classes=4)
    u, v, y, informative = draw_factors(cfg, 40_000, torch.Generator().manual_seed(0))
    assert torch.equal(y, (u + v) % 4)
    for factor in (u, v):
        table = torch.zeros(4, 4)
        table.index_put_((factor, y), torch.ones(len(y)), accumulate=True)
        # chi-square test of independence of (factor, y): no evidence against it
        assert stats.chi2_contingency(table.numpy()).pvalue > 0.01
        # every y given each factor value is within 1.5 points of uniform (25%)
        conditional = table / table.sum(1, keepdim=True)
        assert (conditional - 0.25).abs().max() < 0.015
    # (u, v) determine y: one label per cell
    for a in range(4):
        for b in range(4):
            assert y[(u == a) & (v == b)].unique().numel() == 1
    assert abs(informative.float().mean().item() - cfg.x3_fraction) < 0.01


def nearest_mean_accuracy(data, modality):
    """Test accuracy of the nearest class mean (class means from the training split)."""
    train, test = data.splits["train"], data.splits["test"]
    means = torch.stack([train[modality][train["label"] == c].mean(0) for c in range(data.n_classes)])
    predicted = torch.cdist(test[modality], means).argmin(1)
    return (predicted == test["label"]).float().mean().item()


def test_x1_and_x2_alone_are_at_chance_x3_is_not():
    data = load(SyntheticXorConfig(n_classes=4, n_train=4000, n_test=4000, x3_fraction=1.0, x3_scale=3.0))
    for modality in ("x1", "x2"):
        assert nearest_mean_accuracy(data, modality) < 0.25 + 0.03, modality
    assert nearest_mean_accuracy(data, "x3") > 0.6


def test_shapes_groups_and_registry():
    cfg = SyntheticXorConfig(n_classes=3, **SMALL)
    data = load(cfg)
    assert data.modalities == MODALITIES and data.n_classes == 3 and data.group_names == GROUPS
    for split, n in (("train", 400), ("val", 100), ("test", 400)):
        part = data.splits[split]
        assert set(part) == {*MODALITIES, "label", "group"}
        assert all(part[m].shape == (n, 16) and part[m].dtype == torch.float32 for m in MODALITIES)
        assert part["label"].shape == (n,) and int(part["label"].max()) < 3
        assert set(part["group"].unique().tolist()) <= {0, 1}
    for m in MODALITIES:   # standardised with training statistics
        assert data.splits["train"][m].mean(0).abs().max() < 1e-4
    spec = DATASETS["synthetic_xor"]
    assert spec.prepare is None and spec.modalities(cfg) == MODALITIES
    assert load_dataset("synthetic_xor", SMALL).encoders == {m: "mlp" for m in MODALITIES}


def test_x3_is_noise_on_its_silent_group():
    """x3_fraction = 0: x3 carries nothing either."""
    data = load(SyntheticXorConfig(n_classes=4, n_train=4000, n_test=4000, x3_fraction=0.0, x3_scale=3.0))
    assert (data.splits["test"]["group"] == 1).all()
    assert nearest_mean_accuracy(data, "x3") < 0.25 + 0.03


def test_deterministic_by_seed():
    a, b = load(SyntheticXorConfig(**SMALL)), load(SyntheticXorConfig(**SMALL))
    c = load(SyntheticXorConfig(**SMALL, data_seed=1))
    for split in ("train", "val", "test"):
        for key in (*MODALITIES, "label", "group"):
            assert torch.equal(a.splits[split][key], b.splits[split][key])
    assert not torch.equal(a.splits["train"]["x1"], c.splits["train"]["x1"])


@pytest.mark.parametrize("key, value, expected", [
    ("n_classes", 1, "an integer >= 2"), ("x3_fraction", 1.5, "a fraction in [0, 1]"),
    ("x3_scale", -1.0, "a number >= 0"), ("n_test", 1, "an integer >= 2")])
def test_config_is_validated(key, value, expected):
    with pytest.raises(ConfigError) as err:
        SyntheticXorConfig(**{key: value})
    assert str(err.value) == f"data.{key}={value!r} is invalid: expected {expected}"
