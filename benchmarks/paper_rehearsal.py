"""A rehearsal of the paper profile at the paper's shapes, on fabricated data (issue 25, part 2).

    make paper-rehearsal          # python -m benchmarks.paper_rehearsal, then benchmarks.paper_cost

1. Fabricate a few samples of every paper-profile dataset in its real on-disk layout and at real
   sizes (benchmarks/fabricate.py: CREMA-D FLV 480x360 at 30 fps + 16 kHz WAV, AVE 10 s MP4 and
   its lists, UCF AVI and its lists, the MultiBench pickles at the real feature dimensions,
   Something-Something HDF5 frames and labels).
2. Run every `prepare` of the paper profile's `data` section on them (profiles/paper.yaml's
   settings; only the root changes, and CREMA-D faces' EfficientNet-B2 gets random weights: the
   ImageNet weights cannot be downloaded here, and weights do not change the cost).
   (benchmarks/paper_prepare.py) -> results/paper_rehearsal/prepare.csv: dataset, samples, seconds, prepared bytes per sample.
3. For every dataset entry of the paper profile's `benchmarks` section, every method of that
   section and the unimodal runs that the Ensemble, Uni-Pre and MCR are built from: build the run
   as the run layer builds it (mcrlib.build, the entry's model, training and method params), on a
   batch of the prepared samples, and take two training steps (`Trainer.step`, the trainer's own):
   the first under torch.utils.flop_counter.FlopCounterMode (FLOPs per step), the second timed,
   with its peak memory (benchmarks.cost.PeakMemory: peak RSS above the level before the step).
   The pretrained encoders are built from configs of the real checkpoints' sizes with random
   weights (benchmarks/random_backbones.py: Wav2Vec2-large, HuBERT-base, ViViT-B); nothing is downloaded.
   -> results/paper_rehearsal/steps.csv.

Shapes are never shrunk: every sample has the paper's shape. The batch is: on 2 shared CPU cores a
paper-sized ResNet-18 step (32 clips of 3 frames at 224 x 224 and a spectrogram) takes about a
minute and the pretrained family's several, so each step runs on `--batch` samples (default
BATCH) and the table also gives the FLOPs scaled to the paper's batch (FLOPs are linear in the
batch: every counted operation is per sample) and a memory estimate at the paper's batch
(weights, gradients and Adam's state at their real size, plus the measured activations scaled by
the batch). A run that fails or exceeds its time budget is a row with its `status`, never dropped.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import shutil
import tempfile
import time
import traceback
from pathlib import Path

import pandas as pd
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.cost import PeakMemory
from benchmarks.paper_prepare import prepare_all
from benchmarks.random_backbones import RandomBackboneCache, random_encoders
from mcrlib.atomic import atomic_path

OUT = Path("results/paper_rehearsal")
PROFILE = "paper"
# The prepare stages of the paper profile, in the order they run (every key of its data section
# except AV-Digits, whose data are downloaded, not fabricated).
SKIP_DATA = {"avdigits"}
SKIP_ENTRIES = {"AV-Digits"}     # the quick profile's dataset: measured by benchmarks/cost.py already
# Samples per training step (the paper's batch is larger: the CSV scales FLOPs and memory to it).
BATCH = {"default": 2, "Conformer": 1, "Video Swin-T": 1, "Transformer": 32}
ORDER = ("joint", "mcr")
# Seconds of training steps per dataset entry, by family, after which its remaining runs are rows
# 'not run' (their FLOPs are extrapolated by benchmarks.paper_cost from joint training and the
# method's ratio to it where measured). The reference entries run every method: the ratios.
# Budget 0: joint training only (a pretrained-family step takes minutes on 2 shared cores).
BUDGET_S = {"ResNet-18": 150.0, "Transformer": 60.0, "Conformer": 0.0, "Video Swin-T": 0.0}
REFERENCE_ENTRIES = ("CREMA-D", "MOSI V-T")


# ---------------------------------------------------------------- the paper profile
def paper_sections(root: str | Path = ".") -> dict:
    from mcrlib.profiles import load_profile
    return load_profile(PROFILE, root)


def prepare_settings(root: str | Path = ".") -> dict[str, dict]:
    """{dataset: its prepare settings} of the paper profile's data section (AV-Digits aside)."""
    return {name: dict(settings or {}) for name, settings in paper_sections(root)["data"].items()
            if name not in SKIP_DATA}


