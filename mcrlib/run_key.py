"""The run cache's key: correct by construction.

A run's key hashes
  * its config, validated, with every default filled in: the method's and the dataset's params
    become their params dataclasses, so `{copies: 32}` and `{}` are one run;
  * what its data are: the dataset's load params without their location fields, and the
    prepared folder's verified content fingerprint (mcrlib.data.fingerprint), so re-preparing a
    dataset, or editing a prepared file by hand, never returns a run made from other data;
  * the source of the run layer's, its method's and its dataset's modules and of everything they
    import from mcrlib (mcrlib.code_closure: every import statement, at any depth, but not the
    registries' imports by name), so an edit to any module of that closure retrains, even one
    this run never executes (mcrlib.models imports every encoder), and an edit to a module
    outside it (another method's or dataset's, the studies, the analyses) retrains nothing;
  * the keys of the runs it is built from (an ensemble's members, pre-trained encoders), which
    the method declares: a member trained again makes its composite new too.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json

from mcrlib.code_closure import source_digest
from mcrlib.config import ConfigError, ModelConfig, RunConfig, from_dict, to_dict
from mcrlib.data.registry import DATASETS, data_identity, dataset_modalities, dataset_params
from mcrlib.methods.base import METHODS, method_params
from mcrlib.models import fusion_params

RUN_LAYER = "mcrlib.runs"


def check_run(config: RunConfig) -> RunConfig:
    """Validate the method's, the dataset's and the fusion head's names and params (a
    ConfigError naming the key otherwise); returns `config` with the model fields its method
    needs (its fusion head) set."""
    params = method_params(config.method.name, config.method.params)
    data_params = dataset_params(config.data.name, config.data.params)
    method_cls, spec = METHODS[config.method.name], DATASETS[config.data.name]
    modalities = method_cls.modalities(params, spec.modalities(data_params))
    reason = method_cls.unsupported(params, spec.task, modalities)
    if reason:
        raise ConfigError(f"method.name={config.method.name!r} cannot run on data.name={config.data.name!r} "
                          f"({spec.task}, modalities {list(modalities)}): {reason}")
    config = with_model_overrides(config, params)
    fusion_params(config.model.fusion, config.model.fusion_params)
    return config


def with_model_overrides(config: RunConfig, params) -> RunConfig:
    """`config` with the model fields its method needs (Method.model_overrides: its fusion head
    and that head's params), given the method's parsed `params`."""
    overrides = METHODS[config.method.name].model_overrides(params)
    if not overrides:
        return config
    return dataclasses.replace(config, model=from_dict(ModelConfig, {**to_dict(config.model), **overrides}, "model"))


def filled(config: RunConfig) -> RunConfig:
    """`config` with the method's, the dataset's and the fusion head's params completed by their
    defaults."""
    method = dataclasses.asdict(method_params(config.method.name, config.method.params))
    data = dataclasses.asdict(dataset_params(config.data.name, config.data.params))
    head = dataclasses.asdict(fusion_params(config.model.fusion, config.model.fusion_params))
    return dataclasses.replace(config, method=dataclasses.replace(config.method, params=method),
                               data=dataclasses.replace(config.data, params=data),
                               model=dataclasses.replace(config.model, fusion_params=head))


def code_modules(config: RunConfig) -> list[str]:
    return [RUN_LAYER, METHODS.module_name(config.method.name), DATASETS.module_name(config.data.name)]


def required_runs(config: RunConfig) -> dict:
    """{role: RunConfig} of the runs this run is built from, as its method declares them."""
    method_cls = METHODS[config.method.name]
    params = method_params(config.method.name, config.method.params)
    modalities = method_cls.modalities(params, dataset_modalities(config.data.name, config.data.params))
    return method_cls.required_runs(config, modalities)


def key_material(config: RunConfig) -> dict:
    """Everything the key hashes, as JSON-ready data (shown by `mcr-run --explain-key`)."""
    config = check_run(config)
    record = to_dict(filled(config))
    record["data"] = data_identity(config.data.name, config.data.params)
    return {"config": record,
            "code": source_digest(code_modules(config)),
            "built_from": {role: run_key(c) for role, c in sorted(required_runs(config).items())}}


def run_key(config: RunConfig) -> str:
    text = json.dumps(key_material(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def unsupported_reason(config: RunConfig) -> str | None:
    """Why `config`'s method cannot run on its dataset (studies skip such a pair); None if it can."""
    params = method_params(config.method.name, config.method.params)
    spec = DATASETS[config.data.name]
    modalities = METHODS[config.method.name].modalities(params, spec.modalities(dataset_params(config.data.name, config.data.params)))
    return METHODS[config.method.name].unsupported(params, spec.task, modalities)
