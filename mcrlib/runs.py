"""run(config) -> RunResult, cached on disk under its run key (mcrlib.run_key: the config with
its defaults filled in, the data's content fingerprint and the source of every module the run
imports).

A run directory holds `result.json` (config, metrics, per-epoch history), `predictions.pt`
(validation and test logits of the fused head and of every unimodal head, with labels and
sample groups) and `model.pt` (the best-validation weights). Each is written atomically, and
`result.json` last, so its presence marks a complete run. While training, `checkpoint.pt` is
written every epoch; a killed run restarted with the same config resumes from it.

Under torchrun (`torchrun --nproc_per_node=W -m mcrlib.runs config.yaml`) one run trains on W
processes (docs/distributed.md); only rank 0 writes the run directory, the others wait for it
and return the same result.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mcrlib import distributed as dist
from mcrlib.atomic import save_torch, write_text
from mcrlib.config import RunConfig, from_dict, to_dict
from mcrlib.data import load_dataset
from mcrlib.evaluation import head_metrics
from mcrlib.features import FeatureRecorder
from mcrlib.methods import METHODS, method_params
from mcrlib.models import build_model
from mcrlib.run_key import check_run, required_runs, run_key
from mcrlib.train import Trainer, resolve_device

DEFAULT_CACHE = Path(os.environ.get("MCR_RUN_CACHE", ".mcr-cache/runs"))


@dataclass
class RunResult:
    config: dict
    metrics: dict
    history: list = field(default_factory=list)
    predictions: dict = field(default_factory=dict)   # split -> head/label/group -> tensor
    path: Path | None = None

    def model_state(self) -> dict:
        return torch.load(self.path / "model.pt", map_location="cpu", weights_only=True)


def load_result(path: Path) -> RunResult:
    """A complete cache entry; an unreadable or incomplete one raises (the caller retrains)."""
    record = json.loads((path / "result.json").read_text())
    predictions = torch.load(path / "predictions.pt", weights_only=True)
    if METHODS[record["config"]["method"]["name"]].trains and not zipfile.is_zipfile(path / "model.pt"):
        raise ValueError("model.pt is missing or not a torch archive")
    return RunResult(**record, predictions=predictions, path=path)


def _save(result: RunResult, path: Path) -> None:
    save_torch(result.predictions, path / "predictions.pt")
    record = {"config": result.config, "metrics": result.metrics, "history": result.history}
    write_text(json.dumps(record, indent=1), path / "result.json")


@contextlib.contextmanager
def _one_thread_on_cpu(device: torch.device):
    """A CPU run trains on one thread: with more, float reductions change order with the thread
    count, and a run's numbers would depend on the machine's cores and on whether the sweep ran
    it in-process or in a worker, which its key does not (and should not) cover."""
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _train(config: RunConfig, path: Path, data, runs: dict) -> RunResult:
    params = method_params(config.method.name, config.method.params)
    method_cls = METHODS[config.method.name]
    modalities = method_cls.modalities(params, data.modalities)
    torch.manual_seed(config.seed)
    model = build_model(config.model, data, modalities)
    method_cls.initialise(model, runs)
    method = method_cls(params, model=model, task=data.task)
    trainer = Trainer(model, method, config.train, seed=config.seed, task=data.task,
                      checkpoint_path=path / "checkpoint.pt", description=f"{config.method.name} seed {config.seed}")
    if config.record_features and dist.is_main():   # files: rank 0 only
        trainer.add_callback("on_epoch_end", FeatureRecorder(data, path / "features", config.record_features))
    with _one_thread_on_cpu(trainer.device):
        fit = trainer.fit(data)
    if dist.is_main():
        save_torch(fit.best_state, path / "model.pt")
    metrics = {"best_epoch": fit.best_epoch, "epochs": len(fit.history), "stopped_early": fit.stopped_early}
    heads = ["fused", *model.modalities]
    for split, preds in fit.predictions.items():
        metrics.update({f"{split}_{k}": v for k, v in head_metrics(preds, heads, data.task).items()})
    if data.task == "classification":
        # Each modality's contribution to the fused test accuracy (latent permuted / Shapley with
        # zeroed latents), from the best-validation weights the trainer has restored, in eval mode,
        # with a torch.Generator seeded by the run's seed (mcrlib.evaluation.model_contributions).
        from mcrlib.evaluation import model_contributions
        contributions = model_contributions(model, data, "test", seed=config.seed, device=trainer.device,
                                            batch_size=max(256, config.train.batch_size))
        metrics.update({f"test_{k}": v for k, v in contributions.items()})
    return RunResult(config=to_dict(config), metrics=metrics, history=fit.history,
                     predictions=fit.predictions)


def run(config: RunConfig | dict, cache_dir: str | Path | None = None) -> RunResult:
    """Train (or load from the cache) the run described by `config`."""
    if not isinstance(config, RunConfig):
        config = from_dict(RunConfig, config)
    config = check_run(config)
    dist.setup(dist.local_device(resolve_device(config.train.device)))   # under torchrun only
    cache_dir = Path(cache_dir or DEFAULT_CACHE)
    path = cache_dir / run_key(config)
    cached = None
    if (path / "result.json").exists():
        try:
            cached = load_result(path)
        except Exception as err:  # a corrupt record is reported and recomputed, never used
            print(f"[mcrlib] recomputing run {path.name}: its record is unreadable ({err})")
    # Under torchrun the ranks agree (a collective, before anyone can write) to use the cache
    # entry or to train; in one process this is `cached is not None`.
    if all(dist.gather_objects(cached is not None)):
        return cached
    # The runs this one is built from, as its method declares them (trained first if not cached,
    # visibly, as the same runs the tables use), before seeding.
    runs = {role: run(c, cache_dir) for role, c in required_runs(config).items()}
    data = load_dataset(config.data.name, config.data.params)
    method_cls = METHODS[config.method.name]
    path.mkdir(parents=True, exist_ok=True)
    if method_cls.trains:
        result = _train(config, path, data, runs)
    else:
        predictions, metrics = method_cls.compose(config, runs, data)
        result = RunResult(config=to_dict(config), metrics=metrics, predictions=predictions)
    if dist.is_main():
        _save(result, path)
        (path / "checkpoint.pt").unlink(missing_ok=True)
    dist.barrier()   # under torchrun the other ranks return once rank 0 has written the run
    result.path = path
    return result


def main(argv=None) -> None:
    """mcr-run CONFIG.yaml [--cache DIR]: train one run from a YAML RunConfig, print its metrics.

    A user's mistake exits with `mcr-run: error: ...` on stderr: status 2 for a config error
    (missing or malformed file, unknown key, invalid value), 1 for missing or corrupt data."""
    from mcrlib.cli import read_yaml, user_errors
    prog = "mcr-run"
    parser = argparse.ArgumentParser(prog=prog, description=main.__doc__)
    parser.add_argument("config", help="YAML file with data/model/train/method/seed keys")
    parser.add_argument("--cache", default=None, help=f"run cache folder (default {DEFAULT_CACHE})")
    parser.add_argument("--explain-key", action="store_true",
                        help="print what the run key covers (filled config, data fingerprint, code digest, "
                             "the runs it is built from) and the key, without training")
    args = parser.parse_args(argv)
    if args.explain_key:
        from mcrlib.run_key import key_material
        with user_errors(prog):
            config = check_run(from_dict(RunConfig, read_yaml(args.config)))
            print(json.dumps({"key": run_key(config), **key_material(config)}, indent=1, default=str))
        return
    try:
        with user_errors(prog):
            result = run(read_yaml(args.config), args.cache)
    finally:
        dist.teardown()
    if dist.env_world_size() > 1 and int(os.environ.get("RANK", "0")) != 0:
        return   # under torchrun rank 0 prints
    print(json.dumps(result.metrics, indent=1))
    print(f"saved in {result.path}")


if __name__ == "__main__":
    main()
