"""AV-Digits end to end on an FSDD fixture in the real format; FSDD checks and errors."""
import io
import json
import zipfile

import pytest
import torch

from mcrlib.config import ConfigError
from mcrlib.data import fsdd, load_dataset
from mcrlib.data.avdigits import LoadConfig, load
from mcrlib.data.prepare import prepare
from mcrlib.errors import DataError
from tests.fixtures.fsdd import SPEAKERS, write_fsdd


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("fsdd")
    sums = write_fsdd(root)
    out = tmp_path_factory.mktemp("avdigits")
    record = prepare("avdigits", {"root": str(root), "checksums": str(sums)}, out)
    return root, sums, out, record


def test_folds_leave_one_speaker_out_and_labels_come_from_file_names(built):
    _, _, out, record = built
    assert record["speakers"] == sorted(SPEAKERS)
    tested = []
    for fold in range(6):
        data = load(LoadConfig(prepared=str(out), fold=fold))
        speakers = {split: {data.group_names[g] for g in t["group"].tolist()} for split, t in data.splits.items()}
        assert speakers["test"] == {record["speakers"][fold]}
        assert speakers["val"] == {record["speakers"][(fold + 1) % 6]}
        assert speakers["train"] == set(SPEAKERS) - speakers["test"] - speakers["val"]
        train = data.splits["train"]
        assert train["audio"].shape == (80, 1, 64, 33) and train["visual"].shape == (80, 1, 8, 8)
        assert sorted(train["label"].tolist()) == sorted(list(range(10)) * 8)
        tested += data.splits["test"]["image_id"].tolist()
    assert len(tested) == 120         # every recording is a test sample in exactly one fold
    with pytest.raises(ConfigError, match="data.fold"):
        LoadConfig(prepared=str(out), fold=6)


def test_each_image_shows_the_spoken_digit_and_speaker_pools_are_disjoint(built):
    from sklearn.datasets import load_digits
    targets = torch.from_numpy(load_digits().target)
    for fold in (0, 3):
        data = load(LoadConfig(prepared=str(built[2]), fold=fold))
        ids = {}
        for split, tensors in data.splits.items():
            assert torch.equal(targets[tensors["image_id"]], tensors["label"])
            ids[split] = set(tensors["image_id"].tolist())
        assert not ids["train"] & ids["test"] and not ids["train"] & ids["val"] and not ids["val"] & ids["test"]


def test_audio_is_standardised_with_training_statistics_and_degradation_is_applied_at_load(built, tmp_path):
    root, sums, out, record = built
    clean = load(LoadConfig(prepared=str(out), audio_snr_db=60.0, image_energy=1.0))
    assert clean.splits["train"]["audio"].mean(dim=(0, 1, 3)).abs().max() < 1e-3  # train statistics
    noisy = load(LoadConfig(prepared=str(out), audio_snr_db=0.0, image_energy=0.1))
    # the lower the SNR, the further the spectrograms from the clean ones
    def corr(a, b):
        return torch.corrcoef(torch.stack([a.splits["train"]["audio"].flatten(), b.splits["train"]["audio"].flatten()]))[0, 1]
    mild = load(LoadConfig(prepared=str(out), audio_snr_db=40.0, image_energy=1.0))
    assert corr(clean, mild) > 0.9 > corr(clean, noisy)
    # fewer principal components: the images lose detail
    from sklearn.datasets import load_digits
    raw = torch.from_numpy(load_digits().images / 16.0).float()
    def error(data):
        t = data.splits["test"]
        return (t["visual"][:, 0] - raw[t["image_id"]]).pow(2).mean().item()
    assert error(noisy) > 2 * error(clean)
    again = prepare("avdigits", {"root": str(root), "checksums": str(sums)}, tmp_path)
    assert again["fingerprint"] == record["fingerprint"]                  # deterministic
    other = prepare("avdigits", {"root": str(root), "checksums": str(sums), "seed": 1}, tmp_path / "s1")
    assert other["fingerprint"] != record["fingerprint"]


def test_registered_dataset_declares_its_encoders(built):
    data = load_dataset("avdigits", {"prepared": str(built[2])})
    assert data.modalities == ("audio", "visual") and data.n_classes == 10
    assert data.encoders == {"audio": "resnet2d", "visual": "resnet2d"}


def test_missing_prepared_folder_names_the_stage(tmp_path):
    with pytest.raises(DataError, match="dvc repro prepare@avdigits"):
        load(LoadConfig(prepared=str(tmp_path / "absent")))
    with pytest.raises(DataError, match="python -m mcrlib.data.prepare avdigits"):
        load_dataset("avdigits", {"prepared": str(tmp_path)})


def test_changed_or_missing_recording_is_named(tmp_path):
    sums = write_fsdd(tmp_path, takes=1)
    victim = tmp_path / "recordings" / "3_lucas_0.wav"
    victim.write_bytes(victim.read_bytes()[:-10])
    (tmp_path / "recordings" / "7_theo_0.wav").unlink()
    with pytest.raises(ValueError, match=r"1 missing \(e\.g\. 7_theo_0\.wav\).*1 with a wrong SHA-256 \(e\.g\. 3_lucas_0\.wav\)"):
        prepare("avdigits", {"root": str(tmp_path), "checksums": str(sums)}, tmp_path / "out")


