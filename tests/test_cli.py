"""The commands answer a user's mistake with `<prog>: error: <message>` on stderr and an exit status
(2: usage or config error, 1: missing or corrupt data), never with a traceback; bugs keep theirs."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mcrlib import cli, runs
from mcrlib.cli import CommandError, DataError, user_errors
from mcrlib.config import ConfigError
from mcrlib.data import fsdd, prepare
from tests.fixtures.fsdd import write_fsdd

ROOT = Path(__file__).resolve().parents[1]
PREPARE = "python -m mcrlib.data.prepare: error: "
RUN = "mcr-run: error: "


@pytest.fixture(autouse=True)
def no_data_roots(monkeypatch):
    monkeypatch.delenv("MCR_FSDD_ROOT", raising=False)


def fails(main, argv, capsys) -> tuple[int, str]:
    """(exit status, stderr) of main(argv), which must exit."""
    with pytest.raises(SystemExit) as info:
        main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return info.value.code, err


# --- mcr-run -------------------------------------------------------------------------------------

def run_config(tmp_path, **sections) -> Path:
    config = {"data": {"name": "synthetic", "params": {"n_train": 16, "n_val": 8, "n_test": 8}},
              "train": {"max_epochs": 1, "warmup_epochs": 0, "progress": False}}
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.parametrize("sections, named", [
    ({"method": {"name": "magic"}}, "method.name='magic' is unknown"),
    ({"train": {"lr": -0.1}}, "train.lr=-0.1 is invalid: expected a learning rate > 0"),
    ({"data": {"params": {"shared": 0.5, "unique1": 0.5, "unique2": 0.25}}}, "data.shared+unique1+unique2=1.25"),
    ({"train": {"lrate": 0.1}}, "unknown key 'train.lrate'"),
])
def test_run_config_errors_exit_2_naming_the_key_and_value(sections, named, tmp_path, capsys):
    status, err = fails(cli.main, [run_config(tmp_path, **sections), "--cache", tmp_path / "cache"], capsys)
    assert status == 2
    assert err.startswith(RUN) and named in err
    assert not (tmp_path / "cache").exists()   # nothing trained


def test_run_malformed_yaml_exits_2_naming_the_file_and_line(tmp_path, capsys):
    config = tmp_path / "broken.yaml"
    config.write_text("train:\n  lr: 0.1\n    batch_size: 8\n")
    status, err = fails(cli.main, [config], capsys)
    assert status == 2
    assert err.startswith(RUN) and "broken.yaml" in err and "not valid YAML" in err and "line 3" in err


def test_run_missing_config_file_exits_2_naming_it(tmp_path, capsys):
    status, err = fails(cli.main, [tmp_path / "nowhere.yaml"], capsys)
    assert status == 2
    assert err == f"{RUN}config file {str(tmp_path / 'nowhere.yaml')!r} does not exist\n"


def test_python_m_mcrlib_cli_is_the_same_command(tmp_path):
    """The form torchrun starts (`torchrun ... -m mcrlib.cli CONFIG.yaml`, docs/distributed.md)."""
    missing = tmp_path / "nowhere.yaml"
    done = subprocess.run([sys.executable, "-m", "mcrlib.cli", str(missing)], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)
    assert done.returncode == 2
    assert done.stderr == f"{RUN}config file {str(missing)!r} does not exist\n"


def test_run_usage_error_exits_2(capsys):
    status, err = fails(cli.main, [], capsys)
    assert status == 2 and "mcr-run: error:" in err and "config" in err


def test_run_missing_data_exits_1_naming_the_folder_and_the_fix(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"data": {"name": "avdigits", "params": {"prepared": str(tmp_path / "none")}}}))
    status, err = fails(cli.main, [config, "--cache", tmp_path / "cache"], capsys)
    assert status == 1
    assert err.startswith(RUN) and str(tmp_path / "none") in err and "prepare@avdigits" in err


def test_run_explain_key_prints_what_the_key_covers_without_training(tmp_path, capsys):
    cli.main([str(run_config(tmp_path, method={"name": "mcr"})), "--explain-key", "--cache", str(tmp_path / "cache")])
    shown = json.loads(capsys.readouterr().out)
    assert set(shown) == {"key", "config", "code", "built_from"}
    assert shown["config"]["method"]["params"]["copies"] == 32          # the defaults filled in
    assert shown["config"]["data"]["params"]["n_train"] == 16 and not (tmp_path / "cache").exists()


def test_run_bug_keeps_its_exception_and_traceback(tmp_path, monkeypatch):
    def broken(config, cache_dir):
        raise KeyError("a bug")
    monkeypatch.setattr(runs, "run", broken)
    with pytest.raises(KeyError, match="a bug"):
        cli.main([str(run_config(tmp_path))])


# --- python -m mcrlib.data.prepare ---------------------------------------------------------------

@pytest.fixture
def fake_fsdd(tmp_path):
    """A 60-recording FSDD folder and params.yaml's AV-Digits section with its own checksum list."""
    sums = write_fsdd(tmp_path / "fsdd", takes=1)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"data": {"avdigits": {"checksums": str(sums)}}}))
    return tmp_path / "fsdd", params


