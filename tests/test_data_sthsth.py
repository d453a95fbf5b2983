"""Something-Something V2 (RGB + flow): the real preprocess + load on a fixture written in the
multimodal-distillation layout (tests/fixtures/sthsth.py)."""
import dataclasses
import json
import shutil

import h5py
import numpy as np
import pytest
import torch

from mcrlib.config import ConfigError, from_dict
from mcrlib.data.sthsth import (
    ENV_ROOT,
    SthSthConfig,
    load,
    make_sthsth,
    preprocess,
    sample_indices,
    split_ids,
)
from tests.fixtures.sthsth import write_sthsth

SIZE = 16


@pytest.fixture(scope="module")
def sth(tmp_path_factory):
    base = tmp_path_factory.mktemp("sthsth")
    info = write_sthsth(base / "Sth-Sth")
    cfg = SthSthConfig(root=str(info["root"]), image_size=SIZE)
    cache = preprocess(cfg, base / "cache", progress=False)
    report = json.loads((cache / "report.json").read_text())
    return info, cfg, cache, report


def _rows(cfg, cache):
    """split -> {video id: {"rgb", "flow", "label"}}."""
    data, ids = load(cfg, cache), split_ids(cfg, cache)
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


def test_shapes_dtypes_and_labels_from_templates(sth):
    info, cfg, cache, _ = sth
    data = load(cfg, cache)
    assert data.modalities == ("rgb", "flow") and data.n_classes == 174
    assert data.task == "classification"
    sizes = {"train": len(info["train"]), "val": len(info["official_val"]),
             "test": len(info["official_val"])}
    for split, n in sizes.items():
        t = data.splits[split]
        assert set(t) == {"rgb", "flow", "label"}
        for m in ("rgb", "flow"):
            assert t[m].shape == (n, 16, 3, SIZE, SIZE) and t[m].dtype == torch.uint8
        assert t["label"].dtype == torch.long
    rows = _rows(cfg, cache)
    assert {v: int(r["label"]) for v, r in rows["train"].items()} == info["train"]
    assert {v: int(r["label"]) for v, r in rows["val"].items()} == info["official_val"]
    # The release validates and reports on the official validation set: val and test are it.
    assert split_ids(cfg, cache)["val"] == split_ids(cfg, cache)["test"]
    assert torch.equal(data.splits["val"]["rgb"], data.splits["test"]["rgb"])


def test_frames_are_the_uniformly_sampled_ones_centre_cropped(sth):
    info, cfg, cache, _ = sth
    for split in ("train", "val"):
        for vid, r in _rows(cfg, cache)[split].items():
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
    _, cfg, cache, report = sth
    r = _rows(cfg, cache)["train"]["1007"]
    red = ((r["rgb"][:, 0].float().mean((1, 2)) - 8) / 8).round().long()
    assert red.tolist() == [0, 0, 1, 2, 2, 2, 3, 4, 4, 4, 5, 6, 6, 6, 7, 8]
    assert [(s["split"], s["id"], s["rgb_frames"], s["flow_frames"])
            for s in report["short_videos"]] == [("train", "1007", 10, 9)]


def test_corrupt_missing_and_unknown_videos_are_reported_and_skipped(sth):
    _, cfg, cache, report = sth
    ids = split_ids(cfg, cache)
    every = set(ids["train"]) | set(ids["val"])
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
    assert report["length_mismatch"] == []


@pytest.mark.parametrize("hdf5_layout", ["vlen", "group"])
def test_other_hdf5_layouts_give_identical_tensors(sth, tmp_path, hdf5_layout):
    """Variable-length uint8 rows, and the STLT group-per-video layout whose frame datasets
    are named "1".."N" (written in shuffled order): frame order comes from natural sort."""
    _, cfg, cache, _ = sth
    other = dataclasses.replace(cfg, root=str(write_sthsth(tmp_path / "raw", hdf5_layout)["root"]))
    preprocess(other, tmp_path / "cache", progress=False)
    ref, got = load(cfg, cache), load(other, tmp_path / "cache")
    for split in ("train", "test"):
        for key in ("rgb", "flow", "label"):
            assert torch.equal(ref.splits[split][key], got.splits[split][key]), (split, key)


def test_held_out_share_of_train(sth):
    info, cfg, cache, _ = sth
    seen = set()
    for seed in range(8):
        held = dataclasses.replace(cfg, val_from_train=0.34, split_seed=seed)
        ids = split_ids(held, cache)
        assert not set(ids["train"]) & set(ids["val"])
        assert sorted(ids["train"] + ids["val"]) == sorted(info["train"])
        assert ids["test"] == sorted(info["official_val"])
        # round(0.34 * n) per class, at least one left in train: classes of 3, 2, 2 videos.
        assert sorted(info["train"][v] for v in ids["val"]) == [0, 1, 2]
        assert split_ids(held, cache) == ids                 # fixed by the seed
        data = load(held, cache)
        assert data.splits["val"]["label"].tolist() == [info["train"][v] for v in ids["val"]]
        assert len(data.splits["train"]["rgb"]) == len(ids["train"])
        seen.add(tuple(ids["val"]))
    assert len(seen) > 1
    # A large share still leaves every class in train.
    ids = split_ids(dataclasses.replace(cfg, val_from_train=0.9), cache)
    assert sorted(info["train"][v] for v in ids["train"]) == [0, 1, 2]
    assert len(ids["val"]) == 4


