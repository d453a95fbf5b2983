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
   as the run layer builds it (mcrlib.build, the entry's model, training and method params).
   - FLOPs, every run: one training step (`Trainer.step`, the trainer's own) on the meta device,
     counted by torch.utils.flop_counter's rules (benchmarks/meta_step.py: shapes only, no
     arithmetic, seconds per run), at the measured batch and at the paper's batch.
   - Time and peak memory, the runs a budget allows (every run of the reference entries, the
     others' first runs: joint training, then MCR, the unimodal runs and the rest in order): two
     real steps on the CPU, the first under FlopCounterMode (its count is the meta count's
     check: column `meta_count_equals_real`), the second timed, with its peak memory
     (benchmarks.cost.PeakMemory: peak RSS above the level before the step).
   The pretrained encoders are built from configs of the real checkpoints' sizes with random
   weights (benchmarks/random_backbones.py: Wav2Vec2-large, HuBERT-base, ViViT-B); nothing is downloaded.
   -> results/paper_rehearsal/steps.csv: status `ok` (measured and counted) or `counted` (FLOPs
   only), or why the study has no such run.

Shapes are never shrunk: every sample has the paper's shape. The measured batch is smaller than the
paper's: on 2 shared CPU cores a paper-sized ResNet-18 step (32 clips of 3 frames at 224 x 224 and
a spectrogram) takes about a minute and the pretrained family's several, so the real steps run on
`--batch` samples (default BATCH). The FLOPs at the paper's batch are counted, not scaled; the
memory at the paper's batch is an estimate (weights, gradients and Adam's state at their real
size, plus the measured activations scaled by the batch). A run that fails is a row with its
`status`, never dropped.
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
from benchmarks.meta_step import meta_step_flops
from benchmarks.paper_prepare import prepare_all
from benchmarks.random_backbones import RandomBackboneCache, random_encoders
from mcrlib.atomic import atomic_path

OUT = Path("results/paper_rehearsal")
PROFILE = "paper"
# The prepare stages of the paper profile, in the order they run (every key of its data section
# except AV-Digits, whose data are downloaded, not fabricated).
SKIP_DATA = {"avdigits"}
SKIP_ENTRIES = {"AV-Digits"}     # the quick profile's dataset: measured by benchmarks/cost.py already
# Samples per real training step (the paper's batch is larger: FLOPs are counted at it, memory scaled to it).
BATCH = {"default": 2, "Conformer": 1, "Video Swin-T": 1, "Transformer": 32}
ORDER = ("joint", "mcr")
# Seconds of real training steps per dataset entry, by family, after which its remaining runs are
# counted only (FLOPs on the meta device; no time or memory). The reference entries measure every
# method. Budget 0: joint training only (a pretrained-family step takes minutes on 2 cores).
# Chosen so that the whole rehearsal fits in about 30 min on 2 idle cores (issue 25).
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
# encoders, a second encoder pass), counted on every real entry of the ablations study; every
# other variant changes latent-level choices or loss weights (benchmarks.paper_cost counts them
# at MCR's step).
ABLATION_VARIANTS = ("table4_perturbation/noise_input", "table4_perturbation/zero_input",
                     "open_choices/latent_source=eval_reforward")


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
                if ablations is not None and label in ablations.datasets else [])
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


