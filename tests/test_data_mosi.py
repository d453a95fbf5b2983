"""CMU-MOSI / MOSEI from MultiBench's pickles: the real prepare -> fingerprint -> load_dataset on a
tiny pickle with the real schema and the real files' defects (tests/fixtures/mosi.py)."""
import dataclasses
import json
import os
import pickle

import numpy as np
import pytest
import torch

from mcrlib.config import ConfigError, from_dict
from mcrlib.data import fingerprint
from mcrlib.data import prepare as stage
from mcrlib.data.mosi import (MOSEI, MOSI, ROOT_ENV, LoadConfig, MoseiLoadConfig, MoseiPrepareConfig,
                              PrepareConfig, load, prepare, source_file)
from mcrlib.data.registry import DATASETS, dataset_modalities, load_dataset
from mcrlib.errors import DataError
from tests.fixtures.mosi import (DIMS, EMPTY_TEXT, FULL_LENGTH, NAN, NEG_INF, POS_INF, SIZES, STEPS,
                                 VISION_BEFORE_TEXT, read_pickle, write_affect_pickle)

OURS = {"train": "train", "valid": "val", "test": "test"}
VAT = ("vision", "text", "audio")


def _prepare(cfg, out):
    """The `prepare@<name>` stage's function (the spec's prepare, canonical torch files, the
    fingerprint) with `cfg`'s settings."""
    stage.prepare(cfg.dataset, dataclasses.asdict(cfg), out)
    return out


@pytest.fixture()
def mosi(tmp_path):
    """(run params with V-A-T, prepared folder, raw pickle content) after prepare."""
    path = write_affect_pickle(tmp_path / "raw")
    out = _prepare(PrepareConfig(root=str(tmp_path / "raw")), tmp_path / "prepared")
    return {"prepared": str(out), "modalities": list(VAT)}, out, read_pickle(path)


def _expected(raw_split: dict, row: int, modality: str) -> np.ndarray:
    """Release semantics, written out per sample: cut at the first step with non-zero text,
    pad the end with zeros, non-finite values -> 0."""
    text = np.nan_to_num(raw_split["text"][row], nan=0, posinf=0, neginf=0)
    start = int(np.flatnonzero((text != 0).any(-1))[0])
    x = np.nan_to_num(raw_split[modality][row], nan=0, posinf=0, neginf=0)[start:]
    return np.concatenate([x, np.zeros((start, x.shape[1]), np.float32)])


def _kept_rows(split: str) -> list[int]:
    return [r for r in range(SIZES[split]) if (split, r) != EMPTY_TEXT]


def test_shapes_dtypes_task_and_encoders(mosi):
    params, _, _ = mosi
    data = load_dataset("mosi", params)
    assert data.task == "regression" and data.n_classes == 1
    assert data.modalities == VAT
    assert data.encoders == {m: "sequence" for m in VAT}     # each sample is a (T, D) sequence
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
    params, _, raw = mosi
    data = load_dataset("mosi", params)
    for theirs, ours in OURS.items():
        want = np.asarray(raw[theirs]["labels"]).reshape(-1)[_kept_rows(theirs)]
        np.testing.assert_array_equal(data.splits[ours]["label"].numpy(), want)
    # labels are continuous, including 0 and the bounds
    assert 0.0 in data.splits["train"]["label"] and 3.0 in data.splits["train"]["label"]
    assert -3.0 in data.splits["test"]["label"]


def test_sequences_start_at_first_text_step_and_are_end_padded(mosi):
    params, _, raw = mosi
    data = load_dataset("mosi", params)
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
    params, out, raw = mosi
    data = load_dataset("mosi", params)
    for split in data.splits.values():
        for m in VAT:
            assert bool(torch.isfinite(split[m]).all())
    report = json.loads((out / "report.json").read_text())
    counts = {s: report["splits"][OURS[s]]["nonfinite_features_set_to_0"] for s in OURS}
    split, row, m = NEG_INF
    assert counts[split][m] == {"nan": 0, "posinf": 0, "neginf": 1}
    assert counts[NAN[0]][NAN[2]]["nan"] == 1 and counts[POS_INF[0]][POS_INF[2]]["posinf"] == 1
    total = sum(v for s in counts.values() for mm in s.values() for v in mm.values())
    assert total == 3
    # the -inf sat at the last step of train row 0: after the shift it is the step before padding
    start = int(np.flatnonzero((raw[split]["text"][row] != 0).any(-1))[0])
    assert data.splits["train"][m][row, STEPS - 1 - start, 0].item() == 0.0