def benchmark_study(prepared: dict[str, Path], root: str | Path = "."):
    """The paper profile's benchmarks study (AV-Digits aside), every entry reading its prepared
    folder under `prepared`."""
    from mcrlib.studies import benchmarks
    section = copy.deepcopy(paper_sections(root)["benchmarks"])
    datasets = {}
    for label, spec in section["datasets"].items():
        if label in SKIP_ENTRIES:
            continue
        spec = dict(spec)
        spec["params"] = {**spec.get("params", {}), "prepared": str(prepared[spec["name"]])}
        datasets[label] = spec
    section["datasets"] = datasets
    section["workers"] = 1
    return benchmarks.load_study(section)


# ---------------------------------------------------------------- training steps
ABLATION = "ablation:"
# The ablation variants whose step costs more than base MCR's (inputs perturbed through the
# encoders, a second encoder pass), measured on ABLATION_ENTRIES; every other variant changes
# latent-level choices or loss weights (benchmarks.paper_cost counts them at MCR's step).
ABLATION_VARIANTS = ("table4_perturbation/noise_input", "table4_perturbation/zero_input",
                     "open_choices/latent_source=eval_reforward")
ABLATION_ENTRIES = ("CREMA-D",)


def ablation_study(prepared: dict[str, Path], root: str | Path = "."):
    """The paper profile's ablations study on the benchmarks' real datasets (its synthetic and
    AV-Digits entries aside), reading the prepared folders under `prepared`."""
    from mcrlib.studies import ablations
    section = copy.deepcopy(paper_sections(root)["ablations"])
    section.pop("cost", None)     # the A.6 cost benchmark's settings, not the study's
    datasets = {}
    for label, spec in section["datasets"].items():
        if spec["name"] in ("synthetic", "avdigits"):
            continue
        datasets[label] = {**spec, "params": {**spec.get("params", {}), "prepared": str(prepared[spec["name"]])}}
    section["datasets"] = datasets
    section["workers"] = 1
    return ablations.load_study(section)


def method_list(study, label: str, ablations=None) -> list[tuple[str, dict]]:
    """(method, extra params) of every run the benchmarks train or compose on entry `label`:
    joint training and MCR first (what a budget must not cut), the unimodal runs (one per
    modality), then the section's other methods in order."""
    from mcrlib.data import dataset_modalities
    spec = study.datasets[label]
    modalities = dataset_modalities(spec["name"], spec.get("params", {}))
    first = [m for m in ORDER if m in study.methods]
    variants = ([(ABLATION + key, {"study": ablations}) for key in ABLATION_VARIANTS]
                if ablations is not None and label in ABLATION_ENTRIES and label in ablations.datasets else [])
    return ([(m, {}) for m in first] + [("unimodal", {"modality": m}) for m in modalities]
            + [(m, {}) for m in study.methods if m not in first] + variants)


def batch_of(data, n: int, seed: int = 0) -> dict:
    """n training samples (drawn with replacement from the prepared ones): the paper's shapes."""
    train = data.splits["train"]
    gen = torch.Generator().manual_seed(seed)
    rows = torch.randint(len(train["label"]), (n,), generator=gen)
    return {k: v.index_select(0, rows) for k, v in train.items()}


def n_parameters(module) -> tuple[int, int]:
    params = list(module.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)


def measure_run(study, label: str, method: str, extra: dict, batch_size: int) -> dict:
    """Two training steps of one run: FLOPs of the first, time and peak memory of the second."""
    from mcrlib.build import build, resolve
    from mcrlib.config import MethodConfig
    from mcrlib.data import load_dataset
    from mcrlib.methods import METHODS
    from mcrlib.train import Trainer
    row = {}
    if method.startswith(ABLATION):       # an ablation variant of MCR: the ablations study's config
        base = extra["study"].run_config(method[len(ABLATION):], label, study.seeds[0])
    elif method != "unimodal" and not study.runs_on(method, label):
        return {"status": f"not run by the study: {study.skipped(method, label)}"}
    elif not METHODS[method].trains:
        return {"status": "composes the unimodal runs: no training step of its own"}
    else:
        base = study.run_config("joint" if method == "unimodal" else method, label, study.seeds[0])
    config = dataclasses.replace(base, model=random_encoders(base.model),
                                 train=dataclasses.replace(base.train, device="cpu", progress=False))
    if method == "unimodal":
        config = dataclasses.replace(config, method=MethodConfig(name="unimodal", params=extra))
    data = load_dataset(config.data.name, config.data.params)
    resolved = resolve(config, data=data)
    model, built = build(resolved, data)
    trainer = Trainer(model, built, resolved.config.train, seed=config.seed, task=data.task)
    model.train()
    built.train()
    built.on_epoch_start(trainer.epoch_state(data, 0))
    batch = batch_of(data, batch_size, config.seed)
    shape = {k: list(v.shape) for k, v in batch.items() if k != "label"}
    total, trainable = n_parameters(model)
    method_total, method_trainable = n_parameters(built)
    row.update(batch_shape=json.dumps(shape), parameters=total + method_total,
               trainable_parameters=trainable + method_trainable)
    with FlopCounterMode(display=False) as counter:
        start = time.perf_counter()
        trainer.step(batch, 0)
        first = time.perf_counter() - start
    memory = PeakMemory(torch.device("cpu"))
    memory.start()
    start = time.perf_counter()
    trainer.step(batch, 1)
    seconds = time.perf_counter() - start
    peak = memory.stop()
    row.update(status="ok", time_per_step_s=round(seconds, 3), first_step_s=round(first, 3),
               peak_memory_mib=round(peak / 2 ** 20, 1), flops_per_step=int(counter.get_total_flops()))
    del trainer, model, built
    return row


