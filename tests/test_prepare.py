"""The `prepare@<name>` stages: each dataset's preprocessing command, run end to end on a fixture
in the dataset's real on-disk format, and the training builder reading its output where the raw
data is absent (as on a machine that only has data/processed)."""
import json
import shutil
import warnings
from pathlib import Path

import pytest
import yaml

from mcrlib.config import ConfigError
from mcrlib.data import DATASETS, dataset_params, fingerprint, load_dataset
from mcrlib.data.prepare import main, preparable, prepare
from mcrlib.errors import DataError
from tests.fixtures.ave import write_ave
from tests.fixtures.cremad import write_cremad
from tests.fixtures.faces import write_cremad_faces
from tests.fixtures.fsdd import write_fsdd
from tests.fixtures.mosi import write_affect_pickle
from tests.fixtures.sthsth import write_sthsth
from tests.fixtures.ucf import write_ucf

ROOT = Path(__file__).resolve().parents[1]
ENVIRONMENT = ("MCR_FSDD_ROOT", "MCR_CREMAD_ROOT", "MCR_AVE_ROOT", "MCR_UCF_ROOT", "MCR_MULTIBENCH_ROOT",
               "MCR_STHSTH_ROOT")

# name -> (write the raw fixture under a folder and return its root, small preprocessing settings,
#          the benchmarks' dataset params given the prepared folder (CREMA-D: the actor-table folds, which
#          place every fixture clip; most are not among the release's 5,820), the modalities it yields)
CASES = {
    "avdigits": (lambda base: write_fsdd(base / "fsdd").parent,
                 lambda root: {"root": str(root), "checksums": str(root / "SHA256SUMS")},
                 lambda out: {"prepared": str(out)}, ("audio", "visual")),
    "cremad": (lambda base: write_cremad(base / "CREMA-D"), lambda root: {"root": str(root), "image_size": 16},
               lambda out: {"prepared": str(out), "fold": 1, "split": "actors"}, ("audio", "visual")),
    "cremad_faces": (lambda base: write_cremad_faces(base / "CREMA-D"),
                     lambda root: {"root": str(root), "weights": "random", "face_size": 64, "device": "cpu",
                                   "max_frames": 6, "seconds": 1.0},
                     lambda out: {"prepared": str(out), "fold": 1, "split": "actors"}, ("audio", "visual")),
    "ave": (write_ave, lambda root: {"root": str(root), "frame_size": 16},
            lambda out: {"prepared": str(out)}, ("audio", "visual")),
    "ave_pretrained": (write_ave, lambda root: {"root": str(root), "frame_size": 16, "audio_seconds": 1.0},
                       lambda out: {"prepared": str(out)}, ("audio", "visual")),
    "ucf51": (write_ucf, lambda root: {"root": str(root), "frame_size": 16, "val_fraction": 0.25},
              lambda out: {"prepared": str(out)}, ("audio", "visual")),
    "mosi": (lambda base: write_affect_pickle(base / "raw").parent, lambda root: {"root": str(root)},
             lambda out: {"prepared": str(out), "modalities": ["vision", "text", "audio"]}, ("vision", "text", "audio")),
    "sthsth": (lambda base: write_sthsth(base / "Sth-Sth")["root"], lambda root: {"root": str(root), "image_size": 16},
               lambda out: {"prepared": str(out)}, ("rgb", "flow")),
}


@pytest.fixture(autouse=True)
def no_data_roots(monkeypatch):
    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


def test_every_registered_dataset_but_the_generator_has_a_stage():
    assert set(preparable()) == set(DATASETS) - {"synthetic", "synthetic_xor"}
    assert set(CASES) | {"mosei"} == set(preparable())   # MOSEI shares MOSI's code and schema


@pytest.mark.parametrize("name", sorted(CASES))
def test_stage_command_prepares_what_training_reads_without_the_raw_data(name, tmp_path, monkeypatch):
    write_raw, settings, run_params, modalities = CASES[name]
    root = Path(write_raw(tmp_path / "raw"))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"data": {name: settings(root)}}))
    monkeypatch.chdir(tmp_path)   # the stage's relative paths (AV-Digits' data/raw) stay in here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the UCF fixture has fewer classes with audio than the paper
        main([name, "--out", "data/processed/" + name])
    out = tmp_path / "data" / "processed" / name
    report = json.loads((out / ("recipe.json" if name == "avdigits" else "report.json")).read_text())
    assert report
    # the last file written: the content fingerprint every run key and every load checks
    assert fingerprint.verify(out, name) == json.loads((out / fingerprint.FILE).read_text())["fingerprint"]

    shutil.rmtree(tmp_path / "raw")   # training reads only the prepared folder
    data = load_dataset(name, run_params(out))
    assert data.modalities == modalities
    for split in ("train", "val", "test"):
        tensors = data.splits[split]
        assert len(tensors["label"]) > 0
        assert all(len(tensors[m]) == len(tensors["label"]) for m in modalities)


def test_unknown_dataset_or_section_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="expected one of"):
        prepare("kinetics", {}, tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"data": {"avdigits": {}}}))
    with pytest.raises(SystemExit, match="no data.cremad section"):
        main(["cremad", "--params", str(tmp_path / "params.yaml")])


def test_missing_root_names_the_layout_and_the_source(tmp_path):
    with pytest.raises(DataError, match="CREMA-D"):
        prepare("cremad", {"root": str(tmp_path / "nowhere")}, tmp_path / "out")


@pytest.mark.parametrize("profile", ["quick", "paper"])
def test_every_profile_prepares_each_dataset_its_studies_read(profile):
    from mcrlib.profiles import load_profile
    params = load_profile(profile, ROOT)
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert stages["prepare"]["foreach"] == "${data}"
    for section in ("benchmarks", "ablations"):
        for label, spec in params[section]["datasets"].items():
            if spec["name"] == "synthetic":
                continue
            assert spec["name"] in params["data"], f"{profile}: {section}.{label} has no prepare stage"
            folder = dataset_params(spec["name"], spec.get("params", {})).prepared
            assert folder == f"data/processed/{spec['name']}", f"{profile}: {section}.{label} reads {folder}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_preparing_twice_writes_the_same_bytes(name, tmp_path, monkeypatch):
    """DVC hashes data/processed: a clean rebuild must find the bytes it locked. (torch.save names
    the archive inside a file after the path it writes, and the atomic writer's path is random.)"""
    write_raw, settings, _, _ = CASES[name]
    root = Path(write_raw(tmp_path / "raw"))
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for out in ("first", "second"):
            prepare(name, settings(root), tmp_path / out / name)
    first = sorted(p.relative_to(tmp_path / "first") for p in (tmp_path / "first").rglob("*") if p.is_file())
    second = sorted(p.relative_to(tmp_path / "second") for p in (tmp_path / "second").rglob("*") if p.is_file())
    assert first == second and any(p.suffix == ".pt" for p in first)
    for path in first:
        assert (tmp_path / "first" / path).read_bytes() == (tmp_path / "second" / path).read_bytes(), path