def test_report_lists_dropped_entries_and_counts(mosi, tmp_path):
    _, out, raw = mosi
    report = json.loads((out / "report.json").read_text())
    pickle_path = tmp_path / "raw" / "mosi_data.pkl"
    assert report["dataset"] == "mosi"
    assert report["source"] == {"file": "mosi_data.pkl", "size": pickle_path.stat().st_size,
                                "sha256": fingerprint.file_sha256(pickle_path)}
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


def test_prepared_folder_does_not_depend_on_where_or_when_the_pickle_was_copied(tmp_path, mosi):
    """The report records the pickle's content, not its path or mtime: the same pickle elsewhere
    gives the same fingerprint (so the same run keys)."""
    _, out, _ = mosi
    moved = tmp_path / "elsewhere" / "mosi_data.pkl"
    moved.parent.mkdir()
    moved.write_bytes((tmp_path / "raw" / "mosi_data.pkl").read_bytes())
    os.utime(moved, ns=(1, 1))
    again = _prepare(PrepareConfig(root=str(moved)), tmp_path / "again")
    assert (again / "report.json").read_bytes() == (out / "report.json").read_bytes()
    assert fingerprint.verify(again) == fingerprint.verify(out)


def test_modalities_select_vt_by_default_and_keep_the_given_order(mosi):
    params, out, _ = mosi
    data = load_dataset("mosi", {"prepared": str(out)})          # default: V-T
    assert data.modalities == ("vision", "text") and data.encoders == {"vision": "sequence", "text": "sequence"}
    assert set(data.splits["val"]) == {"vision", "text", "label"}
    data = load_dataset("mosi", {"prepared": str(out), "modalities": ["audio"]})
    assert data.modalities == ("audio",) and set(data.splits["test"]) == {"audio", "label"}
    assert dataset_modalities("mosi", {"modalities": ["text", "vision"]}) == ("text", "vision")
    assert dataset_modalities("mosei", {}) == ("vision", "text")


def test_registry_specs_and_defaults():
    assert DATASETS["mosi"] is MOSI and DATASETS["mosei"] is MOSEI
    assert MOSI.root_env == MOSEI.root_env == ROOT_ENV == "MCR_MULTIBENCH_ROOT"
    assert LoadConfig().prepared == "data/processed/mosi" and MoseiLoadConfig().prepared == "data/processed/mosei"
    assert PrepareConfig().dataset == "mosi" and MoseiPrepareConfig().dataset == "mosei"
    assert MOSEI.prepare_config is MoseiPrepareConfig and MOSEI.load_config is MoseiLoadConfig


def test_mosei_dimensions_and_flat_labels(tmp_path):
    write_affect_pickle(tmp_path, "mosei", label_shape="column", seed=3)
    cfg = from_dict(MoseiPrepareConfig, {"root": str(tmp_path)}, "data.mosei")
    assert cfg.dataset == "mosei"
    out = _prepare(cfg, tmp_path / "prepared")
    data = load_dataset("mosei", {"prepared": str(out), "modalities": list(VAT)})
    train = data.splits["train"]
    assert train["vision"].shape[2] == 35 and train["audio"].shape[2] == 74 and train["text"].shape[2] == 300
    assert train["label"].shape == (SIZES["train"] - 1,)


def test_nonfinite_label_entry_is_dropped_and_reported(tmp_path):
    path = write_affect_pickle(tmp_path)
    raw = read_pickle(path)
    raw["test"]["labels"][1] = np.nan
    with open(path, "wb") as f:
        pickle.dump(raw, f)
    out = _prepare(PrepareConfig(root=str(tmp_path)), tmp_path / "prepared")
    report = json.loads((out / "report.json").read_text())["splits"]["test"]
    assert report["dropped_nonfinite_label"]["rows"] == [1] and report["kept"] == SIZES["test"] - 1
    labels = load_dataset("mosi", {"prepared": str(out)}).splits["test"]["label"]
    assert len(labels) == SIZES["test"] - 1 and bool(torch.isfinite(labels).all())


def test_root_unset_names_the_param_variable_file_and_source(monkeypatch):
    monkeypatch.delenv(ROOT_ENV, raising=False)
    with pytest.raises(DataError) as err:
        source_file(PrepareConfig())
    msg = str(err.value)
    assert ROOT_ENV in msg and "data.mosi.root" in msg and "mosi_data.pkl" in msg
    assert "MultiBench" in msg and "(N, T, 20)" in msg
    with pytest.raises(DataError, match="data.mosei.root"):
        source_file(MoseiPrepareConfig())


