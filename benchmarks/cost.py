"""Cost of each L_MIPD perturbation (paper appendix A.6): time per training step and peak memory,
relative to joint training, measured side by side in one process.

    python -m benchmarks.cost --model mlp resnet --copies 32 --repeats 7

Every variant gets its own model (same initialisation), method and optimizer, built as a run
builds them. One repetition times `steps` training steps of every variant in turn (the order
rotates between repetitions), so slow phases of a shared machine hit all variants alike; each
ratio to joint training is taken within a repetition, and the table reports medians.

Memory is the peak above what is held just before the measured steps (weights, optimizer state,
the batch), i.e. what the steps themselves allocate:
  * CUDA: torch.cuda.max_memory_allocated() after torch.cuda.reset_peak_memory_stats();
  * CPU (Linux): the process's peak resident set size (VmHWM in /proc/self/status), reset
    before each measurement through /proc/self/clear_refs, after glibc's malloc_trim has given
    freed memory back, minus the resident size at the reset. No reset possible: NaN.
Inputs are random tensors of the datasets' shapes: cost depends on shapes, not on values.
On CPU the steps run on one thread by default: on a shared machine two threads contend with the
other processes and single steps then take up to a thousand times longer, at random.
"""
from __future__ import annotations

import argparse
import ctypes
import gc
import re
import time
from pathlib import Path

import pandas as pd
import torch

from mcrlib.build import build, resolve
from mcrlib.config import MethodConfig, ModelConfig, RunConfig, TrainConfig
from mcrlib.data import TensorSplits
from mcrlib.train import Trainer, resolve_device

# (modality -> sample shape, classes): the quick profile's synthetic data (vectors, MLP encoders)
# and AV-Digits (a 64 x 33 spectrogram and an 8 x 8 image, ResNet-18 encoders).
# "cremad": CREMA-D's shapes (a 1 x 257 x 188 spectrogram, 3 RGB frames of 224 x 224), the GPU check's.
SHAPES = {"mlp": ({"x1": (512,), "x2": (512,)}, 5),
          "resnet": ({"audio": (1, 64, 33), "visual": (1, 8, 8)}, 10),
          "cremad": ({"audio": (1, 257, 188), "visual": (3, 3, 224, 224)}, 6)}
PERTURBATIONS = ("permute", "noise_latent", "zero_latent", "noise_input", "zero_input")


def variants(mcr_params: dict, perturbations=PERTURBATIONS) -> dict[str, tuple[str, dict]]:
    """label -> (method, params): joint training, MCR without its game (the other MCR terms'
    share of the cost), and MCR with each perturbation."""
    out = {"joint": ("joint", {}), "mcr, no L_MIPD": ("mcr", {**mcr_params, "lambda_mipd": 0.0})}
    for name in perturbations:
        out[f"mcr, {name}"] = ("mcr", {**mcr_params, "perturbation": name})
    return out


def _trainer(method: str, params: dict, model_cfg: ModelConfig, shapes: dict, n_classes: int, device: str,
             precision: str = "fp32"):
    data = TensorSplits(splits={"train": {m: torch.zeros(1, *s) for m, s in shapes.items()}},
                        modalities=tuple(shapes), n_classes=n_classes)
    config = RunConfig(model=model_cfg, method=MethodConfig(name=method, params=params), seed=0,
                       train=TrainConfig(device=device, progress=False, precision=precision))
    # the model and method a run of this method builds (its fusion head, if it needs another),
    # from seed 0: every variant starts from the same weights
    resolved = resolve(config, data=data)
    model, built = build(resolved, data)
    return Trainer(model, built, resolved.config.train, seed=resolved.config.seed, task=data.task)


def train_step(trainer: Trainer, batch: dict) -> None:
    """The trainer's own step (`Trainer.step`, which `fit` runs): forward, the method's loss, the
    finiteness check, its backward and after-backward hooks, the optimizer."""
    trainer.step(batch, 0)


