import pytest

from mcrlib.data.synthetic import SyntheticConfig, make_synthetic


@pytest.fixture(scope="session")
def tiny_data():
    return make_synthetic(SyntheticConfig(input_dim=32, latent_dim=8, mean_scale=3.0,
                                          n_train=128, n_val=64, n_test=64))


TINY_RUN = {"data": {"name": "synthetic",
                     "params": {"input_dim": 32, "latent_dim": 8, "mean_scale": 3.0,
                                "n_train": 128, "n_val": 64, "n_test": 64}},
            "model": {"hidden_dim": 16, "latent_dim": 8},
            "train": {"max_epochs": 3, "batch_size": 32, "progress": False}}
