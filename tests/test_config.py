"""Every kind of bad configuration is rejected before training, naming key, value and what is allowed."""
import pytest

from mcrlib.config import ConfigError, RunConfig, from_dict
from mcrlib.run_key import check_run
from mcrlib.runs import run


def build(**overrides):
    base = {"data": {"name": "synthetic", "params": {}}, "method": {"name": "mcr", "params": {}},
            "train": {}, "model": {}}
    for path, value in overrides.items():
        *parents, key = path.split("__")
        node = base
        for p in parents:
            node = node.setdefault(p, {})
        node[key] = value
    return check_run(from_dict(RunConfig, base))


@pytest.mark.parametrize("override,fragments", [
    ({"method__name": "mrc"}, ["method.name", "'mrc'", "mcr", "joint"]),
    ({"method__params__strategy": "greed"}, ["strategy", "'greed'", "greedy", "collaborative"]),
    ({"method__params__perturbation": "shuffle"}, ["perturbation", "'shuffle'", "permute"]),
    ({"method__params__latent_source": "eval"}, ["latent_source", "train", "eval_reforward"]),
    ({"method__params__lambda_mpid": 1.0}, ["lambda_mpid", "lambda_mipd"]),
    ({"method__params__copies": 0}, ["copies", "0", "P >= 1"]),
    ({"data__name": "crema-d"}, ["data.name", "'crema-d'", "cremad", "synthetic"]),
    ({"data__params__shared": 0.6}, ["shared+unique1+unique2", "sum to 1"]),
    ({"data__params__n_clases": 5}, ["n_clases", "n_classes"]),
    ({"train__lr": 0}, ["train.lr", "0", "> 0"]),
    ({"train__lr": -1e-3}, ["train.lr", "-0.001"]),
    ({"train__lr": "fast"}, ["train.lr", "'fast'", "real number"]),
    ({"train__optimizer": "sgd"}, ["optimizer", "'sgd'", "adam", "adamw"]),
    ({"train__batch_size": 1}, ["train.batch_size", "1", ">= 2"]),
    ({"train__epochs": 3}, ["epochs", "max_epochs"]),
    ({"model__dropout": 1.5}, ["model.dropout", "1.5", "[0, 1)"]),
    ({"seed": "zero"}, ["seed", "'zero'", "integer"]),
])
def test_bad_values_are_rejected_with_a_message(override, fragments):
    with pytest.raises(ConfigError) as err:
        build(**override)
    for fragment in fragments:
        assert fragment in str(err.value)


def test_yaml_style_numbers_are_accepted():
    cfg = build(train__lr="1e-3", method__params__lambda_mipd=1)
    assert cfg.train.lr == 0.001 and cfg.method.params["lambda_mipd"] == 1


def test_run_rejects_a_bad_config_before_any_training(tmp_path):
    with pytest.raises(ConfigError, match="copies"):
        run({"method": {"name": "mcr", "params": {"copies": 0}}}, tmp_path)
    assert not any(tmp_path.iterdir())


def test_unimodal_rejects_an_unknown_modality(tmp_path):
    with pytest.raises(ConfigError, match="'audio'.*x1"):
        run({"method": {"name": "unimodal", "params": {"modality": "audio"}}}, tmp_path)
    assert not any(tmp_path.iterdir())


def test_a_union_field_takes_the_first_type_that_fits_and_names_all_when_none_does():
    from mcrlib.studies.calibration import CalibrationConfig
    as_dict = from_dict(CalibrationConfig, {"synthetic_grid": {"mean_scale": [1.0]}})
    as_list = from_dict(CalibrationConfig, {"synthetic_grid": [{"mean_scale": 1.0}]})
    assert as_dict.synthetic_grid == {"mean_scale": [1.0]} and list(as_list.synthetic_grid) == [{"mean_scale": 1.0}]
    with pytest.raises(ConfigError, match=r"synthetic_grid=3 is invalid: expected a mapping or a list"):
        from_dict(CalibrationConfig, {"synthetic_grid": 3})


def test_one_epoch_with_the_default_warm_up_names_both_keys_and_the_fix():
    with pytest.raises(ConfigError) as caught:
        from_dict(RunConfig, {"train": {"max_epochs": 1}})
    message = str(caught.value)
    assert "train.max_epochs=1" in message and "train.warmup_epochs=1.0 (its default)" in message
    assert "0: no warm-up" in message
    assert from_dict(RunConfig, {"train": {"max_epochs": 1, "warmup_epochs": 0}}).train.max_epochs == 1
