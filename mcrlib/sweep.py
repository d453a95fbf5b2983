"""Run many configs through the run cache, optionally in parallel worker processes."""
from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Sequence

import torch
from tqdm.auto import tqdm

from mcrlib.config import RunConfig
from mcrlib.runs import RunResult, run


def _run_in_worker(config: RunConfig, cache_dir: Path) -> RunResult:
    # Small models are dominated by per-op overhead: one thread per process beats two
    # threads in one process on a 2-core machine.
    torch.set_num_threads(1)
    return run(config, cache_dir)


def run_all(configs: Sequence[RunConfig], cache_dir: str | Path, workers: int = 1,
            desc: str = "runs") -> list[RunResult]:
    """Results in the order of `configs`. Composite runs (ensembles) go last so the unimodal
    runs they combine are already in the cache."""
    cache_dir = Path(cache_dir)
    order = sorted(range(len(configs)), key=lambda i: configs[i].method.name == "ensemble")
    results: list[RunResult | None] = [None] * len(configs)
    with tqdm(total=len(configs), desc=desc) as bar:
        if workers <= 1:
            for i in order:
                results[i] = run(configs[i], cache_dir)
                bar.update()
        else:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                trained = [i for i in order if configs[i].method.name != "ensemble"]
                for i, result in zip(trained, pool.map(_run_in_worker, [configs[i] for i in trained],
                                                       [cache_dir] * len(trained))):
                    results[i] = result
                    bar.update()
            for i in order:
                if results[i] is None:
                    results[i] = run(configs[i], cache_dir)
                    bar.update()
    return results
