"""The run cache never returns a stale run: one test per way to go stale (mcrlib.run_key).

  * editing any module the run imports retrains; editing an unrelated one does not;
  * re-preparing a dataset with other params retrains, and preparing it as before finds the runs;
  * a prepared file swapped by hand is a clear error, never read and never keyed;
  * equal configs spelled differently share one key;
  * an unreadable or half-written cache entry is reported and retrained.
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import mcrlib
from mcrlib.config import RunConfig, from_dict
from mcrlib.data.prepare import prepare
from mcrlib.errors import DataError
from mcrlib.run_key import code_modules, run_key
from mcrlib.runs import run
from tests.conftest import TINY_RUN
from tests.fixtures.fsdd import write_fsdd

PACKAGE = Path(mcrlib.__file__).parent
MCR = {**TINY_RUN, "method": {"name": "mcr", "params": {"copies": 4}}}


def config(mapping) -> RunConfig:
    return from_dict(RunConfig, mapping)


# ---- code -------------------------------------------------------------------------------------

KEY_SCRIPT = """
import json, sys
from mcrlib.config import RunConfig, from_dict
from mcrlib.run_key import run_key
print(json.dumps([run_key(from_dict(RunConfig, c)) for c in json.loads(sys.argv[1])]))
"""


def keys_of(copy: Path, configs: list[dict]) -> list[str]:
    """The run keys that the package under `copy` gives, computed in a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", KEY_SCRIPT, json.dumps(configs)], cwd=copy, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def edit(path: Path) -> None:
    path.write_text(path.read_text() + "\n# a one-line edit\n")


def test_editing_a_module_the_run_imports_retrains_and_an_unrelated_edit_does_not(tmp_path):
    copy = tmp_path / "checkout"
    shutil.copytree(PACKAGE, copy / "mcrlib", ignore=shutil.ignore_patterns("__pycache__"))
    runs = [MCR, {**TINY_RUN, "method": {"name": "joint"}}]
    before = keys_of(copy, runs)
    # Modules no synthetic MCR or joint run imports: another method, another dataset's media
    # stack, the analysis code. Their edit retrains nothing.
    for unrelated in ("methods/agm.py", "data/media.py", "data/cremad.py", "analysis/tables.py"):
        edit(copy / "mcrlib" / unrelated)
    assert keys_of(copy, runs) == before
    # A module both runs import without naming it in any list: the error types (through the
    # data registry). And one only MCR imports: the divergence.
    edit(copy / "mcrlib" / "errors.py")
    after_errors = keys_of(copy, runs)
    assert after_errors[0] != before[0] and after_errors[1] != before[1]
    edit(copy / "mcrlib" / "losses" / "jsd.py")
    after_jsd = keys_of(copy, runs)
    assert after_jsd[0] != after_errors[0] and after_jsd[1] == after_errors[1]


# What computes no number of a run: the command line, the pipeline, the studies (which only
# assemble configs and tables) and the analyses. None may be in any run's code closure, or an edit
# of it would retrain runs whose numbers it cannot change.
ORCHESTRATION = ("mcrlib.cli", "mcrlib.pipeline", "mcrlib.profiles", "mcrlib.sweep", "mcrlib.search",
                 "mcrlib.analysis", "mcrlib.studies")


def test_no_run_of_any_method_on_any_dataset_has_orchestration_code_in_its_closure():
    from mcrlib.code_closure import closure
    from mcrlib.data.registry import DATASETS
    from mcrlib.methods import METHODS
    from mcrlib.run_key import RUN_LAYER
    for name in ORCHESTRATION:   # real modules or folders, so the check below cannot pass by a typo
        path = PACKAGE.joinpath(*name.split(".")[1:])
        assert path.is_dir() or path.with_suffix(".py").is_file(), name
    for method in METHODS:
        for dataset in DATASETS:
            covered = closure([RUN_LAYER, METHODS.module_name(method), DATASETS.module_name(dataset)])
            leaked = [m for m in covered if m.startswith(ORCHESTRATION)]
            assert not leaked, f"{method} on {dataset}: {leaked}"