def prepare_avdigits(params, tmp_path, capsys):
    return fails(prepare.main, ["avdigits", "--params", params, "--out", tmp_path / "out"], capsys)


def test_prepare_missing_recording_exits_1_naming_it(fake_fsdd, tmp_path, monkeypatch, capsys):
    root, params = fake_fsdd
    (root / "recordings" / "7_theo_0.wav").unlink()
    monkeypatch.setenv("MCR_FSDD_ROOT", str(root))
    status, err = prepare_avdigits(params, tmp_path, capsys)
    assert status == 1
    assert err.startswith(PREPARE) and "1 missing (e.g. 7_theo_0.wav)" in err
    assert not (tmp_path / "out").exists()


def test_prepare_changed_recording_exits_1_naming_it(fake_fsdd, tmp_path, monkeypatch, capsys):
    root, params = fake_fsdd
    wav = root / "recordings" / "3_lucas_0.wav"
    wav.write_bytes(wav.read_bytes()[:-2] + b"\x01\x02")
    monkeypatch.setenv("MCR_FSDD_ROOT", str(root))
    status, err = prepare_avdigits(params, tmp_path, capsys)
    assert status == 1
    assert err.startswith(PREPARE) and "1 with a wrong SHA-256 (e.g. 3_lucas_0.wav)" in err


def test_prepare_root_without_recordings_exits_1_naming_it(tmp_path, monkeypatch, capsys):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"data": {"avdigits": {}}}))
    monkeypatch.setenv("MCR_FSDD_ROOT", str(tmp_path / "empty"))
    status, err = prepare_avdigits(params, tmp_path, capsys)
    assert status == 1
    assert err.startswith(PREPARE) and f"{tmp_path / 'empty'} has no recordings/ folder" in err


def offline(monkeypatch, tmp_path, archive: Path):
    """No FSDD folder anywhere and the download reads `archive` (a file:// URL) instead."""
    monkeypatch.chdir(tmp_path)   # the download folder data/raw/fsdd is relative
    monkeypatch.setattr(fsdd.download, "__defaults__", (archive.as_uri(),))
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"data": {"avdigits": {}}}))
    return params


def test_prepare_without_folder_or_internet_exits_1_saying_how_to_provide_fsdd(tmp_path, monkeypatch, capsys):
    params = offline(monkeypatch, tmp_path, tmp_path / "unreachable" / "fsdd.zip")
    status, err = prepare_avdigits(params, tmp_path, capsys)
    assert status == 1
    assert err.startswith(PREPARE + "could not download FSDD")
    assert "MCR_FSDD_ROOT" in err and "data.avdigits.root" in err and "Jakobovski/free-spoken-digit-dataset" in err
    assert not (tmp_path / "data" / "raw" / "fsdd").exists()


def test_prepare_download_that_is_not_an_archive_exits_1(tmp_path, monkeypatch, capsys):
    page = tmp_path / "login.html"
    page.write_text("<html>please sign in to the wifi</html>")
    params = offline(monkeypatch, tmp_path, page)
    status, err = prepare_avdigits(params, tmp_path, capsys)
    assert status == 1
    assert err.startswith(PREPARE + "the download from ") and "is not a zip archive" in err and "MCR_FSDD_ROOT" in err


