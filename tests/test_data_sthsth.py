"""Something-Something V2 (RGB + flow): the real prepare -> fingerprint -> load_dataset on a fixture
written in the multimodal-distillation layout (tests/fixtures/sthsth.py)."""
import dataclasses
import json
import shutil

import h5py
import numpy as np
import pytest
import torch

from mcrlib.config import ConfigError, from_dict
from mcrlib.data import fingerprint
from mcrlib.data import prepare as stage
from mcrlib.data.registry import DATASETS, load_dataset
from mcrlib.data.sthsth import (ROOT_ENV, SPEC, LoadConfig, PrepareConfig, load, prepare,
                                sample_indices, split_ids)
from mcrlib.errors import DataError
from tests.fixtures.sthsth import write_sthsth

SIZE = 16
RELEASE = {"selection": "official_val"}   # the release's splits: val = test = official validation


def _prepare(cfg, out):
    """The `prepare@sthsth` stage's function (the spec's prepare, canonical torch files, the
    fingerprint) with `cfg`'s settings."""
    stage.prepare("sthsth", dataclasses.asdict(cfg), out)
    return out


@pytest.fixture(scope="module")
def sth(tmp_path_factory):
    base = tmp_path_factory.mktemp("sthsth")
    info = write_sthsth(base / "Sth-Sth")
    cfg = PrepareConfig(root=str(info["root"]), image_size=SIZE)
    out = _prepare(cfg, base / "prepared")
    report = json.loads((out / "report.json").read_text())
    return info, cfg, out, report


def _ids(out, **params):
    return split_ids(LoadConfig(prepared=str(out), **params))


def _rows(out, **params):
    """split -> {video id: {"rgb", "flow", "label"}}."""
    data, ids = load_dataset("sthsth", {"prepared": str(out), **params}), _ids(out, **params)
    return {s: {v: {k: t[r] for k, t in data.splits[s].items()} for r, v in enumerate(ids[s])}
            for s in ids}


