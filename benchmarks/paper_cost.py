"""What the paper profile costs (issue 25, part 3): an ESTIMATE from the rehearsal's measurements.

    python -m benchmarks.paper_cost      # reads results/paper_rehearsal/{steps,prepare}.csv

GPU-hours = FLOPs / (peak x utilisation) / 3600, per dataset entry of the benchmarks stage:

  FLOPs = sum over the entry's runs of  epochs x (batches per epoch x FLOPs per training step
          + validation samples x forward FLOPs per sample)

- FLOPs per training step: steps.csv (torch.utils.flop_counter on a training step at the
  paper's shapes and batch, counted on the meta device; checked against the real step's count
  where one ran). A run without a count (a table of an older rehearsal) takes the entry's
  joint-training step times the method's median FLOPs ratio to joint training on the entries
  where both were counted (column `extrapolated`).
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
import json
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
    """steps.csv's FLOPs per step at the paper's batch (counted for every run the rehearsal could
    build), and for a run without a count (an older table, or a run that failed to build) joint
    training's times the method's median ratio to it on the other entries (column `extrapolated`)."""
    steps = steps.copy()
    known = steps["flops_per_step_paper_batch"].notna()
    steps["extrapolated"] = ~known
    joint = steps[known & steps["method"].eq("joint")].set_index("dataset")["flops_per_step_paper_batch"]
    ratio = (steps[known].assign(joint=lambda f: f["dataset"].map(joint))
             .assign(r=lambda f: f["flops_per_step_paper_batch"] / f["joint"])
             .groupby("method")["r"].median())
    filled = steps["dataset"].map(joint).astype(float) * steps["method"].map(ratio).astype(float)
    steps["flops_per_step_paper_batch"] = steps["flops_per_step_paper_batch"].astype(float).where(known, filled)
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
        row = {"stage": "benchmarks", "dataset": label, "data": spec["name"], "family": study.family(label),
               "runs": sum(counts.values()), "epochs_max": epochs, "batch": batch, "train_samples": round(n_train),
               "batches_per_epoch": batches, "train_steps": int(train_steps), "pflops": flops / 1e15}
        for gpu, peak in PEAK_TFLOPS.items():
            row[f"gpu_hours_{gpu}"] = flops / (peak * 1e12 * utilisation) / 3600
        ok = here[here["memory_estimate_paper_batch_mib"].notna()
                  & ~here.index.str.startswith("ablation:")]   # the benchmarks' runs whose memory was measured
        row["peak_memory_gib_paper_batch"] = ok["memory_estimate_paper_batch_mib"].max() / 1024
        row["peak_memory_run"] = ok["memory_estimate_paper_batch_mib"].idxmax() if len(ok) else ""
        row["methods_extrapolated"] = ", ".join(m for m in counts if m in here.index and here.loc[m, "extrapolated"])
        row["memory_measured_for"] = ", ".join(ok.index)
        row["methods_unknown"] = ", ".join(unknown)
        rows.append(row)
    return pd.DataFrame(rows)


def _gpu_hours(row: dict, flops: float, utilisation: float) -> dict:
    for gpu, peak in PEAK_TFLOPS.items():
        row[f"gpu_hours_{gpu}"] = flops / (peak * 1e12 * utilisation) / 3600
    return row


def ablations_cost(steps: pd.DataFrame, ablations, utilisation: float = UTILISATION) -> pd.DataFrame:
    """The ablations stage on the real datasets: per entry and seed, each distinct MCR variant
    (variants equal to the base are the benchmarks' MCR run, and the joint / unimodal reference
    rows the benchmarks' runs: shared, not counted). A variant counted on the entry
    (paper_rehearsal.ABLATION_VARIANTS) costs MCR's step there times its counted ratio to MCR
    (the ratio on another entry where this one has no count); every other variant MCR's step."""
    from benchmarks.paper_rehearsal import ABLATION
    steps = step_flops(steps)
    known = steps[steps["flops_per_step_paper_batch"].notna()]     # counted or extrapolated
    ok = known[~known["extrapolated"]]
    mcr = known[known["method"].eq("mcr")].set_index("dataset")["flops_per_step_paper_batch"]
    ratios: dict[str, dict[str, float]] = {}      # variant -> {entry: its FLOPs ratio to MCR there}
    for _, r in ok[ok["method"].str.startswith(ABLATION) & ok["dataset"].isin(mcr.index)].iterrows():
        ratios.setdefault(r["method"][len(ABLATION):], {})[r["dataset"]] = \
            r["flops_per_step_paper_batch"] / mcr[r["dataset"]]
    rows = []
    for label, spec in ablations.datasets.items():
        if label not in mcr.index:
            continue
        config = ablations.run_config("joint", label, ablations.seeds[0])
        epochs, batch = config.train.max_epochs, config.train.batch_size
        n_train, n_val, _ = split_sizes(spec["name"], spec.get("folds"))
        batches = math.floor(n_train / batch)
        groups: dict[str, list[str]] = {}
        for key in ablations.variants():
            setting = json.dumps(ablations.overrides(key, label), sort_keys=True)
            if setting != "{}":
                groups.setdefault(setting, []).append(key)
        flops = 0.0
        for keys in groups.values():
            counted = next((ratios[k] for k in keys if k in ratios), {})
            ratio = counted.get(label, next(iter(counted.values()), 1.0))
            per_step = mcr[label] * ratio
            flops += len(ablations.seeds) * epochs * (batches * per_step + n_val * per_step / batch / 3)
        runs = len(groups) * len(ablations.seeds)
        rows.append(_gpu_hours({"stage": "ablations", "dataset": label, "runs": runs, "epochs_max": epochs,
                                "batch": batch, "train_steps": runs * epochs * batches, "pflops": flops / 1e15},
                               flops, utilisation))
    return pd.DataFrame(rows)


def competition_cost(steps: pd.DataFrame, study, competition: dict, utilisation: float = UTILISATION) -> pd.DataFrame:
    """The competition stage (Figure 6): its methods x seeds on every benchmarks entry, runs of
    their own (features recorded, the test split evaluated every epoch)."""
    steps = step_flops(steps)
    known = steps[steps["flops_per_step_paper_batch"].notna()]     # measured or extrapolated
    rows = []
    for label, spec in study.datasets.items():
        here = known[known["dataset"] == label].set_index("method")["flops_per_step_paper_batch"]
        methods = [m for m in competition["methods"] if m in here.index]
        if not methods:
            continue
        config = study.run_config("joint", label, study.seeds[0])
        epochs, batch = config.train.max_epochs, config.train.batch_size
        n_train, n_val, n_test = split_sizes(spec["name"], spec.get("folds"))
        batches = math.floor(n_train / batch)
        flops = sum(len(competition["seeds"]) * epochs * (batches * here[m] + (n_val + n_test) * here[m] / batch / 3)
                    for m in methods)
        runs = len(methods) * len(competition["seeds"])
        rows.append(_gpu_hours({"stage": "competition", "dataset": label, "runs": runs, "epochs_max": epochs,
                                "batch": batch, "train_steps": runs * epochs * batches, "pflops": flops / 1e15},
                               flops, utilisation))
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
    """The README's tables: GPU-hours per stage and dataset, then the prepared data."""
    g = list(PEAK_TFLOPS)
    lines = [f"GPU training (ESTIMATE): FLOPs per step counted at the paper's shapes and batch (the rehearsal's "
             f"meta-device steps), at {utilisation:.0%} of the bf16 "
             "dense peak (A100 312, H100 SXM 989 TFLOP/s), every run at its maximum epochs (early stopping "
             "only lowers them):", "",
             "| stage | dataset | runs | epochs | batch | steps | PFLOP | A100 GPU-h | H100 GPU-h | peak memory/run (GiB) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for stage, part in bench.groupby("stage", sort=False):
        for _, r in part.iterrows():
            memory = r.get("peak_memory_gib_paper_batch", float("nan"))
            lines.append(f"| {stage} | {r['dataset']} | {int(r['runs'])} | {int(r['epochs_max'])} | {int(r['batch'])} | "
                         f"{int(r['train_steps']):,} | {r['pflops']:,.0f} | {r[f'gpu_hours_{g[0]}']:,.1f} | "
                         f"{r[f'gpu_hours_{g[1]}']:,.1f} | {'' if pd.isna(memory) else f'{memory:.1f}'} |")
        lines.append(f"| **{stage}** | **all** | {int(part['runs'].sum())} | | | {int(part['train_steps'].sum()):,} | "
                     f"{part['pflops'].sum():,.0f} | **{part[f'gpu_hours_{g[0]}'].sum():,.0f}** | "
                     f"**{part[f'gpu_hours_{g[1]}'].sum():,.0f}** | |")
    lines.append(f"| **total** | | {int(bench['runs'].sum())} | | | {int(bench['train_steps'].sum()):,} | "
                 f"{bench['pflops'].sum():,.0f} | **{bench[f'gpu_hours_{g[0]}'].sum():,.0f}** | "
                 f"**{bench[f'gpu_hours_{g[1]}'].sum():,.0f}** | |")
    lines += ["", "Prepared data (ESTIMATE), the rehearsal's bytes and seconds per sample times the full datasets:", "",
              "| prepare stage | full samples | prepared (GiB) | CPU-hours on the rehearsal's 2 cores |",
              "|---|---:|---:|---:|"]
    for _, r in prep.iterrows():
        lines.append(f"| prepare@{r['dataset']} | {r['full_samples']:,} | {r['prepared_gib']:.1f} | "
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
    from benchmarks.paper_rehearsal import ablation_study, paper_sections
    folders = {n: Path("data/processed") / n for n in names}
    bench = pd.concat([benchmarks_cost(steps, study, args.utilisation),
                       ablations_cost(steps, ablation_study(folders), args.utilisation),
                       competition_cost(steps, study, paper_sections()["competition"], args.utilisation)],
                      ignore_index=True)
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
