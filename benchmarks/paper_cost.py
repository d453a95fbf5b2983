"""What the paper profile costs (issue 25, part 3): an ESTIMATE from the rehearsal's measurements.

    python -m benchmarks.paper_cost      # reads results/paper_rehearsal/{steps,prepare}.csv

GPU-hours = FLOPs / (peak x utilisation) / 3600, per dataset entry of the benchmarks stage:

  FLOPs = sum over the entry's runs of  epochs x (batches per epoch x FLOPs per training step
          + validation samples x forward FLOPs per sample)

- FLOPs per training step: steps.csv (torch.utils.flop_counter on a real training step at the
  paper's shapes, scaled to the paper's batch). A method not measured on an entry (status not ok)
  takes the entry's joint-training step times the method's median FLOPs ratio to joint training
  on the entries where both were measured (column `extrapolated`).
- Forward FLOPs per sample: a third of the training step's per sample (backward ~ 2x forward).
- Runs, from the paper profile (mcrlib.profiles, never hard-coded): for every seed (seeds[i] runs
  on folds[i mod F]: folds are blocks of the seeds, not a factor), the unimodal runs (one per
  modality: the Ensemble, Uni-Pre and MCR's initialisation are built from them, shared through
  the run cache) and every method that trains and runs on the entry (the Ensemble composes the
  unimodal runs and trains nothing); plus each searched method's trials on the search seeds
  (its chosen trial is its final run of that seed: shared).
- Epochs: train.max_epochs, an upper bound (early stopping at `patience` may end a run sooner).
- Batches per epoch: floor(train samples / batch size), as the trainer counts them, with the full
  datasets' split sizes in FULL_SIZES (their sources there).
- Peaks: A100 312 TFLOP/s and H100 SXM 989 TFLOP/s, bf16 dense tensor-core peaks, at UTILISATION
  (model FLOPs utilisation); see `UTILISATION_WHY`.

Also per entry: the largest peak-memory estimate of its runs at the paper's batch (fp32 weights,
gradients and Adam state plus the measured activations, scaled: steps.csv) and, per prepared
dataset, the disk of its prepared folder extrapolated to the full dataset (bytes per sample from
prepare.csv) and the prepare time on this machine's CPU, extrapolated the same way.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd

from benchmarks.paper_rehearsal import OUT, write_csv

PEAK_TFLOPS = {"A100": 312.0, "H100 SXM": 989.0}     # bf16 dense
UTILISATION = 0.35
UTILISATION_WHY = ("35% model-FLOPs utilisation: what well-fed convolutional and ViT training in bf16 typically "
                   "reaches on these GPUs (30-50%); the small MOSI/MOSEI Transformers (sequence 50, width 40-120) "
                   "are launch-bound and reach far less, so their hours are a lower bound (they are minutes "
                   "either way). fp32 training (the trainer's default precision) runs at the TF32 peak, half "
                   "the bf16 one: double every GPU-hour.")

# Full datasets' split sizes (train, val, test) as the prepared loaders split them. None: computed.
FULL_SIZES = {
    "cremad": (None, "the MCR release's folds (mcrlib/data/cremad_meta/release_folds.tsv), mean of the "
                     "entry's folds; 7,442 clips in the corpus, 5,820 in the release's folds"),
    "cremad_faces": (None, "as cremad"),
    "ave": ((3339, 402, 402), "AVE's official lists (Tian et al., ECCV 2018): 4,143 videos"),
    "ave_pretrained": ((3339, 402, 402), "as ave"),
    "ucf51": ((4334, 482, 1910), "UCF101 split 1 (9,537 train / 3,783 test clips of 101 classes) restricted "
                                 "to the 51 classes with audio, ASSUMED proportional (51/101), the train list "
                                 "split 90/10 by group into train/val"),
    "mosi": ((1284, 229, 686), "MultiBench's mosi_data.pkl: 2,199 segments"),
    "mosei": ((16326, 1871, 4659), "MultiBench's mosei_senti_data.pkl: 22,856 segments"),
    "sthsth": ((152022, 16891, 24777), "Something-Something V2: 168,913 train videos (10% held out for "
                                       "validation, val_from_train) and the 24,777 official validation "
                                       "videos as test"),
}


def split_sizes(name: str, folds: list[int] | None = None) -> tuple[float, float, float]:
    """(train, val, test) samples of a full dataset (FULL_SIZES), the mean over `folds` for
    CREMA-D's release folds."""
    sizes, _ = FULL_SIZES[name]
    if sizes is not None:
        return sizes
    from mcrlib.data.cremad_clips import release_folds
    folds = folds or [0]
    table = release_folds()
    counts = [[sum(1 for s in table.values() if s[f] == split) for split in ("train", "val", "test")]
              for f in folds]
    return tuple(sum(c[i] for c in counts) / len(counts) for i in range(3))