def _release_seq_frames(length, num_frames):
    """GeneralSampler.get_seq_frames of the distillation repository, evaluation branch."""
    seg = float(length - 1) / num_frames
    seq = []
    for i in range(num_frames):
        start, end = int(np.round(seg * i)), int(np.round(seg * (i + 1)))
        seq.append((start + end) // 2)
    return seq


def test_sampler_is_the_release_evaluation_sampler():
    for length in range(1, 80):
        assert sample_indices(length, 16) == _release_seq_frames(length, 16), length
    assert sample_indices(9, 16) == [0, 0, 1, 2, 2, 2, 3, 4, 4, 4, 5, 6, 6, 6, 7, 8]


def test_spec_and_defaults():
    assert DATASETS["sthsth"] is SPEC and SPEC.name == "sthsth" and ROOT_ENV == "MCR_STHSTH_ROOT"
    assert SPEC.encoders == {"rgb": "frames", "flow": "frames"}
    default = LoadConfig()
    assert default.prepared == "data/processed/sthsth"
    assert (default.selection, default.val_from_train, default.split_seed) == ("train_share", 0.1, 0)
    assert PrepareConfig().root == ""


def test_shapes_dtypes_labels_and_encoders(sth):
    info, _, out, _ = sth
    data = load_dataset("sthsth", {"prepared": str(out)})
    assert data.modalities == ("rgb", "flow") and data.n_classes == 174
    assert data.task == "classification" and data.encoders == {"rgb": "frames", "flow": "frames"}
    ids = _ids(out)
    for split in ("train", "val", "test"):
        t, n = data.splits[split], len(ids[split])
        assert set(t) == {"rgb", "flow", "label"}
        for m in ("rgb", "flow"):
            assert t[m].shape == (n, 16, 3, SIZE, SIZE) and t[m].dtype == torch.uint8
        assert t["label"].dtype == torch.long
    rows = _rows(out)
    labels = {**info["train"], **info["official_val"]}
    for split in rows:
        assert {v: int(r["label"]) for v, r in rows[split].items()} == {v: labels[v] for v in rows[split]}


def test_default_selects_on_a_stratified_share_of_train_never_on_test(sth):
    """The honest default: val is drawn from train, class by class; the official validation list
    is only the test set."""
    info, _, out, _ = sth
    ids = _ids(out)
    assert not set(ids["val"]) & set(ids["test"])
    assert not set(ids["train"]) & set(ids["val"])
    assert sorted(ids["train"] + ids["val"]) == sorted(info["train"])
    assert sorted(ids["test"]) == sorted(info["official_val"])
    # Stratified: classes of 3, 2 and 2 videos each give one to val and keep the rest in train.
    assert sorted(info["train"][v] for v in ids["val"]) == [0, 1, 2]
    assert sorted(set(info["train"][v] for v in ids["train"])) == [0, 1, 2]
    data = load_dataset("sthsth", {"prepared": str(out)})
    assert data.splits["val"]["label"].tolist() == [info["train"][v] for v in ids["val"]]
    assert len(data.splits["val"]["rgb"]) == 3 and len(data.splits["train"]["rgb"]) == 4


def test_official_val_option_reproduces_the_release_val_equals_test(sth):
    info, _, out, _ = sth
    ids = _ids(out, **RELEASE)
    assert ids["val"] == ids["test"] and sorted(ids["test"]) == sorted(info["official_val"])
    assert sorted(ids["train"]) == sorted(info["train"])
    data = load_dataset("sthsth", {"prepared": str(out), **RELEASE})
    for key in ("rgb", "flow", "label"):
        assert torch.equal(data.splits["val"][key], data.splits["test"][key])


def test_frames_are_the_uniformly_sampled_ones_centre_cropped(sth):
    info, _, out, _ = sth
    for split, rows in _rows(out, **RELEASE).items():
        for vid, r in rows.items():
            idx = torch.tensor(sample_indices(info["frames"][vid] - 1, 16))   # flow length
            rgb, flow = r["rgb"].float(), r["flow"].float()
            # R channel encodes the frame index, identically in both modalities.
            for x in (rgb, flow):
                assert (x[:, 0].mean((1, 2)) - (8 * idx + 8)).abs().max() < 6, vid
            # Modalities are not swapped: B is 30 in RGB, 220 in flow; G carries the class.
            assert (rgb[:, 2].mean() - 30).abs() < 6 and (flow[:, 2].mean() - 220).abs() < 6
            assert (rgb[:, 1].mean() - (40 * int(r["label"]) + 40)).abs() < 6
            # Resize of the short side + centre crop removes the white edge stripes.
            spread = rgb.amax((2, 3)) - rgb.amin((2, 3))
            assert spread.max() < 12, vid


def test_short_video_is_sampled_with_repetition_and_reported(sth):
    _, _, out, report = sth
    r = _rows(out, **RELEASE)["train"]["1007"]
    red = ((r["rgb"][:, 0].float().mean((1, 2)) - 8) / 8).round().long()
    assert red.tolist() == [0, 0, 1, 2, 2, 2, 3, 4, 4, 4, 5, 6, 6, 6, 7, 8]
    assert [(s["split"], s["id"], s["rgb_frames"], s["flow_frames"])
            for s in report["short_videos"]] == [("train", "1007", 10, 9)]


def test_corrupt_missing_and_unknown_videos_are_reported_and_skipped(sth):
    _, _, out, report = sth
    ids = _ids(out)
    every = set(ids["train"]) | set(ids["val"]) | set(ids["test"])
    reasons = {s["id"]: (s["split"], s["reason"]) for s in report["skipped"]}
    assert set(reasons) == {"1008", "2004", "1009", "1010"}
    assert not every & set(reasons)
    assert reasons["1008"][0] == "train" and reasons["1008"][1].startswith("rgb: corrupt JPEG at frame 9")
    assert reasons["2004"][0] == "official_val"
    assert reasons["2004"][1].startswith("flow: corrupt JPEG at frame 0")
    assert " at 0x" not in reasons["2004"][1]
    assert "missing from flow_dataset.hdf5" in reasons["1009"][1]
    assert "'Juggling something' not in something-something-v2-labels.json" in reasons["1010"][1]
    assert report["counts"] == {
        "train": {"listed": 10, "selected": 9, "kept": 7, "skipped": 3},
        "official_val": {"listed": 4, "selected": 4, "kept": 3, "skipped": 1}}
    assert report["n_classes"] == 174 and report["settings"]["image_size"] == SIZE
    assert "root" not in report["settings"]          # the same data anywhere: the same folder
    assert report["length_mismatch"] == []


@pytest.mark.parametrize("hdf5_layout", ["vlen", "group"])
def test_other_hdf5_layouts_give_identical_tensors(sth, tmp_path, hdf5_layout):
    """Variable-length uint8 rows, and the STLT group-per-video layout whose frame datasets
    are named "1".."N" (written in shuffled order): frame order comes from natural sort."""
    _, cfg, out, _ = sth
    other = dataclasses.replace(cfg, root=str(write_sthsth(tmp_path / "raw", hdf5_layout)["root"]))
    _prepare(other, tmp_path / "prepared")
    ref = load_dataset("sthsth", {"prepared": str(out)})
    got = load_dataset("sthsth", {"prepared": str(tmp_path / "prepared")})
    for split in ("train", "val", "test"):
        for key in ("rgb", "flow", "label"):
            assert torch.equal(ref.splits[split][key], got.splits[split][key]), (split, key)


def test_held_out_share_follows_the_seed_and_the_share(sth):
    info, _, out, _ = sth
    seen = set()
    for seed in range(8):
        ids = _ids(out, val_from_train=0.34, split_seed=seed)
        assert not set(ids["train"]) & set(ids["val"])
        assert sorted(ids["train"] + ids["val"]) == sorted(info["train"])
        assert ids["test"] == sorted(info["official_val"])
        # round(0.34 * n) per class, at least one left in train: classes of 3, 2, 2 videos.
        assert sorted(info["train"][v] for v in ids["val"]) == [0, 1, 2]
        assert _ids(out, val_from_train=0.34, split_seed=seed) == ids     # fixed by the seed
        data = load(LoadConfig(prepared=str(out), val_from_train=0.34, split_seed=seed))
        assert data.splits["val"]["label"].tolist() == [info["train"][v] for v in ids["val"]]
        assert len(data.splits["train"]["rgb"]) == len(ids["train"])
        seen.add(tuple(ids["val"]))
    assert len(seen) > 1
    # A large share still leaves every class in train.
    ids = _ids(out, val_from_train=0.9)
    assert sorted(info["train"][v] for v in ids["train"]) == [0, 1, 2]
    assert len(ids["val"]) == 4


def test_max_per_class_keeps_the_first_listed(sth, tmp_path):
    _, cfg, _, _ = sth
    out = _prepare(dataclasses.replace(cfg, max_per_class=1), tmp_path / "prepared")
    ids = _ids(out, **RELEASE)
    assert ids["train"] == ["1001", "1003", "1005"] and ids["val"] == ["2001", "2002", "2003"]
    # One video per class: nothing can be held out without emptying a class of train.
    with pytest.raises(DataError, match="no class of the prepared train list has two videos"):
        load_dataset("sthsth", {"prepared": str(out)})


def test_workers_give_identical_tensors(sth, tmp_path):
    _, cfg, out, _ = sth
    _prepare(dataclasses.replace(cfg, num_workers=2), tmp_path / "prepared")
    ref = load_dataset("sthsth", {"prepared": str(out)})
    got = load_dataset("sthsth", {"prepared": str(tmp_path / "prepared")})
    assert torch.equal(ref.splits["train"]["rgb"], got.splits["train"]["rgb"])
    assert torch.equal(ref.splits["test"]["flow"], got.splits["test"]["flow"])
    assert fingerprint.verify(out) == fingerprint.verify(tmp_path / "prepared")


def test_missing_root_and_missing_files_name_the_layout(sth, tmp_path, monkeypatch):
    info, cfg, _, _ = sth
    monkeypatch.delenv(ROOT_ENV, raising=False)
    with pytest.raises(DataError) as err:
        prepare(PrepareConfig(), tmp_path / "c")
    text = str(err.value)
    assert ROOT_ENV in text and "data.sthsth.root" in text
    for rel in ("dataset.hdf5", "flow_dataset.hdf5", "train_dataset_flow_aligned.json",
                "val_dataset_flow_aligned.json", "something-something-v2-labels.json"):
        assert rel in text
    assert "multimodal-distillation" in text and "Qualcomm" in text

    monkeypatch.setenv(ROOT_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="nowhere .*is not a folder"):
        prepare(PrepareConfig(), tmp_path / "c")
    monkeypatch.setenv(ROOT_ENV, str(info["root"]))      # the variable is read when `root` is ""
    from_env = _prepare(PrepareConfig(image_size=8), tmp_path / "from_env")
    assert sorted(_ids(from_env, **RELEASE)["train"]) == sorted(info["train"])

    partial = tmp_path / "partial"
    shutil.copytree(info["root"], partial)
    (partial / "flow_dataset.hdf5").unlink()
    with pytest.raises(DataError) as err:
        prepare(dataclasses.replace(cfg, root=str(partial)), tmp_path / "c")
    head = str(err.value).split("\n")[0]
    assert "is incomplete: 1 of 5 files missing" in head
    assert str(partial / "flow_dataset.hdf5") in head and str(partial / "dataset.hdf5,") not in head
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("key, value", [("num_frames", 0), ("image_size", 4), ("max_per_class", -1),
                                        ("num_workers", -2)])
def test_invalid_prepare_settings_are_refused(key, value):
    with pytest.raises(ConfigError, match=f"data.sthsth.{key}"):
        from_dict(PrepareConfig, {"root": "x", key: value}, "data.sthsth")


@pytest.mark.parametrize("key, value", [("val_from_train", 0.0), ("val_from_train", 1.0),
                                        ("selection", "test"), ("num_frames", 8), ("root", "x")])
def test_invalid_load_params_are_refused(key, value):
    with pytest.raises(ConfigError, match=f"data.params.{key}"):
        from_dict(LoadConfig, {key: value}, "data.params")


def test_load_needs_a_complete_prepared_folder(sth, tmp_path):
    _, _, out, _ = sth
    with pytest.raises(DataError, match=r"train.pt is missing.*python -m mcrlib.data.prepare sthsth"):
        load(LoadConfig(prepared=str(tmp_path)))
    with pytest.raises(DataError, match="mcrlib.data.prepare sthsth"):
        load_dataset("sthsth", {"prepared": str(tmp_path / "nowhere")})
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    with open(copy / "train.rgb.u8", "r+b") as f:      # a half-written frame file
        f.truncate(1000)
    with pytest.raises(DataError, match=r"train.rgb.u8 is missing or not \(7, 16, 3, 16, 16\) uint8"):
        load(LoadConfig(prepared=str(copy)))
    with pytest.raises(DataError, match="changed after prepare: train.rgb.u8"):
        load_dataset("sthsth", {"prepared": str(copy)})


def test_unreadable_list_fails_and_leaves_no_partial_folder(sth, tmp_path):
    info, cfg, _, _ = sth
    root = tmp_path / "raw"
    shutil.copytree(info["root"], root)
    h5py.File(root / "flow_dataset.hdf5", "w").close()    # no flow for any video
    out = tmp_path / "prepared"
    with pytest.raises(DataError, match="none of 9 listed videos could be read"):
        prepare(dataclasses.replace(cfg, root=str(root)), out, progress=False)
    assert not out.exists() or list(out.iterdir()) == []


def test_malformed_lists_and_labels_are_clear_errors(sth, tmp_path):
    info, cfg, _, _ = sth
    root = tmp_path / "raw"
    shutil.copytree(info["root"], root)
    bad = dataclasses.replace(cfg, root=str(root))
    lists = root / "something_something_detections"
    (lists / "val_dataset_flow_aligned.json").write_text('{"id": "2001"}')
    with pytest.raises(DataError, match="val_dataset_flow_aligned.json: expected a JSON list of videos"):
        prepare(bad, tmp_path / "out", progress=False)
    (lists / "train_dataset_flow_aligned.json").write_text('[{"id": "1001", "templ')   # truncated
    with pytest.raises(DataError, match="train_dataset_flow_aligned.json is not valid JSON"):
        prepare(bad, tmp_path / "out", progress=False)
    (root / "something-something-v2-labels.json").write_text('{"a": "0", "b": "2"}')
    with pytest.raises(DataError, match="distinct class index 0..K-1"):
        prepare(bad, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_default_settings_and_fewer_frames(sth, tmp_path):
    """Default settings (16 frames, 224 x 224); with 8 frames neither corrupt frame (RGB 9 of
    1008, flow 0 of 2004) is sampled, so both videos are kept: only sampled frames are decoded,
    as in the release."""
    info, _, _, _ = sth
    out = _prepare(PrepareConfig(root=str(info["root"]), max_per_class=1), tmp_path / "a")
    data = load_dataset("sthsth", {"prepared": str(out), **RELEASE})
    assert data.splits["train"]["rgb"].shape == (3, 16, 3, 224, 224)
    out = _prepare(PrepareConfig(root=str(info["root"]), num_frames=8, image_size=32), tmp_path / "b")
    data = load_dataset("sthsth", {"prepared": str(out), **RELEASE})
    assert data.splits["train"]["rgb"].shape == (8, 8, 3, 32, 32)
    assert data.splits["test"]["flow"].shape == (4, 8, 3, 32, 32)
    ids = _ids(out, **RELEASE)
    assert "1008" in ids["train"] and "2004" in ids["test"]
