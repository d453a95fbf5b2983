"""CMU-MOSI / MOSEI from MultiBench's pickles: the real preprocess + load on a tiny pickle with the
real schema and the real files' defects (tests/fixtures/mosi.py)."""
import json
import math
import os
import pickle

import numpy as np
import pytest
import torch

from mcrlib.config import ConfigError, from_dict
from mcrlib.data.mosi import (ROOT_ENV, MoseiConfig, MosiConfig, load, make_mosi, preprocess,
                              source_file)
from tests.fixtures.mosi import (DIMS, EMPTY_TEXT, FULL_LENGTH, NAN, NEG_INF, POS_INF, SIZES, STEPS,
                                 VISION_BEFORE_TEXT, read_pickle, write_affect_pickle)

OURS = {"train": "train", "valid": "val", "test": "test"}
VAT = ("vision", "text", "audio")


@pytest.fixture()
def mosi(tmp_path):
    """(config with V-A-T, cache dir, raw pickle content) after preprocess."""
    path = write_affect_pickle(tmp_path / "raw")
    cfg = MosiConfig(root=str(tmp_path / "raw"), modalities=VAT)
    cache = preprocess(cfg, tmp_path / "cache", progress=False)
    return cfg, cache, read_pickle(path)


def _expected(raw_split: dict, row: int, modality: str) -> np.ndarray:
    """Release semantics, written out per sample: cut at the first step with non-zero text,
    pad the end with zeros, non-finite values -> 0."""
    text = np.nan_to_num(raw_split["text"][row], nan=0, posinf=0, neginf=0)
    start = int(np.flatnonzero((text != 0).any(-1))[0])
    x = np.nan_to_num(raw_split[modality][row], nan=0, posinf=0, neginf=0)[start:]
    return np.concatenate([x, np.zeros((start, x.shape[1]), np.float32)])


def _kept_rows(split: str) -> list[int]:
    return [r for r in range(SIZES[split]) if (split, r) != EMPTY_TEXT]


def test_shapes_dtypes_and_task(mosi):
    cfg, cache, _ = mosi
    data = load(cfg, cache)
    assert data.task == "regression" and data.n_classes == 1
    assert data.modalities == VAT
    for theirs, ours in OURS.items():
        split = data.splits[ours]
        n = len(_kept_rows(theirs))
        assert set(split) == {*VAT, "label"}
        for m in VAT:
            assert split[m].shape == (n, STEPS, DIMS["mosi"][m]) and split[m].dtype == torch.float32
        assert split["label"].shape == (n,) and split["label"].dtype == torch.float32
    batch = next(iter(data.loader("train", batch_size=2)))
    assert batch["label"].dtype == torch.float32 and batch["text"].shape == (2, STEPS, 300)


def test_splits_labels_and_order_follow_the_pickle_without_empty_text(mosi):
    cfg, cache, raw = mosi
    data = load(cfg, cache)
    for theirs, ours in OURS.items():
        want = np.asarray(raw[theirs]["labels"]).reshape(-1)[_kept_rows(theirs)]
        np.testing.assert_array_equal(data.splits[ours]["label"].numpy(), want)
    # labels are continuous, including 0 and the bounds
    assert 0.0 in data.splits["train"]["label"] and 3.0 in data.splits["train"]["label"]
    assert -3.0 in data.splits["test"]["label"]


def test_sequences_start_at_first_text_step_and_are_end_padded(mosi):
    cfg, cache, raw = mosi
    data = load(cfg, cache)
    for theirs, ours in OURS.items():
        for i, row in enumerate(_kept_rows(theirs)):
            for m in VAT:
                np.testing.assert_array_equal(data.splits[ours][m][i].numpy(), _expected(raw[theirs], row, m),
                                              err_msg=f"{theirs} row {row} {m}")
    # every kept sample has text at step 0 and nothing after its length
    text = data.splits["train"]["text"]
    assert bool((text[:, 0] != 0).any(-1).all())
    # vision before the first text step is cut off, not kept
    split, row = VISION_BEFORE_TEXT
    vision = data.splits[OURS[split]]["vision"][_kept_rows(split).index(row)]
    assert not bool((vision == 7.0).any())
    # an entry with text at every step is unchanged
    split, row = FULL_LENGTH
    np.testing.assert_array_equal(data.splits[OURS[split]]["text"][row].numpy(), raw[split]["text"][row])