def test_editing_the_cli_the_pipeline_or_an_analysis_retrains_nothing_and_a_loss_edit_does(tmp_path):
    copy = tmp_path / "checkout"
    shutil.copytree(PACKAGE, copy / "mcrlib", ignore=shutil.ignore_patterns("__pycache__"))
    runs = [MCR, {**TINY_RUN, "method": {"name": "joint"}}, {**TINY_RUN, "method": {"name": "ensemble"}}]
    before = keys_of(copy, runs)
    for orchestration in ("cli.py", "pipeline.py", "sweep.py", "analysis/report.py", "analysis/errors.py",
                          "studies/grid.py", "studies/results.py"):
        edit(copy / "mcrlib" / orchestration)
    assert keys_of(copy, runs) == before
    edit(copy / "mcrlib" / "losses" / "jsd.py")      # computes MCR's numbers (its L_con)
    after = keys_of(copy, runs)
    assert after[0] != before[0] and after[1:] == before[1:]


def test_the_code_key_covers_every_module_a_run_actually_imports(tmp_path):
    """Train a run in a fresh interpreter and list the mcrlib modules loaded by then: each one is
    in the run's computed import closure (so none can change without changing the key)."""
    from mcrlib.code_closure import closure
    script = ("import json, sys\nfrom mcrlib.runs import run\n"
              f"run(json.loads(sys.argv[1]), {str(tmp_path / 'cache')!r})\n"
              "print(json.dumps(sorted(m for m in sys.modules if m == 'mcrlib' or m.startswith('mcrlib.'))))")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script, json.dumps(MCR)], env=env, capture_output=True,
                          text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1])) - {"mcrlib.runs.__main__"}
    covered = set(closure(code_modules(config(MCR))))
    assert loaded <= covered, sorted(loaded - covered)
    assert "mcrlib.methods.agm" not in covered and "mcrlib.data.media" not in covered


# ---- data -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fsdd_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("fsdd")
    write_fsdd(root, takes=1)
    return root


def avdigits_run(folder: Path) -> RunConfig:
    return config({"data": {"name": "avdigits", "params": {"prepared": str(folder)}},
                   "model": {"resnet_width": 8}, "train": {"max_epochs": 1, "warmup_epochs": 0, "batch_size": 16, "progress": False}})


def test_re_preparing_a_dataset_with_other_params_retrains(fsdd_root, tmp_path):
    settings = {"root": str(fsdd_root), "checksums": str(fsdd_root / "SHA256SUMS")}
    folder = tmp_path / "data/processed/avdigits"
    prepare("avdigits", settings, folder)
    first = run_key(avdigits_run(folder))
    prepare("avdigits", {**settings, "seed": 1}, folder)          # other pairing of images
    assert run_key(avdigits_run(folder)) != first
    prepare("avdigits", settings, folder)                         # as before: the same content
    assert run_key(avdigits_run(folder)) == first


def test_a_prepared_file_swapped_by_hand_is_an_error_not_a_cached_run(fsdd_root, tmp_path):
    settings = {"root": str(fsdd_root), "checksums": str(fsdd_root / "SHA256SUMS")}
    folder, other = tmp_path / "a", tmp_path / "b"
    prepare("avdigits", settings, folder)
    prepare("avdigits", {**settings, "seed": 1}, other)
    cache = tmp_path / "cache"
    trained = run(avdigits_run(folder), cache)
    shutil.copy(other / "corpus.pt", folder / "corpus.pt")         # swapped by hand
    for call in (lambda: run_key(avdigits_run(folder)), lambda: run(avdigits_run(folder), cache)):
        with pytest.raises(DataError, match=r"changed after prepare: corpus\.pt.*mcrlib\.data\.prepare avdigits"):
            call()
    prepare("avdigits", settings, folder)                         # prepared again: the run is found
    assert run(avdigits_run(folder), cache).path == trained.path


# ---- config -----------------------------------------------------------------------------------

