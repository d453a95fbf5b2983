"""AVE: real prepare -> fingerprint -> load_dataset on a tiny AVE_Dataset in the real format
(tests/fixtures/ave.py)."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from mcrlib.config import ConfigError, from_dict
from mcrlib.data import media
from mcrlib.data.ave import CLASSES, SPEC, LoadConfig, PrepareConfig, load, prepare, read_list
from mcrlib.data.prepare import prepare as prepare_dataset
from mcrlib.data.registry import data_identity, dataset_params, load_dataset
from mcrlib.errors import DataError
from tests.fixtures.ave import CORRUPT, DUPLICATE, EVENTS, LISTS, NO_AUDIO, SHORT_EVENT, kept, write_ave
from tests.fixtures.media_files import red_of_second, tone_of_second


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """The raw root and the prepared folder (prepare, canonical torch files, fingerprint)."""
    root = write_ave(tmp_path_factory.mktemp("ave"))
    out = tmp_path_factory.mktemp("prepared") / "ave"
    prepare_dataset("ave", {"root": str(root)}, out)
    return root, out


def loaded(out):
    return load_dataset("ave", {"prepared": str(out)})


def report_of(out):
    return json.loads((out / "report.json").read_text())


def test_shapes_dtypes_labels_and_official_splits(dataset):
    _, out = dataset
    data = loaded(out)
    assert data.modalities == ("audio", "visual") and data.n_classes == 28
    assert data.encoders == {"audio": "resnet2d", "visual": "frames"}
    ids = media.load_ids(out, "ave")
    for split in ("train", "val", "test"):
        t, events = data.splits[split], kept(split)
        n = len(events)
        assert ids[split] == [e[1] for e in events]           # exactly the official list, in order
        assert t["audio"].shape == (n, 1, 257, 1004) and t["audio"].dtype == torch.float32
        assert t["visual"].shape == (n, 4, 3, 224, 224) and t["visual"].dtype == torch.uint8
        assert t["label"].dtype == torch.long
        assert t["label"].tolist() == [CLASSES.index(e[0]) for e in events]
        assert torch.isfinite(t["audio"]).all()
    assert CLASSES.index("Church bell") == 0 and CLASSES.index("Mandolin") == 27 and len(CLASSES) == 28


def test_frames_are_one_fps_inside_the_event_in_rgb(dataset):
    data = loaded(dataset[1])
    for split in ("train", "val", "test"):
        for row, (_, video, _, start, end) in enumerate(kept(split)):
            colour = data.splits[split]["visual"][row].float().mean(dim=(2, 3))   # (4 frames, RGB)
            seconds = [start] * 4 if video in SHORT_EVENT else [start + j for j in range(4)]
            expected = torch.tensor([[red_of_second(s), 60, 200] for s in seconds], dtype=torch.float32)
            assert (colour - expected).abs().max() < 8, (video, colour)


def test_audio_is_the_tiled_event_segment(dataset):
    data = loaded(dataset[1])
    bin_of = lambda hz: round(hz / 16000 * 512)
    for split in ("train", "val", "test"):
        for row, (_, video, _, start, end) in enumerate(kept(split)):
            spec = data.splits[split]["audio"][row, 0]
            inside = [bin_of(tone_of_second(s)) for s in range(start, end)]
            outside = [bin_of(tone_of_second(s)) for s in range(10) if not start <= s < end]
            peak = spec.max(dim=1).values                     # per frequency bin, over time
            assert spec.shape[1] == 1004
            # the event's tones fill the whole 10 s (tiling): every column holds one of them
            assert spec[inside].max(dim=0).values.min() > peak.median() + 5
            for b in outside:                                 # the rest of the video is absent
                assert peak[b] < peak[inside].min() - 5, (video, b)


def test_data_report_lists_skipped_files_and_notes(dataset):
    root, out = dataset
    report = report_of(out)
    reasons = {(s["id"], s["reason"]) for s in report["skipped"]}
    assert reasons == ({(v, "unreadable") for v in CORRUPT} | {(v, "no_audio") for v in NO_AUDIO}
                       | {(v, "duplicate") for v in DUPLICATE})
    assert [n["id"] for n in report["notes"]] == sorted(SHORT_EVENT)
    for split in ("train", "val", "test"):
        c = report["counts"][split]
        assert c["listed"] == len(EVENTS[split]) and c["kept"] == len(kept(split))
        assert c["listed"] - c["kept"] == sum(c["skipped"].values())
    assert report["shapes"] == {"audio": [1, 257, 1004], "visual": [4, 3, 224, 224]}
    assert report["n_classes"] == 28 and report["in_several_splits"] == []
    # the settings it was prepared with; the raw root apart (where the data were, not what)
    assert report["root"] == str(root) and report["settings"]["num_frames"] == 4
    assert set(report["settings"]) == set(PrepareConfig.__dataclass_fields__) - {"root"}


def test_missing_root_and_missing_files_are_clear_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("MCR_AVE_ROOT", raising=False)
    with pytest.raises(DataError, match="data.ave.root or the environment variable MCR_AVE_ROOT"):
        prepare(PrepareConfig(), tmp_path / "c")
    with pytest.raises(DataError, match="is not a folder"):
        prepare(PrepareConfig(root=str(tmp_path / "nowhere")), tmp_path / "c")
    root = tmp_path / "AVE_Dataset"
    (root / "AVE").mkdir(parents=True)
    (root / "trainSet.txt").write_text("Bark&abc&good&0&3\n")
    with pytest.raises(DataError) as err:
        prepare(PrepareConfig(root=str(root)), tmp_path / "c")
    assert "valSet.txt" in str(err.value) and "testSet.txt" in str(err.value)
    assert "Category&VideoID" in str(err.value) and "AVE-ECCV18" in str(err.value)
    videos = [f"vid{i:08d}xx" for i in range(7)]
    for name in LISTS.values():
        (root / name).write_text("".join(f"Bark&{v}&good&0&3\n" for v in videos))
    monkeypatch.setenv("MCR_AVE_ROOT", str(tmp_path))        # the parent of AVE_Dataset works too
    with pytest.raises(DataError) as err:
        prepare(PrepareConfig(), tmp_path / "c")
    message = str(err.value)
    assert "7 expected file(s) missing" in message and "AVE/vid00000000xx.mp4" in message
    assert "and 2 more" in message
    assert not (tmp_path / "c").exists()


def test_allow_missing_skips_and_reports(dataset, tmp_path):
    root, _ = dataset
    copy = tmp_path / "AVE_Dataset"
    (copy / "AVE").mkdir(parents=True)
    picked = {split: kept(split)[:1] for split in ("train", "val", "test")}
    for split, events in picked.items():
        (copy / LISTS[split]).write_text("".join("&".join(map(str, e)) + "\n" for e in events))
        for e in events:
            shutil.copy(root / "AVE" / f"{e[1]}.mp4", copy / "AVE")
    gone = picked["val"][0][1]
    (copy / "AVE" / f"{gone}.mp4").unlink()
    (copy / LISTS["val"]).write_text("".join("&".join(map(str, e)) + "\n" for e in kept("val")[:1] + picked["train"]))
    with pytest.raises(DataError, match=gone):
        prepare(PrepareConfig(root=str(copy)), tmp_path / "c")
    out = prepare(PrepareConfig(root=str(copy), allow_missing=True, frame_size=16), tmp_path / "c", progress=False)
    assert {"id": gone, "split": "val", "reason": "missing",
            "detail": f"AVE/{gone}.mp4 is absent"} in report_of(out)["skipped"]
    assert media.load_ids(out, "ave") == {"train": [picked["train"][0][1]], "val": [picked["train"][0][1]],
                                     "test": [picked["test"][0][1]]}
    assert report_of(out)["in_several_splits"] == [picked["train"][0][1]]


def test_list_parsing_and_unknown_category(tmp_path):
    path = tmp_path / "list.txt"
    path.write_text("Category&VideoID&Quality&StartTime&EndTime\r\nBark&-x_Y&good&1&7\r\n\r\n")
    assert read_list(path) == [{"id": "-x_Y", "category": "Bark", "quality": "good", "start": 1, "end": 7}]
    path.write_text("Barking&abc&good&1&7\n")
    with pytest.raises(DataError, match="unknown category 'Barking'"):
        read_list(path)
    path.write_text("Bark&abc&good&1\n")
    with pytest.raises(DataError, match="list.txt:1"):
        read_list(path)


def test_config_validation():
    assert PrepareConfig().nperseg == 512 and PrepareConfig().noverlap == 353 and PrepareConfig().sample_rate == 16000
    with pytest.raises(ConfigError, match="data.ave.noverlap"):
        PrepareConfig(noverlap=512)
    with pytest.raises(ConfigError, match="data.ave.num_frames"):
        from_dict(PrepareConfig, {"num_frames": 0}, "data.ave")
    with pytest.raises(ConfigError, match="unknown key 'data.ave.fold'"):
        from_dict(PrepareConfig, {"fold": 1}, "data.ave")
    # a run names only the prepared folder: no root, no preprocessing settings
    assert dataset_params("ave", {}) == LoadConfig(prepared="data/processed/ave")
    for key in ("root", "num_frames", "processed"):
        with pytest.raises(ConfigError, match=f"unknown key 'data.params.{key}'"):
            dataset_params("ave", {key: 1})


def test_load_needs_the_complete_folder_prepare_wrote(dataset, tmp_path):
    _, out = dataset
    with pytest.raises(DataError, match="python -m mcrlib.data.prepare ave"):
        load_dataset("ave", {"prepared": str(tmp_path / "nowhere")})
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    report = report_of(copy)
    (copy / "report.json").write_text(json.dumps({**report, "dataset": "ucf51"}))
    with pytest.raises(DataError, match="changed after prepare: report.json"):
        load_dataset("ave", {"prepared": str(copy)})
    with pytest.raises(DataError, match="prepared data of 'ucf51', not 'ave'"):   # load alone checks it too
        load(LoadConfig(prepared=str(copy)))
    (copy / "report.json").unlink()
    with pytest.raises(DataError, match="report.json is missing.*python -m mcrlib.data.prepare ave"):
        load(LoadConfig(prepared=str(copy)))
    (copy / "report.json").write_text(json.dumps(report))
    (copy / "test.pt").unlink()
    with pytest.raises(DataError, match="lack test.pt.*python -m mcrlib.data.prepare ave"):
        load(LoadConfig(prepared=str(copy)))
    with pytest.raises(DataError, match="missing: test.pt"):
        load_dataset("ave", {"prepared": str(copy)})


def test_a_relative_prepared_folder_is_read_from_the_working_directory(dataset, tmp_path, monkeypatch):
    _, out = dataset
    moved = tmp_path / "elsewhere" / "ave"
    shutil.copytree(out, moved)
    monkeypatch.chdir(out.parent)
    data = load_dataset("ave", {"prepared": "ave"})
    assert data.splits["val"]["label"].tolist() == [CLASSES.index(e[0]) for e in kept("val")]
    assert SPEC.prepared_folder(dataset_params("ave", {"prepared": "ave"})) == Path("ave")
    # where the folder is does not enter the run's data identity; its content does
    assert data_identity("ave", {"prepared": "ave"}) == data_identity("ave", {"prepared": str(moved)})


def test_spectrogram_matches_scipy_psd():
    from scipy import signal
    wave = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, 160000).astype(np.float32))
    ours = media.log_psd(wave, 16000, 512, 353)
    _, _, ref = signal.spectrogram(wave.numpy(), 16000, window=("tukey", 0.25), nperseg=512,
                                   noverlap=353, detrend="constant", scaling="density", mode="psd")
    assert ours.shape == (257, 1004)
    assert torch.allclose(ours, torch.from_numpy(np.log(ref + 1e-7)).float(), atol=1e-5)