def test_prepare_malformed_checksum_list_exits_1_naming_it(fake_fsdd, tmp_path, monkeypatch, capsys):
    root, params = fake_fsdd
    (root / "SHA256SUMS").write_text("not-a-checksum-line\n")
    monkeypatch.setenv("MCR_FSDD_ROOT", str(root))
    status, err = prepare_avdigits(params, tmp_path, capsys)
    assert status == 1 and str(root / "SHA256SUMS") in err


@pytest.mark.parametrize("text, named", [
    ("data:\n  avdigits: {duration_s: -1}\n", "data.duration_s=-1.0 is invalid"),
    ("data:\n  avdigits: {fsdd_rot: x}\n", "unknown key 'data.avdigits.fsdd_rot'"),
    ("data:\n  cremad: {}\n", "has no data.avdigits section; it has ['cremad']"),
    ("data: [avdigits]\n", "data=['avdigits'] is invalid"),
    ("data:\n  avdigits: {seed: 0\n", "is not valid YAML"),
])
def test_prepare_config_errors_exit_2_naming_the_key(text, named, tmp_path, capsys):
    params = tmp_path / "params.yaml"
    params.write_text(text)
    status, err = prepare_avdigits(params, tmp_path, capsys)
    assert status == 2
    assert err.startswith(PREPARE) and named in err


def test_prepare_missing_params_file_or_unknown_dataset_exits_2(tmp_path, capsys):
    status, err = prepare_avdigits(tmp_path / "nowhere.yaml", tmp_path, capsys)
    assert status == 2 and "nowhere.yaml" in err and "does not exist" in err
    status, err = fails(prepare.main, ["kinetics"], capsys)
    assert status == 2 and "invalid choice: 'kinetics'" in err


def test_prepare_bug_keeps_its_exception(fake_fsdd, tmp_path, monkeypatch):
    root, params = fake_fsdd
    monkeypatch.setenv("MCR_FSDD_ROOT", str(root))

    import dataclasses

    from mcrlib.data import avdigits

    def broken(cfg, out):
        raise RuntimeError("a bug")
    monkeypatch.setattr(avdigits, "SPEC", dataclasses.replace(avdigits.SPEC, prepare=broken))
    with pytest.raises(RuntimeError, match="a bug"):
        prepare.main(["avdigits", "--params", str(params), "--out", str(tmp_path / "out")])


def test_prepare_command_prints_the_message_alone_and_exits_1(fake_fsdd, tmp_path):
    root, params = fake_fsdd
    (root / "recordings" / "0_george_0.wav").unlink()
    env = {**os.environ, "MCR_FSDD_ROOT": str(root), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "mcrlib.data.prepare", "avdigits", "--params", str(params),
                           "--out", str(tmp_path / "out")], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(PREPARE) and "0_george_0.wav" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


# --- the shared helper ---------------------------------------------------------------------------

def test_helper_maps_error_types_to_statuses_and_works_as_a_decorator(capsys):
    @user_errors("tool")
    def command(error):
        raise error

    for error, status in [(ConfigError("bad key"), 2), (yaml.YAMLError("bad yaml"), 2),
                          (DataError("bad file"), 1), (FileNotFoundError("no file"), 1)]:
        with pytest.raises(CommandError) as info:
            command(error)
        assert info.value.code == status and str(info.value) == str(error)
        assert capsys.readouterr().err == f"tool: error: {error}\n"
    for bug in (ValueError("bug"), KeyError("bug"), RuntimeError("bug"), OSError("bug")):
        with pytest.raises(type(bug)):
            command(bug)
    assert capsys.readouterr().err == ""


def test_a_cuda_device_on_a_machine_without_one_is_a_config_error(tmp_path, capsys, monkeypatch):
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = tmp_path / "cuda.yaml"
    config.write_text(yaml.safe_dump({"data": {"name": "synthetic", "params": {"n_train": 64, "n_val": 32, "n_test": 32}},
                                      "train": {"device": "cuda", "max_epochs": 2}, "method": {"name": "joint"}}))
    status, err = fails(cli.main, [str(config), "--cache", str(tmp_path / "cache")], capsys)
    assert status == 2 and "train.device='cuda' is invalid" in err and "no CUDA device" in err
