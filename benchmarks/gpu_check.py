"""The GPU path in one short check (issue "MCR close to free"): on a CUDA machine, in minutes,

  1. the cost table (benchmarks/cost.py) at torchvision's ResNet-18 width (64) on CREMA-D-shaped
     inputs (a 1 x 257 x 188 spectrogram, 3 RGB frames of 224 x 224), in fp32 and in bf16;
  2. one short joint and one short MCR training run (the Trainer, data resident on the GPU,
     bf16 autocast) on random CREMA-D-shaped data: epoch time and samples per second;
  3. GPU utilisation and memory, sampled by nvidia-smi every 200 ms throughout.

It writes everything as one JSON (`--out`) and prints it.

    python -m benchmarks.gpu_check --out gpu_check.json        (or benchmarks/gpu_check.sh)

`--smoke` shrinks every size (width 8, 32 x 32 inputs) so that the test suite runs the whole
script on a CPU; its numbers mean nothing.
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.cost import PERTURBATIONS, measure_cost
from mcrlib.build import build, resolve
from mcrlib.config import MethodConfig, ModelConfig, RunConfig, TrainConfig
from mcrlib.data import TensorSplits
from mcrlib.train import Trainer

FULL = {"shapes": {"audio": (1, 257, 188), "visual": (3, 3, 224, 224)}, "width": 64, "n_classes": 6,
        "batch_size": 64, "train_samples": 1024, "epochs": 2, "repeats": 5, "steps": 3}
SMOKE = {"shapes": {"audio": (1, 32, 24), "visual": (3, 3, 32, 32)}, "width": 8, "n_classes": 6,
         "batch_size": 8, "train_samples": 32, "epochs": 1, "repeats": 1, "steps": 1}


class GpuSampler:
    """nvidia-smi's utilisation and memory every 200 ms in a background process (None without it)."""

    def __init__(self):
        self.proc, self.file = None, tempfile.NamedTemporaryFile("w+", suffix=".csv", delete=False)
        if shutil.which("nvidia-smi"):
            self.proc = subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu,memory.used",
                                          "--format=csv,noheader,nounits", "-lms", "200"],
                                         stdout=self.file, stderr=subprocess.DEVNULL)

    def summary(self) -> dict | None:
        if self.proc is None:
            return None
        self.proc.terminate()
        self.proc.wait()
        rows = [line.split(",") for line in Path(self.file.name).read_text().splitlines() if line.count(",") == 1]
        util = [float(u) for u, _ in rows]
        memory = [float(m) for _, m in rows]
        if not util:
            return {"samples": 0}
        return {"samples": len(util), "utilisation_mean_pct": sum(util) / len(util),
                "utilisation_max_pct": max(util), "memory_max_mib": max(memory)}


def random_splits(size: dict, device) -> TensorSplits:
    gen = torch.Generator().manual_seed(0)
    n = size["train_samples"]

    def split(rows):
        tensors = {m: torch.randn(rows, *s, generator=gen) for m, s in size["shapes"].items()}
        return {**tensors, "label": torch.randint(size["n_classes"], (rows,), generator=gen)}
    return TensorSplits({"train": split(n), "val": split(max(8, n // 8)), "test": split(max(8, n // 8))},
                        modalities=tuple(size["shapes"]), n_classes=size["n_classes"])


def training_run(method: str, size: dict, device: str, precision: str) -> dict:
    data = random_splits(size, "cpu")
    params = {"copies": 32} if method == "mcr" else {}
    cfg = TrainConfig(batch_size=size["batch_size"], max_epochs=size["epochs"], warmup_epochs=0, patience=10,
                      device=device, progress=False, precision=precision)
    config = RunConfig(model=ModelConfig(resnet_width=size["width"]), train=cfg,
                       method=MethodConfig(name=method, params=params), seed=0)
    resolved = resolve(config, data=data)
    model, built = build(resolved, data)   # seeded with 0, as a run with seed 0
    trainer = Trainer(model, built, resolved.config.train, seed=resolved.config.seed, task=data.task)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fit = trainer.fit(data)
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()   # the timer must wait for the queued kernels
    seconds = time.perf_counter() - start
    samples = size["epochs"] * (size["train_samples"] // size["batch_size"]) * size["batch_size"]
    return {"method": method, "precision": precision, "epochs": size["epochs"], "seconds": seconds,
            "train_samples_per_s": samples / seconds, "last_train_loss": fit.history[-1]["train_loss_total"]}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, any device (tests)")
    args = parser.parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        print("gpu_check: error: no CUDA device here; this check is for a GPU machine "
              "(--smoke runs it at toy sizes on any device)", file=sys.stderr)
        raise SystemExit(2)
    size = SMOKE if args.smoke else FULL
    device = "cuda" if torch.cuda.is_available() else "cpu"
    sampler = GpuSampler()
    started = time.perf_counter()
    report = {"device": torch.cuda.get_device_name() if device == "cuda" else platform.processor() or "cpu",
              "torch": torch.__version__, "cuda": torch.version.cuda, "size": {**size, "shapes": {
                  m: list(s) for m, s in size["shapes"].items()}}, "cost": [], "training": []}
    perturbations = [p for p in PERTURBATIONS if p != "noise_input"]   # P copies of 224 x 224 frames: minutes
    for precision in ("fp32", "bf16"):
        table = measure_cost(model="cremad", copies=32, batch_size=size["batch_size"], repeats=size["repeats"],
                             steps=size["steps"], model_config={"resnet_width": size["width"]},
                             shapes=size["shapes"], n_classes=size["n_classes"], perturbations=perturbations,
                             device=device, threads=None, precision=precision)
        report["cost"] += table[["variant", "precision", "time_ms", "time_ratio", "memory_mib", "memory_ratio"]
                                ].round(4).to_dict("records")
    for method in ("joint", "mcr"):
        report["training"].append(training_run(method, size, device, "bf16" if device == "cuda" else "fp32"))
    report["gpu"] = sampler.summary()
    report["seconds"] = time.perf_counter() - started
    text = json.dumps(report, indent=1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return report


if __name__ == "__main__":
    main()