def run_steps(study, batch: dict | None = None, budget_s: float | None = None, only: list[str] | None = None,
              methods: list[str] | None = None, progress: bool = True, reuse: pd.DataFrame | None = None,
              partial: Path | None = None, ablations=None) -> pd.DataFrame:
    """One row per (dataset entry, method): see the module docstring. `budget_s`: a wall-clock
    budget per dataset entry (default BUDGET_S by family); the runs after it are rows with status
    'not run: ...'. `reuse`: an earlier steps table whose measured rows are kept instead of
    measured again (column `source` says so). `partial`: the rows so far are written there after
    each run, so an interrupted rehearsal keeps what it measured."""
    from tqdm.auto import tqdm
    batch = {**BATCH, **(batch or {})}
    labels = [l for l in study.datasets if not only or l in only]
    # the second reference entry (every method) last, so that budgets cut it rather than another entry
    labels.sort(key=lambda l: l in REFERENCE_ENTRIES[1:])
    plan = [(label, m, extra) for label in labels for m, extra in method_list(study, label, ablations)
            if not methods or m in methods]
    rows, started = [], {}
    for label, method, extra in tqdm(plan, desc="train steps", disable=not progress):
        family = study.family(label)
        paper_batch = study.run_config("joint", label, study.seeds[0]).train.batch_size
        b = min(paper_batch, batch.get(family, batch["default"]))
        name = method if method != "unimodal" else f"unimodal:{extra['modality']}"
        started.setdefault(label, time.perf_counter())
        earlier = None if reuse is None else reuse[(reuse["dataset"] == label) & (reuse["method"] == name)
                                                   & reuse["status"].eq("ok")]
        if earlier is not None and len(earlier):
            rows.append({**earlier.iloc[0].to_dict(), "source": f"reused: {earlier.iloc[0].get('source', 'earlier run')}"})
            continue
        row = {"dataset": label, "data": study.datasets[label]["name"], "family": family, "method": name,
               "backbone": _backbone(study, label), "batch_measured": b, "batch_paper": paper_batch,
               "threads": torch.get_num_threads()}
        limit = budget_s if budget_s is not None else (None if label in REFERENCE_ENTRIES else BUDGET_S.get(family))
        first_run = not any(r["dataset"] == label for r in rows)     # always measured
        if limit is not None and not first_run and time.perf_counter() - started[label] > limit:
            row["status"] = f"not run: the entry's budget of {limit:.0f} s of steps was spent"
        else:
            row["loadavg_1m"], row["loadavg_5m"], _ = (round(x, 2) for x in os.getloadavg())
            try:
                row.update(measure_run(study, label, method, extra, b))
            except Exception as err:
                row["status"] = f"error: {type(err).__name__}: {err}"[:300]
                traceback.print_exc()
        row["source"] = f"this run ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})"
        rows.append(row)
        if partial is not None:
            write_csv(_with_paper_batch(pd.DataFrame(rows)), partial)
        if progress:
            tqdm.write(f"{label:24s} {name:20s} {row.get('status', '')[:40]:40s} "
                       f"{row.get('time_per_step_s', float('nan')):8.2f} s "
                       f"{row.get('flops_per_step', 0) / 1e12:8.3f} TFLOP {row.get('peak_memory_mib', float('nan')):8.0f} MiB")
    return _with_paper_batch(pd.DataFrame(rows))