def test_equal_configs_spelled_differently_share_one_key():
    from mcrlib.methods import METHODS
    import dataclasses
    defaults = dataclasses.asdict(METHODS["mcr"].Params())
    spelled = [{**TINY_RUN, "method": {"name": "mcr"}},
               {**TINY_RUN, "method": {"name": "mcr", "params": {"copies": defaults["copies"]}}},
               {**TINY_RUN, "method": {"name": "mcr", "params": defaults}},
               {**TINY_RUN, "method": {"name": "mcr", "params": {"lambda_mipd": str(defaults["lambda_mipd"])}}},
               {**TINY_RUN, "data": {"name": "synthetic", "params": {**TINY_RUN["data"]["params"], "n_classes": 5}},
                "method": {"name": "mcr"}}]
    assert len({run_key(config(c)) for c in spelled}) == 1
    changed = {**TINY_RUN, "method": {"name": "mcr", "params": {"lambda_mipd": 2 * defaults["lambda_mipd"]}}}
    assert run_key(config(changed)) != run_key(config(spelled[0]))


def test_an_ensemble_is_keyed_by_its_members():
    """The ensemble trains nothing: its key holds its members' keys, so a member that must be
    trained again (other code, other data) makes the ensemble new too."""
    from mcrlib.run_key import key_material
    ensemble = config({**TINY_RUN, "method": {"name": "ensemble"}})
    members = key_material(ensemble)["built_from"]
    unimodal = config({**TINY_RUN, "method": {"name": "unimodal", "params": {"modality": "x1"}}})
    assert members == {"member:x1": run_key(unimodal),
                       "member:x2": run_key(config({**TINY_RUN, "method": {"name": "unimodal", "params": {"modality": "x2"}}}))}


# ---- the cache's own files --------------------------------------------------------------------

@pytest.mark.parametrize("damage", ["result.json truncated", "predictions.pt truncated", "model.pt missing"])
def test_an_unreadable_cache_entry_is_reported_and_retrained(damage, tmp_path, capsys):
    joint = {**TINY_RUN, "method": {"name": "joint"}}
    first = run(joint, tmp_path)
    name, what = damage.split()
    path = first.path / name
    if what == "missing":
        path.unlink()
    else:
        path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    second = run(joint, tmp_path)
    assert "recomputing" in capsys.readouterr().out
    assert second.metrics == first.metrics
    assert run(joint, tmp_path).metrics == first.metrics     # and the entry is whole again


def test_equal_runs_write_byte_identical_cache_files(tmp_path):
    """The cache's torch files depend on their content only (not on the temporary path the
    atomic writer used), so two caches of one run can be compared byte for byte."""
    joint = {**TINY_RUN, "method": {"name": "joint"}}
    a, b = run(joint, tmp_path / "a"), run(joint, tmp_path / "b")
    for name in ("model.pt", "predictions.pt"):
        assert (a.path / name).read_bytes() == (b.path / name).read_bytes()


def test_config_is_a_leaf_and_the_trainer_imports_no_media_library():
    from mcrlib.code_closure import closure
    assert set(closure(["mcrlib.config"])) == {"mcrlib", "mcrlib.config"}
    script = ("import sys, mcrlib.train, mcrlib.runs, mcrlib.config, mcrlib.data\n"
              "print(sorted(m for m in ('av', 'soundfile', 'h5py', 'sklearn') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_cpu_run_does_not_depend_on_the_thread_count(tmp_path):
    """The key does not cover the thread count, so neither may the numbers: a CPU run trains on
    one thread whatever the process had (more threads reorder float reductions)."""
    import torch
    mcr = {**MCR, "train": {**TINY_RUN["train"], "max_epochs": 2}}
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        two = run(mcr, tmp_path / "a")
        assert torch.get_num_threads() == 2        # restored after the run
        torch.set_num_threads(1)
        one = run(mcr, tmp_path / "b")
    finally:
        torch.set_num_threads(before)
    assert two.history == one.history and two.metrics == one.metrics