def test_nonfinite_values_set_to_zero_and_reported(mosi):
    cfg, cache, raw = mosi
    data = load(cfg, cache)
    for split in data.splits.values():
        for m in VAT:
            assert bool(torch.isfinite(split[m]).all())
    report = json.loads((cache / "report.json").read_text())
    counts = {s: report["splits"][OURS[s]]["nonfinite_features_set_to_0"] for s in OURS}
    split, row, m = NEG_INF
    assert counts[split][m] == {"nan": 0, "posinf": 0, "neginf": 1}
    assert counts[NAN[0]][NAN[2]]["nan"] == 1 and counts[POS_INF[0]][POS_INF[2]]["posinf"] == 1
    total = sum(v for s in counts.values() for mm in s.values() for v in mm.values())
    assert total == 3
    # the -inf sat at the last step of train row 0: after the shift it is the step before padding
    start = int(np.flatnonzero((raw[split]["text"][row] != 0).any(-1))[0])
    assert data.splits["train"][m][row, STEPS - 1 - start, 0].item() == 0.0


def test_report_lists_dropped_entries_and_counts(mosi):
    cfg, cache, raw = mosi
    report = json.loads((cache / "report.json").read_text())
    assert report["dataset"] == "mosi" and report["source"]["file"] == "mosi_data.pkl"
    split, row = EMPTY_TEXT
    train = report["splits"]["train"]
    assert train["entries"] == SIZES["train"] and train["kept"] == SIZES["train"] - 1
    assert train["dropped_empty_text"] == {"count": 1, "rows": [row], "ids": [str(raw[split]["id"][row])]}
    assert train["dropped_nonfinite_label"]["count"] == 0
    for s in ("val", "test"):
        assert report["splits"][s]["dropped_empty_text"]["count"] == 0
        assert report["splits"][s]["kept"] == report["splits"][s]["entries"]
    assert report["splits"]["test"]["length_from_first_text_step"]["max"] == STEPS
    assert train["labels_outside_[-3,3]"] == 0


def test_modalities_select_vt_and_keep_the_given_order(tmp_path, mosi):
    _, cache, _ = mosi
    data = load(MosiConfig(root="unused"), cache)          # default: V-T
    assert data.modalities == ("vision", "text")
    assert set(data.splits["val"]) == {"vision", "text", "label"}
    data = load(MosiConfig(modalities=("audio",)), cache)
    assert data.modalities == ("audio",) and set(data.splits["test"]) == {"audio", "label"}


def test_mosei_dimensions_and_flat_labels(tmp_path):
    write_affect_pickle(tmp_path, "mosei", label_shape="column", seed=3)
    cfg = from_dict(MoseiConfig, {"root": str(tmp_path), "modalities": list(VAT)}, "data.params")
    assert cfg.dataset == "mosei"
    data = load(cfg, preprocess(cfg, tmp_path / "cache", progress=False))
    train = data.splits["train"]
    assert train["vision"].shape[2] == 35 and train["audio"].shape[2] == 74 and train["text"].shape[2] == 300
    assert train["label"].shape == (SIZES["train"] - 1,)


def test_nonfinite_label_entry_is_dropped_and_reported(tmp_path):
    path = write_affect_pickle(tmp_path)
    raw = read_pickle(path)
    raw["test"]["labels"][1] = np.nan
    with open(path, "wb") as f:
        pickle.dump(raw, f)
    cfg = MosiConfig(root=str(tmp_path))
    cache = preprocess(cfg, tmp_path / "cache", progress=False)
    report = json.loads((cache / "report.json").read_text())["splits"]["test"]
    assert report["dropped_nonfinite_label"]["rows"] == [1] and report["kept"] == SIZES["test"] - 1
    labels = load(cfg, cache).splits["test"]["label"]
    assert len(labels) == SIZES["test"] - 1 and bool(torch.isfinite(labels).all())


def test_root_unset_names_the_variable_file_and_source(monkeypatch):
    monkeypatch.delenv(ROOT_ENV, raising=False)
    with pytest.raises(FileNotFoundError) as err:
        source_file(MosiConfig())
    msg = str(err.value)
    assert ROOT_ENV in msg and "mosi_data.pkl" in msg and "MultiBench" in msg and "(N, T, 20)" in msg