def run_counts(study, label: str) -> dict[str, int]:
    """{method (or unimodal:<modality>): runs that train on entry `label`}."""
    from mcrlib.data import dataset_modalities
    from mcrlib.methods import METHODS
    spec = study.datasets[label]
    seeds = list(study.seeds)
    counts = {f"unimodal:{m}": len(seeds) for m in dataset_modalities(spec["name"], spec.get("params", {}))}
    search_seeds = list(study.search.seeds)
    for method in study.methods:
        if not METHODS[method].trains or not study.runs_on(method, label):
            continue
        runs = len(seeds)
        if method in study.search.grid:
            trials = len(study.search.trials(method, label))
            runs += trials * len(search_seeds) - len(set(search_seeds) & set(seeds))
        counts[method] = runs
    return counts


def step_flops(steps: pd.DataFrame) -> pd.DataFrame:
    """steps.csv's FLOPs per step at the paper's batch, with the unmeasured runs extrapolated
    from joint training (module docstring)."""
    steps = steps.copy()
    ok = steps["status"].eq("ok")
    steps["extrapolated"] = ~ok
    joint = steps[ok & steps["method"].eq("joint")].set_index("dataset")["flops_per_step_paper_batch"]
    ratio = (steps[ok].assign(joint=lambda f: f["dataset"].map(joint))
             .assign(r=lambda f: f["flops_per_step_paper_batch"] / f["joint"])
             .groupby("method")["r"].median())
    filled = steps["dataset"].map(joint).astype(float) * steps["method"].map(ratio).astype(float)
    steps["flops_per_step_paper_batch"] = steps["flops_per_step_paper_batch"].astype(float).where(ok, filled)
    return steps


def benchmarks_cost(steps: pd.DataFrame, study, utilisation: float = UTILISATION) -> pd.DataFrame:
    """One row per dataset entry of the study: runs, steps, FLOPs, GPU-hours, peak memory."""
    steps = step_flops(steps)
    rows = []
    for label in study.datasets:
        spec = study.datasets[label]
        here = steps[steps["dataset"] == label].set_index("method")
        if here.empty:
            continue
        config = study.run_config("joint", label, study.seeds[0])
        epochs, batch = config.train.max_epochs, config.train.batch_size
        n_train, n_val, _ = split_sizes(spec["name"], spec.get("folds"))
        batches = math.floor(n_train / batch)
        counts = run_counts(study, label)
        flops = train_steps = 0.0
        unknown = []
        for method, runs in counts.items():
            per_step = here["flops_per_step_paper_batch"].get(method, float("nan"))
            if pd.isna(per_step):
                unknown.append(method)
                continue
            per_sample_forward = per_step / batch / 3
            flops += runs * epochs * (batches * per_step + n_val * per_sample_forward)
            train_steps += runs * epochs * batches
        row = {"dataset": label, "data": spec["name"], "family": study.family(label),
               "runs": sum(counts.values()), "epochs_max": epochs, "batch": batch, "train_samples": round(n_train),
               "batches_per_epoch": batches, "train_steps": int(train_steps), "pflops": flops / 1e15}
        for gpu, peak in PEAK_TFLOPS.items():
            row[f"gpu_hours_{gpu}"] = flops / (peak * 1e12 * utilisation) / 3600
        ok = here[here["status"].eq("ok")]
        row["peak_memory_gib_paper_batch"] = ok["memory_estimate_paper_batch_mib"].max() / 1024
        row["peak_memory_run"] = ok["memory_estimate_paper_batch_mib"].idxmax() if len(ok) else ""
        row["methods_extrapolated"] = ", ".join(m for m in counts if m in here.index and here.loc[m, "extrapolated"])
        row["methods_unknown"] = ", ".join(unknown)
        rows.append(row)
    return pd.DataFrame(rows)


