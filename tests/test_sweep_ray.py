"""mcrlib.sweep past one process: the run grid as Ray tasks (results equal to a serial run's, also
when a worker dies mid-grid), and local worker processes spread over the GPUs."""
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from mcrlib import sweep
from mcrlib.config import RunConfig, from_dict
from mcrlib.run_key import required_runs
from tests.conftest import TINY_RUN

ROOT = Path(__file__).resolve().parents[1]


def _grid() -> list[RunConfig]:
    """Two seeds of joint, MCR and an ensemble (second phase) with its unimodal members."""
    configs = [from_dict(RunConfig, {**TINY_RUN, "train": {**TINY_RUN["train"], "max_epochs": 2},
                                     "method": {"name": name}, "seed": seed})
               for seed in (0, 1) for name in ("joint", "mcr", "ensemble")]
    members = [m for c in configs for m in required_runs(c).values()]
    return configs + members


def _assert_same_results(results, reference):
    assert len(results) == len(reference)
    for got, want in zip(results, reference):
        assert got.config == want.config
        assert got.metrics == want.metrics
        assert got.history == want.history


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    configs = _grid()
    return configs, sweep.run_all(configs, tmp_path_factory.mktemp("serial"), workers=1)


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_grid_on_ray_equals_serial_run(local_ray, serial, tmp_path, monkeypatch):
    configs, reference = serial
    monkeypatch.setenv(sweep.RAY_ADDRESS_ENV, "local")     # the address from the environment
    results = sweep.run_all(configs, tmp_path, workers=2)
    _assert_same_results(results, reference)
    assert all(r.path.parent == tmp_path.resolve() for r in results)   # read from the shared cache
    # A second pass finds every run in the cache: nothing is submitted to Ray.
    monkeypatch.setattr(sweep, "_RAY_TASK", None)
    _assert_same_results(sweep.run_all(configs, tmp_path, workers=2), reference)


def test_grid_on_ray_survives_killed_workers(local_ray, serial, tmp_path, monkeypatch):
    """One run in each phase kills its Ray worker (os._exit) on its first attempt; Ray retries
    the task and the grid completes with the serial run's results."""
    configs, reference = serial
    markers = tmp_path / "markers"
    markers.mkdir()
    run_on_ray = sweep._run_on_ray

    def die_once(config, cache_dir):
        if config.seed == 1 and config.method.name in ("mcr", "ensemble"):
            marker = markers / config.method.name
            if not marker.exists():
                marker.touch()
                os._exit(1)
        return run_on_ray(config, cache_dir)

    monkeypatch.delenv(sweep.RAY_ADDRESS_ENV, raising=False)
    monkeypatch.setattr(sweep, "_RAY_TASK", die_once)
    results = sweep.run_all(configs, tmp_path / "cache", workers=2, ray_address="local")
    assert sorted(p.name for p in markers.iterdir()) == ["ensemble", "mcr"]   # both workers died
    _assert_same_results(results, reference)


def test_importing_sweep_does_not_import_ray():
    code = "import sys, mcrlib.sweep; assert 'ray' not in sys.modules, 'ray imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_no_ray_address_means_no_ray(monkeypatch):
    monkeypatch.delenv(sweep.RAY_ADDRESS_ENV, raising=False)
    assert sweep.resolve_ray_address() is None and sweep.resolve_ray_address("") is None
    monkeypatch.setenv(sweep.RAY_ADDRESS_ENV, "auto")
    assert sweep.resolve_ray_address() == "auto" and sweep.resolve_ray_address("local") == "local"


def test_an_address_without_ray_installed_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ray", None)       # `import ray` fails as if absent
    monkeypatch.setenv(sweep.RAY_ADDRESS_ENV, "auto")
    with pytest.raises(ImportError, match=r"mcrlib\[cluster\]"):
        sweep.run_all(_grid()[:1], tmp_path)


# --- local worker processes, one GPU each (CUDA's device count monkeypatched: no GPU here) --------

def test_worker_k_gets_gpu_k_mod_n(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert sweep.visible_gpus() == ["0", "1", "2"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6,7")
    gpus = sweep.visible_gpus()
    assert gpus == ["4", "6", "7"]
    counter = multiprocessing.Value("i", 0)
    seen = []
    for _ in range(5):
        sweep._init_worker(counter, gpus)
        seen.append(os.environ["CUDA_VISIBLE_DEVICES"])
    assert seen == ["4", "6", "7", "4", "6"]
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert sweep.visible_gpus() == []
    sweep._init_worker(counter, [])
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""    # no GPU: left alone


def _device_seen(barrier) -> str:
    barrier.wait(timeout=120)        # both workers hold a task at once
    return os.environ.get("CUDA_VISIBLE_DEVICES", "")


def test_local_pool_spreads_workers_over_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with multiprocessing.get_context("spawn").Manager() as manager:
        barrier = manager.Barrier(2)
        with sweep.local_pool(2) as pool:
            seen = sorted(pool.map(_device_seen, [barrier, barrier]))
    assert seen == ["0", "1"]


def test_grid_in_local_gpu_workers_equals_serial_run(serial, tmp_path, monkeypatch):
    """Without Ray, `workers` local processes (one "GPU" each here) give the serial results."""
    configs, reference = serial
    monkeypatch.delenv(sweep.RAY_ADDRESS_ENV, raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    seed0 = [i for i, c in enumerate(configs) if c.seed == 0]    # both phases, half the time
    _assert_same_results(sweep.run_all([configs[i] for i in seed0], tmp_path, workers=2),
                         [reference[i] for i in seed0])