def test_root_from_environment_and_root_as_file(tmp_path, monkeypatch):
    path = write_affect_pickle(tmp_path)
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    assert source_file(MosiConfig()) == path
    assert source_file(MosiConfig(root=str(path))) == path


def test_missing_file_lists_expected_and_missing(tmp_path):
    write_affect_pickle(tmp_path, "mosi")                  # MOSI there, MOSEI missing
    with pytest.raises(FileNotFoundError) as err:
        preprocess(MoseiConfig(root=str(tmp_path)), tmp_path / "cache")
    msg = str(err.value)
    assert str(tmp_path / "mosei_senti_data.pkl") in msg and "missing 1 of 1" in msg
    assert "(N, T, 35)" in msg and "multibench.readthedocs.io" in msg
    assert not (tmp_path / "cache" / "report.json").exists()


def test_corrupt_pickle_is_refused_and_nothing_cached(tmp_path):
    path = write_affect_pickle(tmp_path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])     # truncated download
    with pytest.raises(ValueError, match="corrupt or incomplete"):
        preprocess(MosiConfig(root=str(tmp_path)), tmp_path / "cache")
    assert not (tmp_path / "cache" / "report.json").exists()


def test_wrong_schema_errors_name_the_problem(tmp_path):
    write_affect_pickle(tmp_path / "a", "mosei")
    os.rename(tmp_path / "a" / "mosei_senti_data.pkl", tmp_path / "a" / "mosi_data.pkl")
    with pytest.raises(ValueError, match=r"train/vision has 35 features per step, mosi has 20 .*mosei"):
        preprocess(MosiConfig(root=str(tmp_path / "a")), tmp_path / "cache")
    path = write_affect_pickle(tmp_path / "b")
    raw = read_pickle(path)
    del raw["valid"]
    with open(path, "wb") as f:
        pickle.dump(raw, f)
    with pytest.raises(ValueError, match=r"split\(s\) \['valid'\] missing"):
        preprocess(MosiConfig(root=str(tmp_path / "b")), tmp_path / "cache")


def test_config_validation():
    with pytest.raises(ConfigError, match="data.params.modalities"):
        MosiConfig(modalities=("vision", "speech"))
    with pytest.raises(ConfigError, match="data.params.modalities"):
        MosiConfig(modalities=("text", "text"))
    with pytest.raises(ConfigError, match="data.params.dataset"):
        from_dict(MosiConfig, {"dataset": "iemocap"}, "data.params")
    with pytest.raises(ConfigError, match="data.params.dataset"):
        MosiConfig(dataset="sims")


def test_load_needs_a_complete_cache_of_the_same_dataset(tmp_path, mosi):
    _, cache, _ = mosi
    with pytest.raises(FileNotFoundError, match="report.json"):
        load(MosiConfig(), tmp_path / "empty")
    with pytest.raises(ValueError, match="holds 'mosi' data, not 'mosei'"):
        load(MoseiConfig(), cache)
    (cache / "val.pt").unlink()
    with pytest.raises(FileNotFoundError, match="val.pt"):
        load(MosiConfig(), cache)


def test_make_mosi_preprocesses_once_and_again_when_the_source_changes(tmp_path, monkeypatch):
    import mcrlib.data.mosi as module
    path = write_affect_pickle(tmp_path / "raw")
    cfg = MosiConfig(root=str(tmp_path / "raw"), processed=str(tmp_path / "cache"))
    calls = []
    real = module.preprocess
    monkeypatch.setattr(module, "preprocess", lambda c, d, **k: calls.append(d) or real(c, d, progress=False))
    first = make_mosi(cfg)
    make_mosi(cfg)
    assert len(calls) == 1
    write_affect_pickle(tmp_path / "raw", seed=9)               # a different file at the same place
    os.utime(path, ns=(1, 1))
    second = make_mosi(cfg)
    assert len(calls) == 2
    assert not torch.equal(first.splits["train"]["text"], second.splits["train"]["text"])
    assert not math.isnan(second.splits["train"]["label"].sum().item())
