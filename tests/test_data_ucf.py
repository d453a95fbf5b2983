"""UCF-51: real prepare -> fingerprint -> load_dataset on a tiny UCF101 in the real format
(tests/fixtures/ucf.py)."""
import json
import shutil
import warnings

import numpy as np
import pytest
import torch

from mcrlib.config import ConfigError, from_dict
from mcrlib.data import media
from mcrlib.data.prepare import prepare as prepare_dataset
from mcrlib.data.registry import dataset_params, load_dataset
from mcrlib.data.ucf import LoadConfig, PrepareConfig, group_of, load, prepare, read_list, validation_groups
from mcrlib.errors import DataError
from tests.fixtures.media_files import red_of_second, tone_of_second
from tests.fixtures.ucf import (ALL, CLASS_INDEX, CORRUPT, NO_AUDIO, OTHER_CHANNEL_HZ, SHORT, SHORT_AUDIO,
                                SILENT_CLASS, SOUNDING, in_test, write_ucf)

DROPPED = {NO_AUDIO: "no_audio", CORRUPT: "unreadable", SHORT: "too_few_frames",
           **{c: "no_audio" for c in SILENT_CLASS}}


def settings(root, **kw):
    return {"root": str(root), "val_fraction": 0.25, **kw}


def expected(split: int, part: str) -> list[str]:
    """Kept clips of the official train or test list, in list order."""
    return [c for c in ALL if in_test(c, split) == (part == "test") and c not in DROPPED]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """The raw root and the prepared folder of split 1 (prepare, canonical torch files, fingerprint)."""
    root = write_ucf(tmp_path_factory.mktemp("ucf"))
    out = tmp_path_factory.mktemp("prepared") / "ucf51"
    with pytest.warns(UserWarning, match="3 classes have audio, not the paper's 51"):
        prepare_dataset("ucf51", settings(root), out)
    return root, out


def loaded(out):
    return load_dataset("ucf51", {"prepared": str(out)})


def report_of(out):
    return json.loads((out / "report.json").read_text())


def test_shapes_dtypes_and_labels_over_the_classes_with_audio(dataset):
    _, out = dataset
    data = loaded(out)
    ids = media.load_ids(out, "ucf51")
    assert data.modalities == ("audio", "visual") and data.n_classes == 3
    assert data.encoders == {"audio": "resnet2d", "visual": "frames"}
    for split, t in data.splits.items():
        n = len(ids[split])
        assert n > 0
        assert t["audio"].shape == (n, 1, 257, 136) and t["audio"].dtype == torch.float32
        assert t["visual"].shape == (n, 4, 3, 224, 224) and t["visual"].dtype == torch.uint8
        assert t["label"].dtype == torch.long
        assert t["label"].tolist() == [SOUNDING.index(c.split("/")[0]) for c in ids[split]]
    report = report_of(out)
    assert report["classes"] == list(SOUNDING) and report["classes_without_audio"] == ["ApplyEyeMakeup"]
    assert report["n_classes"] == 3 and report["class_count_matches_paper"] is False


def test_official_split_membership_and_group_disjoint_validation(dataset):
    _, out = dataset
    ids = media.load_ids(out, "ucf51")
    assert ids["test"] == expected(1, "test")
    train_list = expected(1, "train")
    assert sorted(ids["train"] + ids["val"]) == sorted(train_list)
    assert [c for c in train_list if c in ids["train"]] == ids["train"]      # list order kept
    train_groups, val_groups = {group_of(c) for c in ids["train"]}, {group_of(c) for c in ids["val"]}
    assert not train_groups & val_groups and val_groups == set(report_of(out)["validation_groups"])
    # 12 training groups, 25 % -> 3 validation groups, one per class (stratified)
    assert sorted(g.split("_")[0] for g in val_groups) == ["Archery", "BabyCrawling", "HandStandPushups"]
    assert all(len([c for c in ids["val"] if group_of(c) == g]) == 2 for g in val_groups)  # whole groups


def test_frames_are_the_first_four_seconds_in_rgb(dataset):
    visual = loaded(dataset[1]).splits["test"]["visual"]
    colour = visual.float().mean(dim=(3, 4))                       # (N, 4 frames, RGB)
    want = torch.tensor([[red_of_second(s), 60, 200] for s in range(4)], dtype=torch.float32)
    assert (colour - want).abs().max() < 10