def _backbone(study, label: str) -> str:
    model = study.run_config("joint", label, study.seeds[0]).model
    if model.encoders:
        return "; ".join(f"{m}: {s.get('backbone', s.get('kind'))}"
                         + (f" ({s['checkpoint']} sizes, random weights)" if "checkpoint" in s else "")
                         for m, s in model.encoders.items())
    if model.video_encoder == "swin3d_t":
        return "Video Swin-T (swin3d_t) per modality"
    name = study.datasets[label]["name"]
    if name in ("mosi", "mosei"):
        return "Transformer"
    return f"ResNet-18 (width {model.resnet_width})"


def _with_paper_batch(frame: pd.DataFrame) -> pd.DataFrame:
    """FLOPs scaled to the paper's batch (exact: linear in the batch), and a memory estimate there:
    weights + gradients + Adam's two moments (fp32, counted from the parameters) plus the step's
    measured peak minus its gradients, scaled by the batch."""
    if "flops_per_step" not in frame:
        return frame
    scale = frame["batch_paper"] / frame["batch_measured"]
    frame["flops_per_step_paper_batch"] = (frame["flops_per_step"] * scale).round()
    state = 4 * (frame["parameters"] + 2 * frame["trainable_parameters"]) / 2 ** 20   # weights + Adam
    grads = 4 * frame["trainable_parameters"] / 2 ** 20
    activations = (frame["peak_memory_mib"] - grads).clip(lower=0)
    frame["memory_estimate_paper_batch_mib"] = (state + grads + activations * scale).round(1)
    return frame


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--work", type=Path, default=None, help="fabricated and prepared data (default: a temp dir)")
    parser.add_argument("--budget", type=float, default=None,
                        help="seconds of training steps per dataset entry (default: BUDGET_S by family)")
    parser.add_argument("--only", nargs="*", help="dataset entries (labels) to train")
    parser.add_argument("--methods", nargs="*", help="methods to train (unimodal: the unimodal runs)")
    parser.add_argument("--skip-prepare-csv", action="store_true", help="keep the existing prepare.csv")
    parser.add_argument("--reuse", type=Path, help="an earlier steps.csv whose measured rows are kept")
    parser.add_argument("--steps-only", action="store_true",
                        help="train only, on the prepared folders already under --work (prepare.csv kept)")
    args = parser.parse_args(argv)
    from benchmarks.fabricate import fabricate
    work = args.work or Path(tempfile.mkdtemp(prefix="paper_rehearsal_"))
    wall = time.perf_counter()
    if args.steps_only:
        prepared = pd.read_csv(args.out / "prepare.csv")
    else:
        raw = fabricate(work / "raw")
        prepared = prepare_all(raw, work / "processed", prepare_settings())
        prepared["loadavg_1m"] = round(os.getloadavg()[0], 2)
        if not args.skip_prepare_csv:
            write_csv(prepared, args.out / "prepare.csv")
        print(prepared.drop(columns="settings").to_string(index=False))
    folders = {name: work / "processed" / name for name in prepared["dataset"]}
    study = benchmark_study(folders)
    with RandomBackboneCache():
        steps = run_steps(study, budget_s=args.budget, only=args.only,
                          methods=[m.split(":")[0] for m in args.methods] if args.methods else None,
                          reuse=pd.read_csv(args.reuse) if args.reuse else None,
                          partial=args.out / "steps.partial.csv", ablations=ablation_study(folders))
    out = args.out / "steps.csv"
    if args.only or args.methods:    # a partial rerun replaces its own rows only
        if out.is_file():
            old = pd.read_csv(out)
            keep = ~old.set_index(["dataset", "method"]).index.isin(steps.set_index(["dataset", "method"]).index)
            steps = pd.concat([old[keep], steps], ignore_index=True)
    write_csv(steps, out)
    (args.out / "steps.partial.csv").unlink(missing_ok=True)
    seconds = time.perf_counter() - wall
    from mcrlib.atomic import write_text
    write_text(json.dumps({"wall_s": round(seconds), "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                           "loadavg_at_end": os.getloadavg(), "torch_threads": torch.get_num_threads(),
                           "cpus": os.cpu_count(), "torch": torch.__version__,
                           "nice": os.nice(0), "args": {k: str(v) for k, v in vars(args).items()}}, indent=1),
               args.out / "run.json")
    print(f"rehearsal wall time: {seconds:.0f} s; {out}")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