def build_run(study, label: str, method: str, extra: dict):
    """(trainer, data) of one run, built as the run layer builds it (mcrlib.build) on the CPU with
    the pretrained encoders at their real sizes and random weights; or a status string where the
    study does not train that run."""
    from mcrlib.build import build, resolve
    from mcrlib.config import MethodConfig
    from mcrlib.data import load_dataset
    from mcrlib.methods import METHODS
    from mcrlib.train import Trainer
    if method.startswith(ABLATION):       # an ablation variant of MCR: the ablations study's config
        base = extra["study"].run_config(method[len(ABLATION):], label, study.seeds[0])
    elif method != "unimodal" and not study.runs_on(method, label):
        return f"not run by the study: {study.skipped(method, label)}", None
    elif not METHODS[method].trains:
        return "composes the unimodal runs: no training step of its own", None
    else:
        base = study.run_config("joint" if method == "unimodal" else method, label, study.seeds[0])
    config = dataclasses.replace(base, model=random_encoders(base.model),
                                 train=dataclasses.replace(base.train, device="cpu", progress=False))
    if method == "unimodal":
        config = dataclasses.replace(config, method=MethodConfig(name="unimodal", params=extra))
    data = load_dataset(config.data.name, config.data.params)
    resolved = resolve(config, data=data)
    model, built = build(resolved, data)
    return Trainer(model, built, resolved.config.train, seed=config.seed, task=data.task), data


def count_flops(study, label: str, method: str, extra: dict, batch_size: int, paper_batch: int) -> dict:
    """FLOPs of one training step on the meta device (benchmarks/meta_step.py), at the measured
    batch and at the paper's batch, every sample of the paper's shape; the parameter counts."""
    trainer, data = build_run(study, label, method, extra)
    if isinstance(trainer, str):
        return {"status": trainer}
    total, trainable = n_parameters(trainer.model)
    method_total, method_trainable = n_parameters(trainer.method)
    batch = batch_of(data, batch_size, trainer.seed)
    row = {"batch_shape": json.dumps({k: list(v.shape) for k, v in batch.items() if k != "label"}),
           "parameters": total + method_total, "trainable_parameters": trainable + method_trainable}
    row["flops_per_step"], reads = meta_step_flops(trainer, data, batch)
    trainer, data = build_run(study, label, method, extra)       # meta_step_flops consumed the first
    row["flops_per_step_paper_batch"], _ = meta_step_flops(trainer, data, batch_of(data, paper_batch, trainer.seed))
    row["meta_scalar_reads"] = reads
    return row


def measure_run(study, label: str, method: str, extra: dict, batch_size: int) -> dict:
    """Two real training steps of one run on the CPU: FLOPs of the first (the meta count's
    check), time and peak memory of the second."""
    trainer, data = build_run(study, label, method, extra)
    trainer.model.train()
    trainer.method.train()
    trainer.method.on_epoch_start(trainer.epoch_state(data, 0))
    batch = batch_of(data, batch_size, trainer.seed)
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
    del trainer
    return {"status": "ok", "time_per_step_s": round(seconds, 3), "first_step_s": round(first, 3),
            "peak_memory_mib": round(peak / 2 ** 20, 1), "flops_real_step": int(counter.get_total_flops())}


MEASURED_COLUMNS = ("status", "time_per_step_s", "first_step_s", "peak_memory_mib", "flops_real_step",
                    "loadavg_1m", "loadavg_5m")