class PeakMemory:
    """Peak bytes allocated between start() and stop(), above the level at start()."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.how = "torch.cuda.max_memory_allocated" if self.cuda else "peak RSS (VmHWM, reset by /proc/self/clear_refs)"
        try:
            self._libc = ctypes.CDLL("libc.so.6")
        except OSError:
            self._libc = None

    @staticmethod
    def _status(key: str) -> float:
        return float(re.search(rf"{key}:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1)) * 1024

    def start(self) -> None:
        gc.collect()
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return
        try:
            if self._libc is not None:
                self._libc.malloc_trim(0)   # freed heap back to the system, so reuse shows as growth
            Path("/proc/self/clear_refs").write_text("5")   # resets VmHWM to the current RSS
            self.base = self._status("VmRSS")
        except (OSError, AttributeError):
            self.base = None

    def stop(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
            return float(torch.cuda.max_memory_allocated() - self.base)
        if self.base is None:
            return float("nan")
        return self._status("VmHWM") - self.base


def measure_cost(*, model: str = "mlp", copies: int = 32, batch_size: int = 32, repeats: int = 5,
                 steps: int = 3, mcr_params: dict | None = None, model_config: dict | None = None,
                 shapes: dict | None = None, n_classes: int | None = None, perturbations=PERTURBATIONS,
                 device: str = "auto", threads: int | None = 1, precision: str = "fp32") -> pd.DataFrame:
    """One row per variant: median time per step (ms) and its ratio to joint training, median
    peak step memory (MiB) and its ratio, how memory was measured, and the setting.
    `threads`: CPU threads while measuring (None: torch's default)."""
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _measure(model, copies, batch_size, repeats, steps, mcr_params, model_config, shapes, n_classes,
                        perturbations, device, precision).assign(threads=torch.get_num_threads(), precision=precision)
    finally:
        torch.set_num_threads(previous_threads)


def _measure(model, copies, batch_size, repeats, steps, mcr_params, model_config, shapes, n_classes,
             perturbations, device, precision="fp32") -> pd.DataFrame:
    default_shapes, default_classes = SHAPES[model]
    shapes, n_classes = shapes or default_shapes, n_classes or default_classes
    dev = resolve_device(device)
    model_cfg = ModelConfig(**(model_config or {}))
    specs = variants({**(mcr_params or {}), "copies": copies}, perturbations)
    trainers = {label: _trainer(m, p, model_cfg, shapes, n_classes, str(dev), precision)
                for label, (m, p) in specs.items()}
    gen = torch.Generator().manual_seed(0)
    batch = {m: torch.randn(batch_size, *s, generator=gen).to(dev) for m, s in shapes.items()}
    batch["label"] = torch.randint(n_classes, (batch_size,), generator=gen).to(dev)
    memory = PeakMemory(dev)
    for trainer in trainers.values():   # warm-up: lazy allocations (optimizer state), kernel choice
        train_step(trainer, batch)
    labels, records = list(trainers), []
    for r in range(repeats):
        for label in labels[r % len(labels):] + labels[:r % len(labels)]:
            memory.start()
            start = time.perf_counter()
            for _ in range(steps):
                train_step(trainers[label], batch)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            records.append({"repeat": r, "variant": label, "time_ms": (time.perf_counter() - start) / steps * 1e3,
                            "memory_mib": memory.stop() / 2 ** 20})
    frame = pd.DataFrame(records)
    joint = frame[frame.variant == "joint"].set_index("repeat")
    frame["time_ratio"] = frame["time_ms"] / frame["repeat"].map(joint["time_ms"])
    frame["memory_ratio"] = frame["memory_mib"] / frame["repeat"].map(joint["memory_mib"])
    summary = frame.groupby("variant", sort=False)[["time_ms", "time_ratio", "memory_mib", "memory_ratio"]].median()
    return summary.reset_index().assign(model=model, copies=copies, batch_size=batch_size, repeats=repeats,
                                        steps=steps, device=str(dev), memory_measure=memory.how)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", choices=sorted(SHAPES), default=["mlp", "resnet"])
    parser.add_argument("--copies", type=int, default=32, help="P (the paper's 32)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="training steps timed per repetition")
    parser.add_argument("--width", type=int, default=8, help="ResNet-18 base width (64: torchvision's)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (0: torch's default)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--out", type=Path, help="also write the table as CSV")
    args = parser.parse_args(argv)
    table = pd.concat([measure_cost(model=m, copies=args.copies, batch_size=args.batch_size, repeats=args.repeats,
                                    steps=args.steps, model_config={"resnet_width": args.width}, device=args.device,
                                    threads=args.threads or None, precision=args.precision)
                       for m in args.model], ignore_index=True)
    print(table.round(3).to_string(index=False))
    if args.out:
        table.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