def test_max_per_class_keeps_the_first_listed(sth, tmp_path):
    _, cfg, _, _ = sth
    small = dataclasses.replace(cfg, max_per_class=1)
    preprocess(small, tmp_path, progress=False)
    ids = split_ids(small, tmp_path)
    assert ids["train"] == ["1001", "1003", "1005"] and ids["val"] == ["2001", "2002", "2003"]


def test_workers_give_identical_tensors(sth, tmp_path):
    _, cfg, cache, _ = sth
    preprocess(dataclasses.replace(cfg, num_workers=2), tmp_path, progress=False)
    ref, got = load(cfg, cache), load(cfg, tmp_path)
    assert torch.equal(ref.splits["train"]["rgb"], got.splits["train"]["rgb"])
    assert torch.equal(ref.splits["test"]["flow"], got.splits["test"]["flow"])


def test_missing_root_and_missing_files_name_the_layout(sth, tmp_path, monkeypatch):
    info, cfg, _, _ = sth
    monkeypatch.delenv(ENV_ROOT, raising=False)
    with pytest.raises(FileNotFoundError) as err:
        preprocess(SthSthConfig(), tmp_path / "c")
    text = str(err.value)
    assert ENV_ROOT in text and "data.params.root" in text
    for rel in ("dataset.hdf5", "flow_dataset.hdf5", "train_dataset_flow_aligned.json",
                "val_dataset_flow_aligned.json", "something-something-v2-labels.json"):
        assert rel in text
    assert "multimodal-distillation" in text and "Qualcomm" in text

    monkeypatch.setenv(ENV_ROOT, str(tmp_path / "nowhere"))
    assert SthSthConfig().root == str(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="does not exist: 5 of 5 files missing"):
        preprocess(SthSthConfig(), tmp_path / "c")

    partial = tmp_path / "partial"
    shutil.copytree(info["root"], partial)
    (partial / "flow_dataset.hdf5").unlink()
    with pytest.raises(FileNotFoundError) as err:
        preprocess(dataclasses.replace(cfg, root=str(partial)), tmp_path / "c")
    head = str(err.value).split("\n")[0]
    assert "is incomplete: 1 of 5 files missing" in head
    assert str(partial / "flow_dataset.hdf5") in head and str(partial / "dataset.hdf5,") not in head
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("key, value", [("num_frames", 0), ("image_size", 4),
                                        ("val_from_train", 1.0), ("max_per_class", -1),
                                        ("num_workers", -2)])
def test_invalid_settings_are_refused(key, value):
    with pytest.raises(ConfigError, match=f"data.params.{key}"):
        from_dict(SthSthConfig, {"root": "x", key: value}, "data.params")


def test_cache_must_match_the_settings(sth, tmp_path):
    _, cfg, cache, _ = sth
    with pytest.raises(ValueError, match="preprocess again"):
        load(dataclasses.replace(cfg, image_size=20), cache)
    with pytest.raises(FileNotFoundError, match="preprocess"):
        load(cfg, tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(cache, copy)
    with open(copy / "train.rgb.u8", "r+b") as f:      # a half-written frame file
        f.truncate(1000)
    with pytest.raises(ValueError, match="train.rgb.u8 is missing or not"):
        load(cfg, copy)


def test_unreadable_list_fails_and_leaves_no_partial_cache(sth, tmp_path):
    info, cfg, _, _ = sth
    root = tmp_path / "raw"
    shutil.copytree(info["root"], root)
    h5py.File(root / "flow_dataset.hdf5", "w").close()    # no flow for any video
    out = tmp_path / "cache"
    with pytest.raises(ValueError, match="none of 9 listed videos could be read"):
        preprocess(dataclasses.replace(cfg, root=str(root)), out, progress=False)
    assert not out.exists() or list(out.iterdir()) == []


def test_registry_builder_preprocesses_once_per_setting(sth, tmp_path):
    """Default settings (16 frames, 224 x 224) through make_sthsth; a changed setting rebuilds."""
    info, _, _, _ = sth
    cfg = SthSthConfig(root=str(info["root"]), cache_dir=str(tmp_path), max_per_class=1)
    data = make_sthsth(cfg)
    assert data.splits["train"]["rgb"].shape == (3, 16, 3, 224, 224)
    stamp = (tmp_path / "train.pt").stat().st_mtime_ns
    make_sthsth(cfg)
    assert (tmp_path / "train.pt").stat().st_mtime_ns == stamp          # cache reused
    fewer = make_sthsth(dataclasses.replace(cfg, num_frames=8, image_size=32, max_per_class=0))
    # With 8 frames neither corrupt frame (RGB 9 of 1008, flow 0 of 2004) is sampled, so both
    # videos are kept: only sampled frames are decoded, as in the release.
    assert fewer.splits["train"]["rgb"].shape == (8, 8, 3, 32, 32)
    assert fewer.splits["test"]["flow"].shape == (4, 8, 3, 32, 32)
    ids = split_ids(dataclasses.replace(cfg, num_frames=8, image_size=32, max_per_class=0),
                    tmp_path)
    assert "1008" in ids["train"] and "2004" in ids["test"]
