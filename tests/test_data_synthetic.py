"""The synthetic generator: groups, both label generators, the lift's dimensions, determinism."""
import pytest
import torch

from mcrlib.config import ConfigError
from mcrlib.data.synthetic import GROUPS, SyntheticConfig, _draw, load


def draw_unlifted(cfg: SyntheticConfig, n: int):
    """_draw with identity lifts: the latents x_m themselves."""
    gen = torch.Generator().manual_seed(0)
    means = [cfg.mean_scale * torch.nn.functional.normalize(torch.randn(cfg.n_classes, cfg.latent_dim, generator=gen), dim=1)
             for _ in range(2)]
    eye = torch.eye(cfg.latent_dim)
    return _draw(cfg, n, means, [eye, eye], gen), means


def test_label_shift_adds_the_label_to_every_coordinate_of_informative_modalities():
    """label_shift: x_m = n_m + mean_scale * y / sqrt(k) on every coordinate where modality m is
    informative (groups shared and unique-m), x_m = n_m elsewhere; at mean_scale = sqrt(k) that is
    y on every coordinate (paper 4.1, X_m = N_m + Y)."""
    cfg = SyntheticConfig(generator="label_shift", mean_scale=2.0, latent_dim=4, n_classes=5)
    (features, labels, groups), _ = draw_unlifted(cfg, 200_000)
    for m, x in enumerate(features):
        informative = groups != (2 - m)   # x1 carries the label unless unique-2, x2 unless unique-1
        for y in range(cfg.n_classes):
            on = x[informative & (labels == y)].mean(0)
            off = x[~informative & (labels == y)].mean(0)
            assert on == pytest.approx(torch.full((4,), 1.0 * y), abs=0.03)   # 2 / sqrt(4) per label step
            assert off == pytest.approx(torch.zeros(4), abs=0.03)


def test_class_means_adds_each_class_its_random_mean():
    cfg = SyntheticConfig(mean_scale=2.0, latent_dim=4, n_classes=3)
    (features, labels, groups), means = draw_unlifted(cfg, 100_000)
    for m, x in enumerate(features):
        informative = groups != (2 - m)
        for y in range(3):
            assert x[informative & (labels == y)].mean(0) == pytest.approx(means[m][y], abs=0.03)
            assert means[m][y].norm() == pytest.approx(2.0)


def test_group_fractions_and_per_modality_latent_dimensions():
    cfg = SyntheticConfig(shared=0.5, unique1=0.3, unique2=0.2, latent_dim=100, latent_dim2=10, input_dim=64,
                          n_train=4000, n_test=20_000)
    data = load(cfg)
    test = data.splits["test"]
    assert test["x1"].shape == (20_000, 64) and test["x2"].shape == (20_000, 64)
    # x2's 10 latent dimensions, lifted: its features span a 10-dimensional subspace, x1's 64
    assert torch.linalg.matrix_rank(test["x2"][:500]) == 10 and torch.linalg.matrix_rank(test["x1"][:500]) == 64
    shares = torch.bincount(test["group"], minlength=3).float() / 20_000
    assert shares.tolist() == pytest.approx([0.5, 0.3, 0.2], abs=0.015)
    assert data.group_names == GROUPS
    train = data.splits["train"]   # standardised with training statistics
    assert train["x2"].mean(0).abs().max() < 1e-4 and (train["x2"].std(0) - 1).abs().max() < 1e-3


def test_latent_dim2_zero_is_latent_dim_and_generators_share_labels_and_groups():
    """latent_dim2 = 0 draws exactly what latent_dim2 = latent_dim draws; the two generators draw
    the same labels and groups for a seed and differ only in the features."""
    a = load(SyntheticConfig(input_dim=64, n_train=50, n_val=20, n_test=20, data_seed=3))
    b = load(SyntheticConfig(input_dim=64, latent_dim2=16, n_train=50, n_val=20, n_test=20, data_seed=3))
    for split in a.splits:
        for key in a.splits[split]:
            assert torch.equal(a.splits[split][key], b.splits[split][key])
    c = load(SyntheticConfig(input_dim=64, n_train=50, n_val=20, n_test=20, data_seed=3, generator="label_shift"))
    assert torch.equal(a.splits["test"]["label"], c.splits["test"]["label"])       # same draws of y and groups
    assert not torch.equal(a.splits["test"]["x1"], c.splits["test"]["x1"])


@pytest.mark.parametrize("bad, key", [({"generator": "means"}, "data.generator"),
                                      ({"latent_dim2": -1}, "data.latent_dim2"),
                                      ({"shared": 0.9}, "data.shared+unique1+unique2")])
def test_bad_knobs_name_the_key(bad, key):
    with pytest.raises(ConfigError, match=key.replace("+", r"\+")):
        SyntheticConfig(**bad)
