import pytest

from mcrlib.data.synthetic import SyntheticConfig, load


@pytest.fixture(scope="session")
def tiny_data():
    return load(SyntheticConfig(input_dim=32, latent_dim=8, mean_scale=3.0,
                                          n_train=128, n_val=64, n_test=64))


TINY_RUN = {"data": {"name": "synthetic",
                     "params": {"input_dim": 32, "latent_dim": 8, "mean_scale": 3.0,
                                "n_train": 128, "n_val": 64, "n_test": 64}},
            "model": {"hidden_dim": 16, "latent_dim": 8},
            "train": {"max_epochs": 3, "batch_size": 32, "progress": False}}


def model_and_batch(n_modalities=2, n_classes=5, batch=16, *, hidden=8, dims=None, seed=0, first=0):
    """A small MLP MultimodalModel (modalities x{first}..) and one random batch; regression
    labels when n_classes == 1."""
    import torch

    from mcrlib.models import MLPEncoder, MultimodalModel
    torch.manual_seed(seed)
    names = [f"x{m + first}" for m in range(n_modalities)]
    dims = dims or (6, 6)
    model = MultimodalModel(encoders={name: MLPEncoder(in_dim=4, hidden_dim=hidden, latent_dim=dims[m % 2], layers=1)
                                      for m, name in enumerate(names)}, n_classes=n_classes)
    data = {name: torch.randn(batch, 4) for name in names}
    label = torch.randn(batch) if n_classes == 1 else torch.randint(n_classes, (batch,))
    return model, {**data, "label": label}


class Interrupt(Exception):
    """Raised by a callback to kill a run mid-way in resume tests."""


def resume_after_kill(make_trainer, data, tmp_path, kill_at: int):
    """(uninterrupted trainer, its FitResult, resumed trainer, its FitResult): the second run is
    killed by a callback after epoch `kill_at` and restarted from its checkpoint.
    `make_trainer(checkpoint_path, callbacks)` must build identical trainers."""
    import pytest

    reference = make_trainer(tmp_path / "reference.pt", ())
    reference_fit = reference.fit(data)

    def kill(_trainer, epoch, _record):
        if epoch == kill_at:
            raise Interrupt
    with pytest.raises(Interrupt):
        make_trainer(tmp_path / "killed.pt", [kill]).fit(data)
    resumed = make_trainer(tmp_path / "killed.pt", ())
    return reference, reference_fit, resumed, resumed.fit(data)