def test_missing_root_explains_the_layout_and_source(tmp_path, monkeypatch):
    monkeypatch.delenv("MCR_FSDD_ROOT", raising=False)
    with pytest.raises(DataError, match="recordings/.*Jakobovski/free-spoken-digit-dataset.*MCR_FSDD_ROOT"):
        fsdd.locate(str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="no FSDD folder given"):
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
    assert record["recipe"]["seed"] == 0 and record["recipe"]["n_fft"] == 126
    assert record["samples_per_speaker"] == {s: 20 for s in SPEAKERS}
    assert sum(record["image_pool_per_speaker"].values()) == 1797


def test_studies_read_the_prepared_folder_under_the_project_root_and_keys_ignore_where(built, tmp_path, monkeypatch):
    """Two checkouts of the project resolve the prepared folder under their own root, with no
    environment side effect, and give their runs the same keys (the folder's content, not its
    place, is keyed)."""
    import os
    import shutil

    from mcrlib.config import RunConfig, from_dict
    from mcrlib.run_key import run_key
    from mcrlib.studies.benchmarks import resolve_datasets
    datasets = {"AV-Digits": {"name": "avdigits", "params": {"fold": 1}}}
    environment = dict(os.environ)
    keys = []
    for checkout in ("a", "b"):
        shutil.copytree(built[2], tmp_path / checkout / "data/processed/avdigits")
        params = resolve_datasets(datasets, tmp_path / checkout)["AV-Digits"]["params"]
        assert params == {"fold": 1, "prepared": str((tmp_path / checkout / "data/processed/avdigits").resolve())}
        keys.append(run_key(from_dict(RunConfig, {"data": {"name": "avdigits", "params": params}})))
    assert dict(os.environ) == environment
    assert keys[0] == keys[1]
    monkeypatch.chdir(tmp_path)   # any working directory: the params hold the absolute folder
    assert len(load_dataset("avdigits", params).splits["test"]["label"]) == 20


def test_several_images_per_test_recording(built):
    """test_images=K: K rows per test recording, recording by recording, each a same-digit image
    of the test speaker's pool, the first the recording's own pairing, no image twice for one
    recording; training and validation unchanged; K=1 is the one-pairing split."""
    _, _, out, _ = built
    one = load(LoadConfig(prepared=str(out), fold=2))
    many = load(LoadConfig(prepared=str(out), fold=2, test_images=4))
    for split in ("train", "val"):
        for key, value in one.splits[split].items():
            assert torch.equal(many.splits[split][key], value)
    test_one, test_many = one.splits["test"], many.splits["test"]
    assert len(test_many["label"]) == 4 * len(test_one["label"])
    for key in ("label", "group"):
        assert torch.equal(test_many[key], test_one[key].repeat_interleave(4))
    assert torch.equal(test_many["audio"], test_one["audio"].repeat_interleave(4, dim=0))
    ids = test_many["image_id"].view(-1, 4)
    assert torch.equal(ids[:, 0], test_one["image_id"])
    assert all(len(set(row)) == 4 for row in ids.tolist())
    from sklearn.datasets import load_digits
    from mcrlib.data.avdigits import _speaker_pools
    target = load_digits().target
    pool = set(_speaker_pools(target, 0)[2].tolist())
    assert set(ids.reshape(-1).tolist()) <= pool                              # the test speaker's pool only
    assert (torch.from_numpy(target)[ids] == test_one["label"][:, None]).all()  # the spoken digit
    # the same draw in every load (every method and run of a unit scores the same pairings)
    again = load(LoadConfig(prepared=str(out), fold=2, test_images=4))
    assert torch.equal(again.splits["test"]["image_id"], test_many["image_id"])


def test_test_images_out_of_range_names_the_key(built):
    _, _, out, _ = built
    for bad in (0, 21, 2.5):
        with pytest.raises(ConfigError, match="data.test_images"):
            LoadConfig(prepared=str(out), test_images=bad)


def test_mel_features_are_40_log_mel_bands_of_the_same_recordings(built):
    _, _, out, _ = built
    stft = load(LoadConfig(prepared=str(out), fold=0))
    mel = load(LoadConfig(prepared=str(out), fold=0, audio_features="mel"))
    assert mel.splits["train"]["audio"].shape == (80, 1, 40, 33)
    for split in ("train", "val", "test"):
        for key in ("label", "group", "visual", "image_id"):
            assert torch.equal(mel.splits[split][key], stft.splits[split][key])
    train = mel.splits["train"]["audio"]   # standardised per band with the training speakers' statistics
    assert train.mean(dim=(0, 3)).abs().max() < 1e-4
    with pytest.raises(ConfigError, match="data.audio_features"):
        LoadConfig(prepared=str(out), audio_features="mfcc")
