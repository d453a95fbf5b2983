"""Run many configs through the run cache: in-process, in local worker processes (one GPU each,
round-robin, when the machine has several), or as tasks on a Ray cluster.

Ray (the optional `mcrlib[cluster]` extra) is used when an address is given: `run_all`'s
`ray_address` argument or the `MCR_RAY_ADDRESS` environment variable ("local" starts a Ray
instance in this process with `workers` CPUs; "auto" or "HOST:6379" joins a running cluster).
Each run is then a Ray task calling `mcrlib.runs.run(config, cache_dir)`, retried when its worker
dies; the run cache, on storage every node shares, stays the one source of results (a retried
run resumes from its checkpoint there, and the driver reads each finished run back from it).
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Sequence

import torch
from tqdm.auto import tqdm

from mcrlib.config import RunConfig, from_dict
from mcrlib.run_key import check_run, required_runs, run_key
from mcrlib.runs import RunResult, load_result, run

RAY_ADDRESS_ENV = "MCR_RAY_ADDRESS"
RAY_MAX_RETRIES = 3


def _run_in_worker(config: RunConfig, cache_dir: Path) -> RunResult:
    # Small models are dominated by per-op overhead: one thread per process beats two
    # threads in one process on a 2-core machine.
    torch.set_num_threads(1)
    return run(config, cache_dir)


# --- local worker processes, one GPU each -------------------------------------------------------

def visible_gpus() -> list[str]:
    """The CUDA devices this process may use, as CUDA_VISIBLE_DEVICES entries ([] without CUDA)."""
    n = torch.cuda.device_count()
    if n <= 0:
        return []
    listed = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return listed[:n] if len(listed) >= n else [str(k) for k in range(n)]


def _init_worker(counter, gpus: Sequence[str]) -> None:
    """Pool initializer: worker k (in start order) sees only GPU k mod N. Set before the worker
    touches CUDA, so its runs' `cuda` (device 0) is that GPU."""
    with counter.get_lock():
        k = counter.value
        counter.value += 1
    if gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus[k % len(gpus)]


def local_pool(workers: int) -> ProcessPoolExecutor:
    """`workers` spawned processes; with N > 0 CUDA devices, worker k uses GPU k mod N."""
    context = multiprocessing.get_context("spawn")
    return ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                               initargs=(context.Value("i", 0), visible_gpus()))


def _finished(indices, configs, cache_dir, workers):
    """(index, result) as each run finishes, in order; in worker processes when workers > 1."""
    if workers <= 1 or len(indices) <= 1:
        for i in indices:
            yield i, run(configs[i], cache_dir)
        return
    with local_pool(workers) as pool:
        yield from zip(indices, pool.map(_run_in_worker, [configs[i] for i in indices],
                                         [cache_dir] * len(indices)))


# --- Ray ------------------------------------------------------------------------------------------

def _run_on_ray(config: RunConfig, cache_dir: str) -> str:
    """A Ray task: the run, into the shared cache; returns its directory (the driver reads the
    result there rather than shipping predictions through Ray's object store)."""
    torch.set_num_threads(1)
    return str(run(config, cache_dir).path)


# The function each Ray task runs (tests swap in one that kills its worker once).
_RAY_TASK = _run_on_ray


def resolve_ray_address(ray_address: str | None = None) -> str | None:
    """The Ray address to use: the argument, else MCR_RAY_ADDRESS; None (or "") means no Ray."""
    address = ray_address if ray_address is not None else os.environ.get(RAY_ADDRESS_ENV)
    return address or None


def _connect_ray(address: str, workers: int):
    try:
        import ray
    except ImportError as err:
        raise ImportError(f"Ray address {address!r} given ({RAY_ADDRESS_ENV} or ray_address) but Ray is "
                          "not installed: pip install 'mcrlib[cluster]'") from err
    if not ray.is_initialized():
        if address == "local":
            ray.init(num_cpus=max(1, workers), include_dashboard=False)
        else:
            ray.init(address=address)
    return ray


def _finished_on_ray(ray, indices, configs, cache_dir: Path):
    """(index, result) for each run as its Ray task finishes (in completion order). Runs already
    in the cache are read here; configs with the same run key share one task."""
    by_key: dict[str, list[int]] = {}
    for i in indices:
        config = configs[i] if isinstance(configs[i], RunConfig) else from_dict(RunConfig, configs[i])
        config = check_run(config)
        path = cache_dir / run_key(config)
        if (path / "result.json").exists():
            try:
                result = load_result(path)
            except Exception:
                pass    # unreadable: the task recomputes it (mcrlib.runs.run reports it)
            else:
                yield i, result
                continue
        by_key.setdefault(path.name, []).append(i)
    if not by_key:
        return
    # One GPU per run when the driver or the cluster has any (a CPU-only head node may drive GPU
    # workers); Ray then sets each task's CUDA_VISIBLE_DEVICES to its GPU.
    gpus = 1 if torch.cuda.is_available() or ray.cluster_resources().get("GPU", 0) > 0 else 0
    task = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=RAY_MAX_RETRIES)(_RAY_TASK)
    pending = {task.remote(configs[same[0]], str(cache_dir)): same for same in by_key.values()}
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            same = pending.pop(ref)
            path = Path(ray.get(ref))
            try:
                result = load_result(path)
            except FileNotFoundError as err:
                raise RuntimeError(f"run {path.name} finished on a Ray worker but its record is not in "
                                   f"{cache_dir} here: the run cache must be on storage every node "
                                   "shares (point the cache directory / MCR_RUN_CACHE at it)") from err
            for i in same:
                yield i, result


def run_all(configs: Sequence[RunConfig], cache_dir: str | Path, workers: int = 1,
            desc: str = "runs", ray_address: str | None = None) -> list[RunResult]:
    """Results in the order of `configs`. Runs built from other runs (their method's
    `required_runs`: ensembles, Uni-Pre, MCR's init_from_unimodal) go in a second phase, so the
    runs they need are trained once, in the first.

    Without a Ray address, uncached runs train in this process (workers <= 1) or in `workers`
    local processes; with one (`ray_address` or MCR_RAY_ADDRESS, see the module docstring), each
    is a Ray task, and the bar counts runs as their tasks finish."""
    cache_dir = Path(cache_dir)
    address = resolve_ray_address(ray_address)
    ray = None
    if address is not None:
        ray = _connect_ray(address, workers)
        cache_dir = cache_dir.resolve()    # Ray workers may start in another directory
    dependent = [bool(required_runs(c)) for c in configs]
    phases = [[i for i, d in enumerate(dependent) if not d], [i for i, d in enumerate(dependent) if d]]
    results: list[RunResult | None] = [None] * len(configs)
    with tqdm(total=len(configs), desc=desc) as bar:
        for phase in phases:
            finished = (_finished_on_ray(ray, phase, configs, cache_dir) if ray is not None
                        else _finished(phase, configs, cache_dir, workers))
            for i, result in finished:
                results[i] = result
                bar.update()
    return results


def result_key(result: RunResult) -> str:
    """The run key of a result that `run_all` (or `run`) returned: the name of its cache folder,
    where `run` stores it (cache_dir / run_key(config)); read, not hashed again."""
    return Path(result.path).name