def prepare_cost(prepare: pd.DataFrame, study) -> pd.DataFrame:
    """Per prepared dataset: full samples, disk and this CPU's prepare time, extrapolated."""
    folds = {spec["name"]: spec.get("folds") for spec in study.datasets.values()}
    rows = []
    for _, r in prepare.iterrows():
        if r["dataset"] not in FULL_SIZES:
            continue
        if r["dataset"] in ("cremad", "cremad_faces"):
            full = 7442          # every clip is prepared; the folds pick from them
        else:
            full = sum(split_sizes(r["dataset"], folds.get(r["dataset"])))
        ok = r.get("status") == "ok"
        rows.append({"dataset": r["dataset"], "full_samples": int(full), "rehearsal_samples": r.get("samples"),
                     "prepared_gib": full * r["disk_bytes_per_sample"] / 2 ** 30 if ok else float("nan"),
                     "prepare_cpu_hours_here": full * r["seconds_per_sample"] / 3600 if ok else float("nan"),
                     "source": FULL_SIZES[r["dataset"]][1]})
    return pd.DataFrame(rows)


def markdown(bench: pd.DataFrame, prep: pd.DataFrame, utilisation: float = UTILISATION) -> str:
    b = bench.copy()
    total = {"dataset": "**total**", "runs": b["runs"].sum(), "train_steps": b["train_steps"].sum(),
             "pflops": b["pflops"].sum(), **{f"gpu_hours_{g}": b[f"gpu_hours_{g}"].sum() for g in PEAK_TFLOPS},
             "peak_memory_gib_paper_batch": b["peak_memory_gib_paper_batch"].max()}
    b = pd.concat([b, pd.DataFrame([total])], ignore_index=True)
    lines = [f"**Benchmarks stage (ESTIMATE)** at {utilisation:.0%} utilisation of the bf16 dense peak, "
             "epochs at their maximum (early stopping only lowers them):", "",
             "| dataset | runs | epochs | batch | steps | PFLOP | A100 GPU-h | H100 GPU-h | peak memory (GiB) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for _, r in b.iterrows():
        epochs = "" if pd.isna(r.get("epochs_max")) else int(r["epochs_max"])
        batch = "" if pd.isna(r.get("batch")) else int(r["batch"])
        lines.append(f"| {r['dataset']} | {int(r['runs'])} | {epochs} | {batch} | {int(r['train_steps']):,} | "
                     f"{r['pflops']:,.0f} | {r['gpu_hours_A100']:,.1f} | {r['gpu_hours_H100 SXM']:,.1f} | "
                     f"{r['peak_memory_gib_paper_batch']:.1f} |")
    lines += ["", "**Prepared data (ESTIMATE)**, extrapolated from the rehearsal's bytes and seconds per sample:", "",
              "| dataset | full samples | prepared (GiB) | prepare, CPU-hours on the 2-core rehearsal machine |",
              "|---|---:|---:|---:|"]
    for _, r in prep.iterrows():
        lines.append(f"| {r['dataset']} | {r['full_samples']:,} | {r['prepared_gib']:.1f} | "
                     f"{r['prepare_cpu_hours_here']:.1f} |")
    lines.append(f"| **total** | | {prep['prepared_gib'].sum():.1f} | {prep['prepare_cpu_hours_here'].sum():.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", type=Path, default=OUT)
    parser.add_argument("--utilisation", type=float, default=UTILISATION)
    args = parser.parse_args(argv)
    from benchmarks.paper_rehearsal import benchmark_study
    steps = pd.read_csv(args.dir / "steps.csv")
    prepare = pd.read_csv(args.dir / "prepare.csv")
    names = set(prepare["dataset"])
    study = benchmark_study({n: Path("data/processed") / n for n in names})
    bench = benchmarks_cost(steps, study, args.utilisation)
    prep = prepare_cost(prepare, study)
    write_csv(bench, args.dir / "cost.csv")
    write_csv(prep, args.dir / "cost_prepare.csv")
    text = markdown(bench, prep, args.utilisation)
    path = args.dir / "cost.md"
    from mcrlib.atomic import write_text
    write_text(text + "\n" + UTILISATION_WHY + "\n", path)
    print(text)


if __name__ == "__main__":
    main()
