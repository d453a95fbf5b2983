"""The paper rehearsal (benchmarks/fabricate.py, benchmarks/paper_rehearsal.py,
benchmarks/paper_cost.py): the fabricated files are accepted by the real `prepare` functions, at
the real shapes; the steps table on fabricated MOSI; the cost arithmetic on a hand-made steps table."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd
import pytest

from benchmarks import fabricate, paper_cost
from mcrlib.data import load_dataset
from mcrlib.data.prepare import prepare


# ---------------------------------------------------------------- fabricated data -> real prepare
def _prepared(tmp_path, name, root, **settings):
    out = tmp_path / "processed" / name
    prepare(name, {"root": str(root), **settings}, out)
    return load_dataset(name, {"prepared": str(out)})


def test_cremad_fabricated_at_real_size_is_prepared(tmp_path):
    import av
    root = fabricate.write_cremad(tmp_path / "CREMA-D", 3)
    flv = sorted((root / "VideoFlash").glob("*.flv"))[0]
    with av.open(str(flv)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height, round(float(stream.average_rate))) == (480, 360, 30)
    data = _prepared(tmp_path, "cremad", root)
    assert all(len(data.splits[s]["label"]) >= 1 for s in ("train", "val", "test"))
    assert tuple(data.splits["train"]["audio"].shape[1:]) == (1, 257, 188)
    assert tuple(data.splits["train"]["visual"].shape[1:]) == (3, 3, 224, 224)


def test_ave_fabricated_is_prepared_for_both_families(tmp_path):
    root = fabricate.write_ave(tmp_path / "AVE", 3)
    data = _prepared(tmp_path, "ave", root)
    assert tuple(data.splits["train"]["visual"].shape[1:]) == (4, 3, 224, 224)
    assert data.splits["train"]["audio"].shape[-1] == 1004
    pretrained = _prepared(tmp_path, "ave_pretrained", root)
    assert tuple(pretrained.splits["train"]["visual"].shape[1:]) == (10, 3, 224, 224)
    assert tuple(pretrained.splits["train"]["audio"].shape[1:]) == (160000,)


def test_ucf_fabricated_is_prepared(tmp_path):
    root = fabricate.write_ucf(tmp_path / "UCF101", 6, seconds=4.5)   # real frame size and rate, a short clip
    data = _prepared(tmp_path, "ucf51", root)
    assert all(len(data.splits[s]["label"]) >= 1 for s in ("train", "val", "test"))
    assert tuple(data.splits["train"]["visual"].shape[1:]) == (4, 3, 224, 224)


@pytest.mark.parametrize("name, dims", [("mosi", {"vision": 20, "audio": 5, "text": 300}),
                                        ("mosei", {"vision": 35, "audio": 74, "text": 300})])
def test_affect_pickles_have_real_dimensions(tmp_path, name, dims):
    root = tmp_path / "MultiBench"
    fabricate.write_affect(root, name, 4)
    out = tmp_path / "processed" / name
    prepare(name, {"root": str(root)}, out)
    data = load_dataset(name, {"prepared": str(out), "modalities": ["vision", "text", "audio"]})
    for modality, dim in dims.items():
        assert data.splits["train"][modality].shape[-1] == dim


def test_sthsth_fabricated_is_prepared(tmp_path):
    root = fabricate.write_sthsth(tmp_path / "Sth-Sth", 3)
    data = _prepared(tmp_path, "sthsth", root)
    shapes = {m: tuple(data.splits["train"][m].shape[1:]) for m in data.modalities}
    assert all(s[0] == 16 and s[-2:] == (224, 224) for s in shapes.values()), shapes


# ---------------------------------------------------------------- the cost arithmetic
@dataclass
class _Train:
    max_epochs: int = 10
    batch_size: int = 32


@dataclass
class _Config:
    train: _Train = field(default_factory=_Train)


@dataclass
class _Search:
    seeds: tuple = (0,)
    grid: dict = field(default_factory=lambda: {"mcr": {"lambda_mipd": [0.01, 0.1, 1.0]}})

    def trials(self, method, label):
        return [{"lambda_mipd": v} for v in self.grid[method]["lambda_mipd"]]


@dataclass
class _Study:
    """What benchmarks_cost reads of a BenchmarkStudyConfig, by hand."""
    datasets: dict = field(default_factory=lambda: {"MOSI V-T": {"name": "mosi",
                                                                 "params": {"modalities": ["vision", "text"]}}})
    seeds: tuple = (0, 1, 2)
    methods: tuple = ("ensemble", "joint", "ogm", "mcr")
    search: _Search = field(default_factory=_Search)

    def run_config(self, method, label, seed):
        return _Config()

    def family(self, label):
        return "Transformer"

    def runs_on(self, method, label):
        return True


def _steps(flops: dict, status: dict | None = None) -> pd.DataFrame:
    status = status or {}
    return pd.DataFrame([{"dataset": "MOSI V-T", "method": m, "status": status.get(m, "ok"),
                          "flops_per_step_paper_batch": f if status.get(m, "ok") == "ok" else float("nan"),
                          "memory_estimate_paper_batch_mib": 1024.0 * (i + 1)}
                         for i, (m, f) in enumerate(flops.items())])


def test_cost_arithmetic_on_a_hand_made_table():
    F = 3.2e12
    steps = _steps({"unimodal:vision": F / 2, "unimodal:text": F / 2, "joint": F, "ogm": F, "mcr": 2 * F})
    row = paper_cost.benchmarks_cost(steps, _Study(), utilisation=0.5).iloc[0]
    # runs: 2 unimodal x 3 seeds, joint 3, ogm 3, mcr 3 + 3 trials on seed 0 - the shared one = 5;
    # the Ensemble trains nothing
    assert row["runs"] == 6 + 3 + 3 + 5
    batches = math.floor(1284 / 32)       # MOSI's 1,284 training segments, batch 32
    assert row["batches_per_epoch"] == batches
    per_run = {"unimodal": F / 2, "joint": F, "ogm": F, "mcr": 2 * F}
    runs = {"unimodal": 6, "joint": 3, "ogm": 3, "mcr": 5}
    expected = sum(runs[m] * 10 * (batches * f + 229 * f / 32 / 3) for m, f in per_run.items())
    assert row["pflops"] == pytest.approx(expected / 1e15)
    assert row["train_steps"] == sum(runs.values()) * 10 * batches
    assert row["gpu_hours_A100"] == pytest.approx(expected / (312e12 * 0.5) / 3600)
    assert row["gpu_hours_H100 SXM"] == pytest.approx(expected / (989e12 * 0.5) / 3600)
    assert row["peak_memory_gib_paper_batch"] == pytest.approx(5.0)   # mcr's row, the fifth
    assert row["methods_extrapolated"] == "" and row["methods_unknown"] == ""


def test_unmeasured_method_takes_joint_times_its_ratio_elsewhere():
    F = 1e12
    measured = _steps({"unimodal:vision": F, "unimodal:text": F, "joint": F, "ogm": 3 * F, "mcr": F})
    other = measured.assign(dataset="other", flops_per_step_paper_batch=lambda f: f["flops_per_step_paper_batch"] * 2)
    here = _steps({"unimodal:vision": F, "unimodal:text": F, "joint": 5 * F, "ogm": 0.0, "mcr": F},
                  status={"ogm": "not run: the dataset's budget of 60 s was spent"})
    filled = paper_cost.step_flops(pd.concat([here, other], ignore_index=True))
    ogm = filled[(filled["dataset"] == "MOSI V-T") & (filled["method"] == "ogm")].iloc[0]
    assert ogm["extrapolated"] and ogm["flops_per_step_paper_batch"] == pytest.approx(15 * F)
    row = paper_cost.benchmarks_cost(pd.concat([here, other], ignore_index=True), _Study()).iloc[0]
    assert row["methods_extrapolated"] == "ogm"


def test_cremad_split_sizes_come_from_the_release_folds():
    train, val, test = paper_cost.split_sizes("cremad", [0])
    assert train + val + test == 5820
    assert paper_cost.split_sizes("mosi") == (1284, 229, 686)


def test_random_encoders_swap_each_checkpoint_for_its_real_config():
    from benchmarks.random_backbones import PRETRAINED, random_encoders

    @dataclass(frozen=True)
    class Model:
        encoders: dict = field(default_factory=dict)

    model = Model(encoders={"audio": {"kind": "speech", "checkpoint": "ALM/hubert-base-audioset", "freeze": True},
                            "visual": {"kind": "resnet18"}})
    swapped = random_encoders(model)
    assert swapped.encoders["audio"] == {"kind": "speech", "freeze": True,
                                         "random_config": PRETRAINED["ALM/hubert-base-audioset"]}
    assert swapped.encoders["visual"] == {"kind": "resnet18"} and "checkpoint" in model.encoders["audio"]
    with pytest.raises(KeyError, match="no config of 'org/unknown'"):
        random_encoders(Model(encoders={"audio": {"checkpoint": "org/unknown"}}))


# ---------------------------------------------------------------- the steps table, end to end
def test_steps_on_fabricated_mosi_count_every_run_and_measure_within_the_budget(tmp_path):
    """run_steps on the paper profile's MOSI V-T entry: joint training (an entry's first run) is
    measured on real steps and its real FLOP count equals the meta count; past the budget (0 s)
    MCR is counted only, at the paper's batch; PMR, which the study does not run on a regression
    task, is a row saying why."""
    from benchmarks import paper_rehearsal as rehearsal
    fabricate.write_affect(tmp_path / "MultiBench", "mosi", 8)
    folder = tmp_path / "processed" / "mosi"
    prepare("mosi", {"root": str(tmp_path / "MultiBench")}, folder)
    folders = {name: folder if name == "mosi" else tmp_path / "absent" / name
               for name in ("cremad", "cremad_faces", "ave", "ave_pretrained", "ucf51", "mosi", "mosei", "sthsth")}
    study = rehearsal.benchmark_study(folders)
    steps = rehearsal.run_steps(study, budget_s=0, only=["MOSI V-T"], methods=["joint", "mcr", "pmr"],
                                progress=False).set_index("method")
    joint, mcr = steps.loc["joint"], steps.loc["mcr"]
    assert joint["status"] == "ok" and joint["time_per_step_s"] > 0 and bool(joint["meta_count_equals_real"])
    assert mcr["status"].startswith("counted") and pd.isna(mcr["time_per_step_s"])
    assert mcr["flops_per_step_paper_batch"] >= joint["flops_per_step_paper_batch"] > 0
    assert steps.loc["pmr", "status"].startswith("not run by the study")