def test_root_from_environment_and_root_as_file(tmp_path, monkeypatch):
    path = write_affect_pickle(tmp_path)
    monkeypatch.setenv(ROOT_ENV, str(tmp_path))
    assert source_file(PrepareConfig()) == path
    monkeypatch.setenv(ROOT_ENV, str(path))
    assert source_file(PrepareConfig()) == path
    monkeypatch.delenv(ROOT_ENV)
    assert source_file(PrepareConfig(root=str(path))) == path
    with pytest.raises(DataError, match="is not a folder"):
        source_file(PrepareConfig(root=str(tmp_path / "nowhere")))


def test_missing_file_lists_expected_and_missing(tmp_path):
    write_affect_pickle(tmp_path, "mosi")                  # MOSI there, MOSEI missing
    with pytest.raises(DataError) as err:
        prepare(MoseiPrepareConfig(root=str(tmp_path)), tmp_path / "prepared")
    msg = str(err.value)
    assert str(tmp_path / "mosei_senti_data.pkl") in msg and "missing 1 of 1" in msg
    assert "(N, T, 35)" in msg and "multibench.readthedocs.io" in msg
    assert not (tmp_path / "prepared").exists()


def test_corrupt_pickle_is_refused_and_nothing_written(tmp_path):
    path = write_affect_pickle(tmp_path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])     # truncated download
    with pytest.raises(DataError, match="corrupt or incomplete"):
        prepare(PrepareConfig(root=str(tmp_path)), tmp_path / "prepared")
    assert not (tmp_path / "prepared").exists()


def test_wrong_schema_errors_name_the_problem(tmp_path):
    write_affect_pickle(tmp_path / "a", "mosei")
    os.rename(tmp_path / "a" / "mosei_senti_data.pkl", tmp_path / "a" / "mosi_data.pkl")
    with pytest.raises(DataError, match=r"train/vision has 35 features per step, mosi has 20 .*mosei"):
        prepare(PrepareConfig(root=str(tmp_path / "a")), tmp_path / "prepared")
    path = write_affect_pickle(tmp_path / "b")
    raw = read_pickle(path)
    del raw["valid"]
    with open(path, "wb") as f:
        pickle.dump(raw, f)
    with pytest.raises(DataError, match=r"split\(s\) \['valid'\] missing"):
        prepare(PrepareConfig(root=str(tmp_path / "b")), tmp_path / "prepared")


def test_config_validation():
    with pytest.raises(ConfigError, match="data.params.modalities"):
        LoadConfig(modalities=("vision", "speech"))
    with pytest.raises(ConfigError, match="data.params.modalities"):
        from_dict(MoseiLoadConfig, {"modalities": ["text", "text"]}, "data.params")
    with pytest.raises(ConfigError, match="data.mosi.dataset"):
        from_dict(PrepareConfig, {"dataset": "iemocap"}, "data.mosi")
    with pytest.raises(ConfigError, match="dataset"):
        PrepareConfig(dataset="sims")
    # prepare settings are not run params, and the other way round
    with pytest.raises(ConfigError, match="unknown key 'data.params.root'"):
        from_dict(LoadConfig, {"root": "x"}, "data.params")
    with pytest.raises(ConfigError, match="unknown key 'data.mosi.modalities'"):
        from_dict(PrepareConfig, {"modalities": ["text"]}, "data.mosi")


def test_load_needs_a_complete_prepared_folder_of_the_same_dataset(tmp_path, mosi):
    _, out, _ = mosi
    with pytest.raises(DataError, match=r"report.json missing\): run `python -m mcrlib.data.prepare mosi`"):
        load(LoadConfig(prepared=str(tmp_path / "empty")))
    with pytest.raises(DataError, match="holds 'mosi' data, not 'mosei'"):
        load(MoseiLoadConfig(prepared=str(out)))
    (out / "val.pt").unlink()
    with pytest.raises(DataError, match=r"val.pt is missing .*mcrlib.data.prepare mosi"):
        load(LoadConfig(prepared=str(out)))


def test_load_dataset_refuses_an_unprepared_or_changed_folder(tmp_path, mosi):
    params, out, _ = mosi
    with pytest.raises(DataError, match="mcrlib.data.prepare mosi"):
        load_dataset("mosi", {"prepared": str(tmp_path / "nowhere")})
    tensors = torch.load(out / "test.pt", weights_only=True)
    tensors["label"] = tensors["label"] + 1
    torch.save(tensors, out / "test.pt")
    with pytest.raises(DataError, match="changed after prepare: test.pt"):
        load_dataset("mosi", params)
