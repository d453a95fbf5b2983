"""Run many configs through the run cache, optionally in parallel worker processes."""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Sequence

import torch
from tqdm.auto import tqdm

from mcrlib.config import RunConfig
from mcrlib.run_key import required_runs
from mcrlib.runs import RunResult, run


def _run_in_worker(config: RunConfig, cache_dir: Path) -> RunResult:
    # Small models are dominated by per-op overhead: one thread per process beats two
    # threads in one process on a 2-core machine.
    torch.set_num_threads(1)
    return run(config, cache_dir)


def _finished(indices, configs, cache_dir, workers):
    """(index, result) as each run finishes, in order; in worker processes when workers > 1."""
    if workers <= 1 or len(indices) <= 1:
        for i in indices:
            yield i, run(configs[i], cache_dir)
        return
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from zip(indices, pool.map(_run_in_worker, [configs[i] for i in indices],
                                         [cache_dir] * len(indices)))


def run_all(configs: Sequence[RunConfig], cache_dir: str | Path, workers: int = 1,
            desc: str = "runs") -> list[RunResult]:
    """Results in the order of `configs`. Runs built from other runs (their method's
    `required_runs`: ensembles, Uni-Pre, MCR's init_from_unimodal) go in a second phase, so the
    runs they need are trained once, in the first."""
    cache_dir = Path(cache_dir)
    dependent = [bool(required_runs(c)) for c in configs]
    phases = [[i for i, d in enumerate(dependent) if not d], [i for i, d in enumerate(dependent) if d]]
    results: list[RunResult | None] = [None] * len(configs)
    with tqdm(total=len(configs), desc=desc) as bar:
        for phase in phases:
            for i, result in _finished(phase, configs, cache_dir, workers):
                results[i] = result
                bar.update()
    return results
