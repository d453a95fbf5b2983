"""AV-Digits end to end on an FSDD fixture in the real format; FSDD checks and errors."""
import io
import json
import zipfile

import pytest
import torch

from mcrlib.data import fsdd, load_dataset
from mcrlib.data.avdigits import AVDigitsConfig, AVDigitsData, build, load
from tests.fixtures.fsdd import write_fsdd


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("fsdd")
    sums = write_fsdd(root)
    out = tmp_path_factory.mktemp("avdigits")
    record = build(AVDigitsConfig(fsdd_root=str(root), checksums=str(sums)), out)
    return root, sums, out, record


def test_splits_are_by_speaker_and_labels_come_from_file_names(built):
    _, _, out, record = built
    data = load(AVDigitsData(path=str(out)))
    assert record["splits"]["test"]["speakers"] == ["yweweler"] and record["splits"]["val"]["speakers"] == ["theo"]
    assert record["splits"]["train"]["samples"] == 4 * 10 * 2
    speakers = data.group_names
    for split, expected in (("train", {"george", "jackson", "lucas", "nicolas"}), ("test", {"yweweler"})):
        assert {speakers[g] for g in data.splits[split]["group"].tolist()} == expected
    train = data.splits["train"]
    assert train["audio"].shape == (80, 1, 64, 33) and train["visual"].shape == (80, 1, 8, 8)
    assert sorted(train["label"].tolist()) == sorted(list(range(10)) * 8)


def test_each_image_shows_the_spoken_digit_and_pools_are_disjoint(built):
    from sklearn.datasets import load_digits
    targets = torch.from_numpy(load_digits().target)
    data = load(AVDigitsData(path=str(built[2])))
    ids = {}
    for split, tensors in data.splits.items():
        assert torch.equal(targets[tensors["image_id"]], tensors["label"])
        ids[split] = set(tensors["image_id"].tolist())
    assert not ids["train"] & ids["test"] and not ids["train"] & ids["val"] and not ids["val"] & ids["test"]


def test_audio_is_standardised_log_stft_and_the_build_is_deterministic(built, tmp_path):
    root, sums, out, record = built
    train = load(AVDigitsData(path=str(out))).splits["train"]["audio"]
    per_bin = train.mean(dim=(0, 1, 3))
    assert per_bin.abs().max() < 1e-3  # train statistics
    again = build(AVDigitsConfig(fsdd_root=str(root), checksums=str(sums)), tmp_path)
    assert again["fingerprint"] == record["fingerprint"]
    noisier = build(AVDigitsConfig(fsdd_root=str(root), checksums=str(sums), audio_snr_db=0.0), tmp_path / "n")
    assert noisier["fingerprint"] != record["fingerprint"]


def test_registered_dataset_checks_the_fingerprint(built):
    out, record = built[2], built[3]
    data = load_dataset("avdigits", {"path": str(out), "fingerprint": record["fingerprint"]})
    assert data.modalities == ("audio", "visual") and data.n_classes == 10
    with pytest.raises(ValueError, match="rebuild"):
        load_dataset("avdigits", {"path": str(out), "fingerprint": "0" * 16})


def test_missing_cache_names_the_stage(tmp_path):
    with pytest.raises(FileNotFoundError, match="dvc repro prepare@avdigits"):
        load(AVDigitsData(path=str(tmp_path)))


def test_changed_or_missing_recording_is_named(tmp_path):
    sums = write_fsdd(tmp_path, takes=1)
    victim = tmp_path / "recordings" / "3_lucas_0.wav"
    victim.write_bytes(victim.read_bytes()[:-10])
    (tmp_path / "recordings" / "7_theo_0.wav").unlink()
    with pytest.raises(ValueError, match=r"1 missing \(e\.g\. 7_theo_0\.wav\).*1 with a wrong SHA-256 \(e\.g\. 3_lucas_0\.wav\)"):
        build(AVDigitsConfig(fsdd_root=str(tmp_path), checksums=str(sums)), tmp_path / "out")


def test_missing_root_explains_the_layout_and_source(tmp_path, monkeypatch):
    monkeypatch.delenv("MCR_FSDD_ROOT", raising=False)
    with pytest.raises(FileNotFoundError, match="recordings/.*Jakobovski/free-spoken-digit-dataset.*MCR_FSDD_ROOT"):
        fsdd.locate(str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="no FSDD folder given"):
        fsdd.locate("")


def test_download_unpacks_the_archive_when_no_folder_is_given(tmp_path, monkeypatch):
    source = tmp_path / "source"
    sums = write_fsdd(source, takes=1)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for wav in (source / "recordings").iterdir():
            archive.write(wav, f"free-spoken-digit-dataset-{fsdd.COMMIT}/recordings/{wav.name}")
    requested = []

    def fake_urlopen(url, timeout):
        requested.append(url)
        return io.BytesIO(buffer.getvalue())
    monkeypatch.delenv("MCR_FSDD_ROOT", raising=False)
    monkeypatch.setattr(fsdd.urllib.request, "urlopen", fake_urlopen)
    root = fsdd.locate("", download_to=tmp_path / "raw")
    assert requested == [fsdd.ARCHIVE_URL] and fsdd.COMMIT in requested[0]
    assert len(fsdd.verify(root, fsdd.read_sums(sums))) == 60


def test_pinned_checksums_cover_the_whole_corpus():
    names = list(fsdd.read_sums())
    parsed = [fsdd.parse_name(fsdd.Path(n)) for n in names]
    assert len(names) == 3000
    assert {d for d, _, _ in parsed} == set(range(10)) and len({s for _, s, _ in parsed}) == 6
    assert {t for _, _, t in parsed} == set(range(50))


def test_recipe_record_is_json_with_the_recipe(built):
    record = json.loads((built[2] / "recipe.json").read_text())
    assert record["recipe"] == {**json.loads(json.dumps(record["recipe"])), "image_energy": 0.3, "audio_snr_db": 30.0}
    assert 1 <= record["image_pca_components"] <= 64


def test_run_configs_do_not_depend_on_where_the_project_lives(built, tmp_path, monkeypatch):
    """Two checkouts of the project give the same run configs (so the same run-cache keys), and
    the relative data path is read under the project root whatever the working directory."""
    import shutil

    from mcrlib.data.location import ENV
    from mcrlib.studies.benchmarks import resolve_datasets
    monkeypatch.setenv(ENV, "")   # restored after the test
    datasets = {"AV-Digits": {"name": "avdigits", "params": {"path": "data/processed/avdigits"}}}
    resolved = []
    for checkout in ("a", "b"):
        shutil.copytree(built[2], tmp_path / checkout / "data/processed/avdigits")
        resolved.append(resolve_datasets(datasets, tmp_path / checkout))
    assert resolved[0] == resolved[1]
    params = resolved[1]["AV-Digits"]["params"]
    assert params["path"] == "data/processed/avdigits" and params["fingerprint"] == built[3]["fingerprint"]
    monkeypatch.chdir(tmp_path / "a")   # elsewhere than checkout b, whose root resolve_datasets set
    shutil.rmtree(tmp_path / "a" / "data")
    assert len(load_dataset("avdigits", params).splits["test"]["label"]) == 20