def test_audio_is_the_first_three_seconds_of_the_first_channel(dataset):
    _, out = dataset
    data = loaded(out)
    ids = media.load_ids(out, "ucf51")["test"]
    bin_of = lambda hz: round(hz / 16000 * 512)
    for row, clip in enumerate(ids):
        spec = data.splits["test"]["audio"][row, 0]
        peak = spec.max(dim=1).values
        seconds = range(1) if clip == SHORT_AUDIO else range(3)
        for s in seconds:   # second s of audio sits in columns s * 16000 / 353 ..
            cols = slice(int(s * 16000 / 353) + 4, int((s + 1) * 16000 / 353) - 4 if s < 2 else None)
            assert spec[:, cols].argmax(dim=0).sub(bin_of(tone_of_second(s))).abs().max() <= 1, (clip, s)
        # channel 2's constant 3 kHz sine (log-magnitude ~4 where present) is absent
        assert spec[bin_of(OTHER_CHANNEL_HZ)].median() < -5 and peak[bin_of(tone_of_second(0))] > 3
    padded = data.splits["test"]["audio"][ids.index(SHORT_AUDIO), 0]
    assert padded[:, -20:].max() < -15          # zero padding after 1.5 s: log(0 + 1e-7)


def test_data_report_lists_dropped_clips(dataset):
    root, out = dataset
    report = report_of(out)
    assert {s["id"]: s["reason"] for s in report["skipped"]} == DROPPED
    assert [n["id"] for n in report["notes"]] == [SHORT_AUDIO]
    for part in ("train", "test"):
        c = report["counts"][part]
        assert c["listed"] == len([n for n in ALL if in_test(n, 1) == (part == "test")])
        assert c["kept"] == len(expected(1, part))
        assert c["listed"] - c["kept"] == sum(c["skipped"].values())
    assert report["shapes"] == {"audio": [1, 257, 136], "visual": [4, 3, 224, 224]}
    assert report["lists"]["train"] == "ucfTrainTestlist/trainlist01.txt"
    # the settings it was prepared with (the split and the validation draw among them); the root apart
    assert report["root"] == str(root)
    assert {k: report["settings"][k] for k in ("split", "val_fraction", "split_seed")} == \
        {"split": 1, "val_fraction": 0.25, "split_seed": 109}
    assert set(report["settings"]) == set(PrepareConfig.__dataclass_fields__) - {"root"}


def test_split_two_is_another_prepared_folder(dataset, tmp_path):
    root, _ = dataset
    out = tmp_path / "ucf51-split2"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepare_dataset("ucf51", settings(root, split=2, frame_size=16), out)
    ids = media.load_ids(out, "ucf51")
    assert ids["test"] == expected(2, "test")
    assert sorted(ids["train"] + ids["val"]) == sorted(expected(2, "train"))
    assert loaded(out).splits["train"]["visual"].shape[-2:] == (16, 16)


def test_validation_draw_is_the_releases_and_depends_on_the_seed():
    clips = [f"C{c}/v_C{c}_g{g:02d}_c{i:02d}.avi" for c in range(4) for g in range(8, 26) for i in (1, 2, 3)]
    labels = [int(c.split("/")[0][1:]) for c in clips]
    val = validation_groups(clips, labels, 0.1, 109)
    assert val == validation_groups(clips, labels, 0.1, 109) != validation_groups(clips, labels, 0.1, 110)
    assert len(val) == 8 and sorted(g.split("_")[0] for g in val) == ["C0", "C0", "C1", "C1", "C2", "C2", "C3", "C3"]
    from sklearn.model_selection import train_test_split   # the paper's call, on group ids in list order
    groups = list(dict.fromkeys(group_of(c) for c in clips))
    assert val == set(train_test_split(groups, test_size=0.1, random_state=109,
                                       stratify=[int(g[1]) for g in groups])[1])
    with pytest.raises(DataError, match="data.ucf51.val_fraction"):
        validation_groups(["C0/v_C0_g08_c01.avi", "C1/v_C1_g08_c01.avi"], [0, 1], 0.1, 0)


