"""Each notebook stage depends on its own code manifest, which lists the code its results come from."""
import hashlib
import json
import shlex
from pathlib import Path

import yaml

from mcrlib import stage_code
from mcrlib.data.registry import DATASETS
from mcrlib.methods.base import METHODS

ROOT = Path(__file__).resolve().parents[1]


def _notebook_stages():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        argv = shlex.split(stage["cmd"]) if "cmd" in stage else []
        if argv[:3] == ["python", "-m", "mcrlib.pipeline"]:
            yield name, stage, Path(argv[3]).stem


def _files(notebook: str) -> set[str]:
    return set(stage_code.manifest(ROOT / "notebooks" / f"{notebook}.py")["files"])


def test_every_notebook_stage_depends_on_its_manifest_and_not_on_the_library_folder():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    written = {next(iter(o)) if isinstance(o, dict) else o for o in stages["code"]["outs"]}
    found = list(_notebook_stages())
    assert len(found) >= 8
    for name, stage, stem in found:
        deps = [d.split("#")[0].strip() for d in stage["deps"]]
        assert f"results/code/{stem}.json" in deps, name
        assert f"results/code/{stem}.json" in written, name
        # a folder of the library as a dependency would re-execute the stage on any edit in it
        assert not [d for d in deps if d == "mcrlib" or d.startswith("mcrlib/")], (name, deps)


def test_a_training_notebook_covers_the_run_layer_every_method_and_dataset_and_package_data():
    files = _files("02_synthetic_study")
    expected = {"mcrlib/runs.py", "mcrlib/train.py", "mcrlib/pipeline.py", "mcrlib/studies/synthetic.py",
                "mcrlib/data/cremad_meta/release_folds.tsv", "mcrlib/data/fsdd_sha256sums.txt"}
    expected |= {METHODS.module_name(n).replace(".", "/") + ".py" for n in METHODS}
    expected |= {DATASETS.module_name(n).replace(".", "/") + ".py" for n in DATASETS}
    assert expected <= files, sorted(expected - files)


def test_code_outside_a_stage_leaves_its_manifest_alone():
    confu = {f for f in _files("07_confu") if f.startswith("mcrlib/confu/")}
    assert "mcrlib/confu/model.py" in confu and "mcrlib/losses/higher_order.py" in _files("07_confu")
    for notebook in ("00_calibration", "02_synthetic_study", "03_real_benchmarks", "04_ablations", "06_report"):
        assert not {f for f in _files(notebook) if f.startswith("mcrlib/confu/")}, notebook
    report = _files("06_report")          # the report reads result files: it trains nothing
    assert "mcrlib/analysis/report.py" in report and "mcrlib/methods/mcr.py" not in report
    assert "benchmarks/cost.py" in _files("04_ablations")   # imported by the notebook, followed


def test_the_manifest_hashes_each_file_so_any_edit_changes_it(tmp_path):
    notebook = ROOT / "notebooks" / "06_report.py"
    [path] = stage_code.write_manifests([notebook], tmp_path)
    written = json.loads(path.read_text())
    assert written["notebook"].endswith("notebooks/06_report.py")
    for name, digest in written["files"].items():
        assert hashlib.sha256((ROOT / name).read_bytes()).hexdigest() == digest, name
    # written again, byte for byte the same (DVC compares content: nothing downstream re-executes)
    before = path.read_bytes()
    stage_code.write_manifests([notebook], tmp_path)
    assert path.read_bytes() == before
