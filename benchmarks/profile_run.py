"""Where a training run's time goes: data, forward, loss, backward, optimizer, evaluation and
checkpointing, for one epoch of real runs, each method on the same data and weights.

    python -m benchmarks.profile_run --methods joint mcr --epochs 2

The run is the quick profile's AV-Digits run (params.yaml `benchmarks`, fold 0, the calibrated
recipe), or the synthetic study's (`--dataset synthetic`), its model and method built by
mcrlib.build as the run builds them. Each step is the trainer's own (`Trainer.step`, with its
autocast, finiteness check and method hooks), its phases timed through the step's `mark` hook;
one CPU thread by default, as the sweep's workers run. Times are totals per epoch in ms, the
last epoch of `--epochs` (the first pays one-off allocations); `--top N` also prints
torch.profiler's N costliest operators of a step.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

from mcrlib.atomic import save_torch
from mcrlib.build import build, resolve
from mcrlib.data import load_dataset
from mcrlib.train import Trainer, warmup_cosine


def run_config(dataset: str, method: str, root: Path):
    from mcrlib.profiles import load_stage
    from mcrlib.studies import benchmarks, synthetic
    params = load_stage("quick", "synthetic", root, reads=("benchmarks",))   # calibrated, as the stages run
    if dataset == "synthetic":
        study = synthetic.load_study(params["synthetic"])
        return study.run_config(method, max(study.ratios), 0)
    section = params["benchmarks"]
    study = benchmarks.load_study({**section, "datasets": benchmarks.resolve_datasets(section["datasets"], root)})
    return study.run_config(method, "AV-Digits", study.seeds[0])


def profile_epoch(config, epochs: int, top: int = 0) -> dict[str, float]:
    data = load_dataset(config.data.name, config.data.params)
    # the run's model and method, built as mcrlib.runs builds them (same weights, same head)
    model, method = build(resolve(config), data)
    trainer = Trainer(model, method, config.train, seed=config.seed, task=data.task)
    steps = len(data.splits["train"]["label"]) // config.train.batch_size
    trainer.schedule = warmup_cosine(round(config.train.warmup_epochs * steps), config.train.max_epochs * steps)
    for epoch in range(epochs):
        phases = dict.fromkeys(["data", "forward", "loss", "backward", "optimizer"], 0.0)
        clock = [time.perf_counter()]

        def mark(phase):   # the time since the last mark goes to `phase`
            now = time.perf_counter()
            phases[phase] += now - clock[0]
            clock[0] = now

        model.train()
        method.train()
        method.on_epoch_start(trainer.epoch_state(data, epoch))
        clock[0] = time.perf_counter()
        for step, batch in enumerate(data.loader("train", config.train.batch_size, epoch, config.seed)):
            batch = {k: v.to(trainer.device) for k, v in batch.items()}
            mark("data")
            trainer.step(batch, epoch * steps + step, mark=mark)   # the trainer's own step
        for split in ("val", "test"):
            start = time.perf_counter()
            trainer.evaluate(data, split)
            phases[f"evaluate {split}"] = time.perf_counter() - start
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as folder:   # the trainer's per-epoch checkpoint write
            save_torch(trainer.checkpoint_state(epoch, [], {"state": model.state_dict()}),
                       Path(folder) / "checkpoint.pt")
        phases["checkpoint"] = time.perf_counter() - start
    if top:
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            batch = {k: v.to(trainer.device) for k, v in
                     next(iter(data.loader("train", config.train.batch_size, 0, config.seed))).items()}
            for _ in range(5):
                trainer.step(batch, 0)
        print(f"--- {config.method.name}: torch.profiler, 5 steps")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top))
    return {k: v * 1e3 for k, v in phases.items()} | {"steps": steps}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=["avdigits", "synthetic"], default="avdigits")
    parser.add_argument("--methods", nargs="+", default=["joint", "mcr"])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--top", type=int, default=0, help="also print the N costliest operators")
    parser.add_argument("--root", type=Path, default=Path("."), help="the project's root (params.yaml)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = {m: profile_epoch(run_config(args.dataset, m, args.root), args.epochs, args.top) for m in args.methods}
    table = pd.DataFrame(rows)
    table.loc["train total"] = table.loc[["data", "forward", "loss", "backward", "optimizer"]].sum()
    table.loc["epoch total"] = table.loc[["train total", "evaluate val", "evaluate test", "checkpoint"]].sum()
    print(f"ms per epoch ({args.dataset}, {args.threads} thread(s)):")
    print(table.round(1).to_string())


if __name__ == "__main__":
    main()
