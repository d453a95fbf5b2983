"""run(config) -> RunResult, cached on disk under its run key (mcrlib.run_key: the config with
its defaults filled in, the data's content fingerprint and the source of every module the run
imports).

A run directory holds `result.json` (config, metrics, per-epoch history), `predictions.pt`
(validation and test logits of the fused head and of every unimodal head, with labels and
sample groups) and `model.pt` (the best-validation weights). Each is written atomically, and
`result.json` last, so its presence marks a complete run. While training, `checkpoint.pt` is
written after the first epoch that ends CHECKPOINT_EVERY_S seconds after the last one (every
epoch under torchrun); a killed run restarted with the same config resumes from it exactly.

Under torchrun (`torchrun --nproc_per_node=W -m mcrlib.cli config.yaml`) one run trains on W
processes (docs/distributed.md); only rank 0 writes the run directory, the others wait for it
and return the same result.
"""
from __future__ import annotations

import contextlib
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mcrlib import distributed as dist
from mcrlib.atomic import save_torch, write_text
from mcrlib.build import ResolvedRun, build, load_model, resolve
from mcrlib.config import RunConfig, to_dict
from mcrlib.data import TensorSplits, load_dataset
from mcrlib.data.registry import data_identity
from mcrlib.evaluation import head_metrics
from mcrlib.features import FeatureRecorder
from mcrlib.methods import METHODS
from mcrlib.run_key import required_runs, run_key  # noqa: F401 (run_key: callers import it from here too)
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
        """The best-validation weights (model.pt), on the CPU."""
        return torch.load(self.path / "model.pt", map_location="cpu", weights_only=True)

    def load_model(self, data: TensorSplits | None = None, device: str | torch.device = "cpu"):
        """(the trained model, in eval mode on `device`; its data): rebuilt from this run's config
        alone (which names the fusion head its method needed) with model.pt's weights. `data`:
        the run's dataset if already loaded, else it is loaded from the config."""
        resolved = resolve(self.config)
        if not resolved.method_class.trains:
            raise ValueError(f"method {resolved.name!r} combines other runs and has no model of its own")
        data = data if data is not None else load_dataset(resolved.config.data.name, resolved.config.data.params)
        return load_model(resolved, self.model_state(), data, device), data


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


# A checkpoint costs ~15 ms; the synthetic MLP's epochs ~60 ms, AV-Digits' ResNet's ~1.6 s. At
# most this many seconds of a killed run are redone.
CHECKPOINT_EVERY_S = 10.0


def _train(resolved: ResolvedRun, path: Path, data, runs: dict) -> RunResult:
    config = resolved.config
    model, method = build(resolved, data, runs)
    trainer = Trainer(model, method, config.train, seed=config.seed, task=data.task,
                      checkpoint_path=path / "checkpoint.pt", checkpoint_every_s=CHECKPOINT_EVERY_S,
                      description=f"{config.method.name} seed {config.seed}")
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


_last_data: tuple[str, TensorSplits] | None = None


def _load_data(config: RunConfig) -> TensorSplits:
    """The run's dataset. The last one loaded stays in this process: a sweep's runs come grouped by
    data (the synthetic study's 18 methods of one seed and ratio share one draw, 0.3 s to make),
    and nothing a run does writes into its TensorSplits. Keyed by the data's identity as the run
    key has it (a prepared folder's content fingerprint included), so a folder prepared again is
    loaded again. The old one is released before another is loaded: at most one is held."""
    global _last_data
    key = json.dumps(data_identity(config.data.name, config.data.params), sort_keys=True)
    if _last_data is None or _last_data[0] != key:
        _last_data = None
        _last_data = (key, load_dataset(config.data.name, config.data.params))
    return _last_data[1]


def run(config: RunConfig | dict, cache_dir: str | Path | None = None) -> RunResult:
    """Train (or load from the cache) the run described by `config`."""
    resolved = resolve(config)
    config = resolved.config
    dist.setup(dist.local_device(resolve_device(config.train.device)))   # under torchrun only
    cache_dir = Path(cache_dir or DEFAULT_CACHE)
    path = cache_dir / resolved.key
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
    data = _load_data(config)
    path.mkdir(parents=True, exist_ok=True)
    if resolved.method_class.trains:
        result = _train(resolved, path, data, runs)
    else:
        predictions, metrics = resolved.method_class.compose(config, runs, data)
        result = RunResult(config=to_dict(config), metrics=metrics, predictions=predictions)
    if dist.is_main():
        _save(result, path)
        (path / "checkpoint.pt").unlink(missing_ok=True)
    dist.barrier()   # under torchrun the other ranks return once rank 0 has written the run
    result.path = path
    return result


if __name__ == "__main__":
    # The command lives in mcrlib.cli, outside every run's code closure: importing it from here
    # would put it back in (the closure follows every import), so this only points there.
    raise SystemExit("mcrlib.runs is not a command: run `mcr-run CONFIG.yaml` (or `python -m mcrlib.cli CONFIG.yaml`)")