def test_missing_root_lists_and_clips_are_clear_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("MCR_UCF_ROOT", raising=False)
    with pytest.raises(DataError, match="data.ucf51.root or the environment variable MCR_UCF_ROOT"):
        prepare(PrepareConfig(), tmp_path / "c")
    (tmp_path / "UCF-101").mkdir()
    (tmp_path / "ucfTrainTestlist").mkdir()
    with pytest.raises(DataError) as err:
        prepare(PrepareConfig(root=str(tmp_path), split=3), tmp_path / "c")
    message = str(err.value)
    assert "ucfTrainTestlist/trainlist03.txt" in message and "ucfTrainTestlist/classInd.txt" in message
    assert "crcv.ucf.edu" in message and "v_<ClassName>_gXX_cYY.avi" in message
    lists = tmp_path / "ucfTrainTestlist"
    (lists / "classInd.txt").write_text("3 Archery\n")
    (lists / "trainlist03.txt").write_text("".join(f"Archery/v_Archery_g{g:02d}_c01.avi 3\n" for g in range(8, 16)))
    (lists / "testlist03.txt").write_text("Archery/v_Archery_g01_c01.avi\n")
    monkeypatch.setenv("MCR_UCF_ROOT", str(tmp_path))
    with pytest.raises(DataError) as err:
        prepare(PrepareConfig(split=3), tmp_path / "c")
    assert "9 expected file(s) missing" in str(err.value) and "UCF-101/Archery/v_Archery_g01_c01.avi" in str(err.value)
    (lists / "testlist03.txt").write_text("Archer/v_Archer_g01_c01.avi\n")
    with pytest.raises(DataError, match="testlist03.txt:1"):
        prepare(PrepareConfig(split=3), tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_list_parsing_with_crlf(tmp_path):
    path = tmp_path / "trainlist01.txt"
    path.write_bytes(b"Archery/v_Archery_g08_c01.avi 3\r\n\r\nHandstandPushups/v_HandStandPushups_g08_c01.avi 37\r\n")
    assert read_list(path, list(CLASS_INDEX)) == ["Archery/v_Archery_g08_c01.avi",
                                                  "HandstandPushups/v_HandStandPushups_g08_c01.avi"]
    assert group_of("HandstandPushups/v_HandStandPushups_g08_c01.avi") == "HandStandPushups_g08"


def test_config_validation():
    defaults = PrepareConfig()
    assert (defaults.split, defaults.val_fraction, defaults.n_fft, defaults.hop_length,
            defaults.audio_seconds, defaults.num_frames) == (1, 0.1, 512, 353, 3.0, 4)
    with pytest.raises(ConfigError, match="data.ucf51.split"):
        PrepareConfig(split=4)
    with pytest.raises(ConfigError, match="data.ucf51.val_fraction"):
        from_dict(PrepareConfig, {"val_fraction": 1.0}, "data.ucf51")
    # a run names only the prepared folder: the split and its validation draw are prepare's
    assert dataset_params("ucf51", {}) == LoadConfig(prepared="data/processed/ucf51")
    for key in ("root", "split", "split_seed", "processed"):
        with pytest.raises(ConfigError, match=f"unknown key 'data.params.{key}'"):
            dataset_params("ucf51", {key: 1})


def test_load_needs_the_complete_folder_prepare_wrote(dataset, tmp_path):
    _, out = dataset
    with pytest.raises(DataError, match="python -m mcrlib.data.prepare ucf51"):
        load_dataset("ucf51", {"prepared": str(tmp_path / "nowhere")})
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    assert loaded(copy).splits["val"]["label"].tolist() == loaded(out).splits["val"]["label"].tolist()
    val = torch.load(copy / "val.pt")
    val["label"][0] = (val["label"][0] + 1) % 3                 # a label edited after prepare
    torch.save(val, copy / "val.pt")
    with pytest.raises(DataError, match="changed after prepare: val.pt"):
        loaded(copy)
    report = report_of(copy)
    (copy / "report.json").write_text(json.dumps({**report, "dataset": "ave"}))
    with pytest.raises(DataError, match="prepared data of 'ave', not 'ucf51'"):
        load(LoadConfig(prepared=str(copy)))
    (copy / "report.json").unlink()
    with pytest.raises(DataError, match="report.json is missing.*python -m mcrlib.data.prepare ucf51"):
        load(LoadConfig(prepared=str(copy)))


def test_log_stft_matches_the_librosa_definition():
    wave = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, 48000).astype(np.float32))
    spec = media.log_stft(wave, 512, 353)
    assert spec.shape == (257, 136)
    # librosa.stft: periodic Hann window, frames centred with zero padding of n_fft // 2
    padded = np.pad(wave.numpy(), 256)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(512) / 512)
    for col in (0, 70, 135):
        ref = np.log(np.abs(np.fft.rfft(padded[col * 353: col * 353 + 512] * window)) + 1e-7)
        assert np.allclose(spec[:, col].numpy(), ref, atol=1e-3)