def run_steps(study, batch: dict | None = None, budget_s: float | None = None, only: list[str] | None = None,
              methods: list[str] | None = None, progress: bool = True, reuse: pd.DataFrame | None = None,
              partial: Path | None = None, ablations=None) -> pd.DataFrame:
    """One row per (dataset entry, method): see the module docstring. Every row's FLOPs are
    counted on the meta device (status 'counted'); its time and memory are measured on the CPU
    (status 'ok') within `budget_s`, a wall-clock budget of real steps per dataset entry (default
    BUDGET_S by family; the reference entries have none, and an entry's first run is always
    measured). `reuse`: an earlier steps table whose measured columns are kept instead of measured
    again (column `source` says so). `partial`: the rows so far are written there after each run,
    so an interrupted rehearsal keeps what it measured."""
    from tqdm.auto import tqdm
    batch = {**BATCH, **(batch or {})}
    labels = [l for l in study.datasets if not only or l in only]
    # the second reference entry (every method) last, so that budgets cut it rather than another entry
    labels.sort(key=lambda l: l in REFERENCE_ENTRIES[1:])
    plan = [(label, m, extra) for label in labels for m, extra in method_list(study, label, ablations)
            if not methods or m in methods]
    rows, spent = [], {}
    for label, method, extra in tqdm(plan, desc="train steps", disable=not progress):
        family = study.family(label)
        paper_batch = study.run_config("joint", label, study.seeds[0]).train.batch_size
        b = min(paper_batch, batch.get(family, batch["default"]))
        name = method if method != "unimodal" else f"unimodal:{extra['modality']}"
        row = {"dataset": label, "data": study.datasets[label]["name"], "family": family, "method": name,
               "backbone": _backbone(study, label), "batch_measured": b, "batch_paper": paper_batch,
               "threads": torch.get_num_threads()}
        try:
            row.update(count_flops(study, label, method, extra, b, paper_batch))
        except Exception as err:
            row["status"] = f"error: {type(err).__name__}: {err}"[:300]
            traceback.print_exc()
        row["source"] = f"this run ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})"
        if "status" not in row:
            earlier = None if reuse is None else reuse[(reuse["dataset"] == label) & (reuse["method"] == name)
                                                       & reuse["status"].eq("ok")]
            limit = budget_s if budget_s is not None else (None if label in REFERENCE_ENTRIES else BUDGET_S.get(family))
            if earlier is not None and len(earlier):
                kept = earlier.iloc[0]
                row.update({k: kept[k] for k in MEASURED_COLUMNS if k in kept and pd.notna(kept[k])})
                row["source"] += f"; time and memory reused: {kept.get('source', 'earlier run')}"
            elif limit is not None and label in spent and spent[label] > limit:
                row["status"] = (f"counted: FLOPs on the meta device; time and memory not measured "
                                 f"(the entry's budget of {limit:.0f} s of real steps was spent)")
            else:
                row["loadavg_1m"], row["loadavg_5m"], _ = (round(x, 2) for x in os.getloadavg())
                start = time.perf_counter()
                try:
                    row.update(measure_run(study, label, method, extra, b))
                except Exception as err:
                    row["status"] = f"counted; the real step failed: {type(err).__name__}: {err}"[:300]
                    traceback.print_exc()
                spent[label] = spent.get(label, 0.0) + time.perf_counter() - start
        rows.append(row)
        if partial is not None:
            write_csv(_with_paper_batch(pd.DataFrame(rows)), partial)
        if progress:
            tqdm.write(f"{label:24s} {name:20s} {row.get('status', '')[:40]:40s} "
                       f"{row.get('time_per_step_s', float('nan')):8.2f} s "
                       f"{row.get('flops_per_step_paper_batch', 0) / 1e12:9.3f} TFLOP/paper batch "
                       f"{row.get('peak_memory_mib', float('nan')):8.0f} MiB")
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
    """Where a step was measured: whether the meta count equals the real step's count, and a
    memory estimate at the paper's batch: weights + gradients + Adam's two moments (fp32, counted
    from the parameters) plus the step's measured peak minus its gradients, scaled by the batch."""
    if "peak_memory_mib" not in frame:
        return frame
    scale = frame["batch_paper"] / frame["batch_measured"]
    if "flops_real_step" in frame:
        frame["meta_count_equals_real"] = (frame["flops_real_step"] == frame["flops_per_step"]).where(
            frame["flops_real_step"].notna())
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
    record = {"wall_s": round(seconds), "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "loadavg_at_end": os.getloadavg(), "torch_threads": torch.get_num_threads(),
              "cpus": os.cpu_count(), "torch": torch.__version__,
              "nice": os.nice(0), "args": {k: str(v) for k, v in vars(args).items()}}
    if (args.only or args.methods) and (args.out / "run.json").is_file():   # a partial rerun: kept beside the run
        earlier = json.loads((args.out / "run.json").read_text())
        record = {**earlier, "reruns": earlier.get("reruns", []) + [record]}
    write_text(json.dumps(record, indent=1), args.out / "run.json")
    print(f"rehearsal wall time: {seconds:.0f} s; {out}")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
