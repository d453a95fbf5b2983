"""CREMA-D: prepare -> fingerprint -> load_dataset end to end on a tiny corpus in the real format
(tests/fixtures/cremad.py), the check of a copy against the official clip list (missing clips,
unexpected files), the media errors (mcrlib.data.media), and the actor-disjoint folds on the
corpus' real 7,442 clip names (the package data mcrlib/data/cremad_meta;
tests/fixtures/cremad_files.tsv.gz: the corpus' file listing with sizes)."""
import gzip
import json
import math
import re
import tomllib
import warnings
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from mcrlib.config import ConfigError, from_dict
from mcrlib.data import DATASETS, dataset_modalities, fingerprint, load_dataset, media
from mcrlib.data.cremad import KNOWN_DEFECTS, SPEC, LoadConfig, PrepareConfig, load, prepare
from mcrlib.data.cremad_clips import (EMOTIONS, SPLITS, actor_folds, expected_files, official_actors, official_clips,
                                      parse_clip, read_actor_table, split_rows)
from mcrlib.data.prepare import prepare as prepare_stage
from mcrlib.errors import DataError
from tests.fixtures.cremad import (ACTOR_BLUE, CLIPS, LONG, SHORT_VIDEO, SKIPPED, label_of, tone_hz,
                                   write_cremad)

SIZE = 16
REPO = Path(__file__).resolve().parents[1]
FILES = Path(__file__).resolve().parent / "fixtures" / "cremad_files.tsv.gz"   # path<TAB>bytes of every media file


def config(root, **kw):
    return PrepareConfig(root=str(root), **{"image_size": SIZE, **kw})


def loaded(prepared, **params):
    """The run's path to the data: the prepared folder's fingerprint checked, then `load`. The
    media tests read the actor-table folds, which place every clip of the fixture (the release's
    folds, the default, leave out the fixture's clips that are not among its 5,820)."""
    return load_dataset("cremad", {"prepared": str(prepared), "split": "actors", **params})


@pytest.fixture(autouse=True)
def no_data_root(monkeypatch):
    monkeypatch.delenv("MCR_CREMAD_ROOT", raising=False)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The fixture prepared by the stage's own function (prepare, canonical torch files, fingerprint)."""
    root = write_cremad(tmp_path_factory.mktemp("cremad") / "CREMA-D")
    out = tmp_path_factory.mktemp("prepared") / "cremad"
    with pytest.MonkeyPatch.context() as env:
        env.delenv("MCR_CREMAD_ROOT", raising=False)
        env.setenv("MCR_DATA_WORKERS", "1")       # this machine's cores are shared
        prepare_stage("cremad", {"root": str(root), "image_size": SIZE}, out)
    return root, out


def by_clip(data):
    """{clip name: (split, row)} recovered from the loaded tensors themselves: the fixture paints
    the actor into the blue channel and the label into the red one."""
    blue_actor = {v: a for a, v in ACTOR_BLUE.items()}
    found = {}
    for split, t in data.splits.items():
        for row in range(len(t["label"])):
            first = t["visual"][row, 0].float().mean(dim=(1, 2))      # (3,) of frame 0
            actor = blue_actor[min(blue_actor, key=lambda v: abs(v - first[2].item()))]
            label = int(t["label"][row])
            assert abs(first[0].item() - (30 + 40 * label)) < 8, "frame colour does not match the label"
            clip = [c for c in CLIPS if c.startswith(str(actor)) and label_of(c) == label]
            assert len(clip) == 1 and clip[0] not in found
            found[clip[0]] = (split, row)
    return found


def test_shapes_dtypes_and_labels(corpus):
    root, cache = corpus
    data = loaded(cache)
    assert data.modalities == ("audio", "visual") and data.n_classes == 6 and data.task == "classification"
    assert data.encoders == {"audio": "resnet2d", "visual": "frames"}
    for t in data.splits.values():
        n = len(t["label"])
        assert t["audio"].shape == (n, 1, 257, 188) and t["audio"].dtype == torch.float32
        assert t["visual"].shape == (n, 3, 3, SIZE, SIZE) and t["visual"].dtype == torch.uint8
        assert t["label"].dtype == torch.long and torch.isfinite(t["audio"]).all()
    assert set(by_clip(data)) == set(CLIPS) - SKIPPED
    assert EMOTIONS == {"NEU": 0, "HAP": 1, "SAD": 2, "FEA": 3, "DIS": 4, "ANG": 5}
    assert parse_clip("1064_IEO_DIS_MD") == (1064, 4) and parse_clip("1001_DFA_NEU_XX") == (1001, 0)
    with pytest.raises(DataError, match="not a CREMA-D clip name"):
        parse_clip("1001_DFA_BORED_XX")


def test_folds_are_actor_disjoint_and_cover_every_clip(corpus):
    root, cache = corpus
    tested = Counter()
    for fold in range(3):
        where = by_clip(loaded(cache, fold=fold))
        assert set(where) == set(CLIPS) - SKIPPED                  # each kept clip in exactly one split
        actors = {s: {int(c[:4]) for c, (split, _) in where.items() if split == s} for s in SPLITS}
        assert all(actors[s] for s in SPLITS)
        assert not (actors["train"] & actors["val"] or actors["train"] & actors["test"]
                    or actors["val"] & actors["test"])
        tested.update(actors["test"])
    assert tested == Counter(list(ACTOR_BLUE))                          # every actor tested exactly once


def test_audio_is_the_release_spectrogram(corpus):
    root, cache = corpus
    data = loaded(cache)
    for clip, (split, row) in by_clip(data).items():
        spec = data.splits[split]["audio"][row, 0]
        # 16 kHz files resampled to 22,050 Hz: the tone sits at f * 512 / 22050 (not / 16000).
        assert spec.mean(dim=1).argmax().item() == round(tone_hz(label_of(clip)) * 512 / 22050), clip
        # magnitude (power 1), natural log, no normalisation: 0.3 * sum(hann) / 2 = 38.4 at most
        # (less by up to 1.42 dB when the tone falls between two bins).
        assert -0.2 < spec.max().item() - math.log(0.3 * 256 / 2) < 0.02, clip
        # tiled x3 before the 3 s cut: a 1.2 s clip still sounds in the last frame.
        assert spec[:, -2].max().item() > 2.0, clip


def test_frames_are_the_first_of_each_second(corpus):
    root, cache = corpus
    data = loaded(cache)
    for clip, (split, row) in by_clip(data).items():
        frames = data.splits[split]["visual"][row].float().mean(dim=(2, 3))   # (3 frames, 3 colours)
        have = SHORT_VIDEO.get(clip, 3)
        for j in range(have):
            assert abs(frames[j, 1].item() - (40 + 60 * j)) < 8, (clip, j)    # never a green-250 frame
        assert (data.splits[split]["visual"][row, have:] == 0).all(), clip   # missing frames: zeros


def test_report_lists_every_defect(corpus):
    root, cache = corpus
    report = json.loads((cache / "report.json").read_text())
    assert report["clips_listed"] == len(CLIPS) and report["clips_kept"] == len(CLIPS) - len(SKIPPED)
    assert {s["clip"] for s in report["skipped"]} == SKIPPED
    # the fixture's own SentenceFilenames.csv declares a subset of the official list: counted, not an error
    assert report["official_clips"] == 7442 and report["official_clips_absent"] == 7442 - len(CLIPS) == 7428
    assert report["official_clips_absent_examples"] == [c for c in official_clips() if c not in CLIPS][:20]
    assert report["official_clips_absent_examples"][:3] == ["1001_IEO_NEU_XX", "1001_IEO_HAP_LO", "1001_IEO_HAP_MD"]
    assert report["unexpected"] == [] and report["expect_complete"] is True
    assert "0 samples" in report["skipped"][0]["reason"]
    assert {p["clip"]: p["frames_found"] for p in report["padded_video"]} == SHORT_VIDEO
    assert {t["clip"] for t in report["trimmed_long"]} == LONG
    assert report["trimmed_long"][0]["audio_s"] == 60.0 and report["trimmed_long"][0]["video_s"] > 59
    assert [n["clip"] for n in report["notes"]] == ["1076_MTI_NEU_XX"]
    assert "no audio stream" in report["notes"][0]["note"]
    defects = report["known_defects"]
    assert set(defects) == set(KNOWN_DEFECTS)
    assert defects["1076_MTI_SAD_XX"]["outcome"].startswith("skipped")
    assert defects["1076_MTI_NEU_XX"]["outcome"].startswith("kept: 1 of 3 frames")
    assert defects["1064_TIE_SAD_XX"]["outcome"].startswith("kept: 1 of 3 frames")
    assert "trimmed" in defects["1064_IEO_DIS_MD"]["outcome"]
    assert report["settings"]["sample_rate"] == 22050 and report["settings"]["image_size"] == SIZE
    assert report["actor_split"] == {"n_folds": 3, "split_seed": 0, "val_share": 0.1}   # LoadConfig's defaults
    for f in range(3):
        data = loaded(cache, fold=f)
        for s in SPLITS:
            summary = report["actor_folds"][str(f)][s]
            assert summary["clips"] == len(data.splits[s]["label"])
            names = {v: k for k, v in EMOTIONS.items()}
            assert summary["labels"] == dict(sorted(Counter(names[int(x)] for x in data.splits[s]["label"]).items(),
                                                    key=lambda kv: EMOTIONS[kv[0]]))


def test_bad_files_are_reported_and_skipped(corpus, tmp_path):
    root = Path(shutil.copytree(corpus[0], tmp_path / "CREMA-D"))
    (root / "AudioWAV" / "1001_DFA_ANG_XX.wav").write_bytes(b"RIFF\x00\x01garbage" * 20)
    (root / "VideoFlash" / "1002_IEO_FEA_LO.flv").write_bytes(b"FLV\x01" + bytes(range(256)) * 8)
    sf.write(str(root / "AudioWAV" / "1003_DFA_NEU_XX.wav"), np.zeros(16000, np.float32), 16000)
    short = np.sin(2 * np.pi * tone_hz(1) * np.arange(4000) / 16000) * 0.3   # 0.25 s
    sf.write(str(root / "AudioWAV" / "1064_DFA_HAP_XX.wav"), short, 16000, subtype="PCM_16")
    report = run(root, tmp_path / "prepared")
    reasons = {s["clip"]: s["reason"] for s in report["skipped"]}
    assert set(reasons) == SKIPPED | {"1001_DFA_ANG_XX", "1002_IEO_FEA_LO", "1003_DFA_NEU_XX"}
    assert reasons["1001_DFA_ANG_XX"].startswith("AudioWAV/1001_DFA_ANG_XX.wav: unreadable WAV: ")
    assert reasons["1002_IEO_FEA_LO"].startswith(("VideoFlash/1002_IEO_FEA_LO.flv: undecodable video: ",
                                                  "VideoFlash/1002_IEO_FEA_LO.flv: unreadable: no decodable"))
    assert reasons["1003_DFA_NEU_XX"] == "AudioWAV/1003_DFA_NEU_XX.wav: silent audio: all 16000 samples are 0"
    assert reasons["1076_MTI_SAD_XX"] == "AudioWAV/1076_MTI_SAD_XX.wav: empty audio: the WAV holds 0 samples"
    assert [p["clip"] for p in report["padded_audio"]] == ["1064_DFA_HAP_XX"]
    data = loaded(tmp_path / "prepared")
    assert sum(len(t["label"]) for t in data.splits.values()) == len(CLIPS) - 4


def run(root, out, **kw) -> dict:
    """SPEC.prepare on one thread without a progress bar, then the fingerprint (as the stage does);
    the report."""
    prepare(config(root, **kw), out, workers=0, progress=False)
    fingerprint.write(out)
    return json.loads((out / "report.json").read_text())


def test_missing_root_or_files_name_layout_and_source(corpus, tmp_path, monkeypatch):
    for root in (tmp_path / "nowhere", ""):
        with pytest.raises(DataError) as err:
            run(root, tmp_path / "c")
        message = str(err.value)
        assert "AudioWAV/<clip>.wav" in message and "VideoFlash/<clip>.flv" in message
        assert "CheyneyComputerScience/CREMA-D" in message and "data.cremad.root" in message
    assert "MCR_CREMAD_ROOT" in message
    monkeypatch.setenv("MCR_CREMAD_ROOT", str(corpus[0]))     # the documented variable, when root is unset
    assert run("", tmp_path / "from_env")["root"] == str(corpus[0])

    root = Path(shutil.copytree(corpus[0], tmp_path / "CREMA-D"))
    (root / "VideoFlash" / "1001_DFA_ANG_XX.flv").unlink()
    (root / "AudioWAV" / "1002_TIE_DIS_XX.wav").unlink()
    with pytest.raises(DataError) as err:
        run(root, tmp_path / "c")
    message = str(err.value)
    assert (f"CREMA-D at {root}: 2 of the 14 clips expected lack media (2 of 28 media files are missing): "
            f"1001_DFA_ANG_XX (VideoFlash/1001_DFA_ANG_XX.flv), 1002_TIE_DIS_XX (AudioWAV/1002_TIE_DIS_XX.wav). "
            f"The clips expected are those of {root / 'SentenceFilenames.csv'} (14 clips).") in message
    assert "git lfs pull" in message and "data.cremad.expect_complete: false" in message
    assert "CheyneyComputerScience/CREMA-D" in message and not (tmp_path / "c" / "report.json").exists()

    root = Path(shutil.copytree(corpus[0], tmp_path / "lfs"))
    (root / "AudioWAV" / "1001_DFA_ANG_XX.wav").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 72862\n")
    with pytest.raises(DataError, match=re.escape(
            "1 of the 14 clips expected lacks media (1 media file is a Git LFS pointer, not media): "
            "1001_DFA_ANG_XX (AudioWAV/1001_DFA_ANG_XX.wav: Git LFS pointer)") + ".*`git lfs pull`"):
        run(root, tmp_path / "c")

    (root / "VideoDemographics.csv").unlink()
    with pytest.raises(DataError, match=r"missing: VideoDemographics\.csv"):
        run(root, tmp_path / "c")


# The official clips absent from the fixture, in sorted order (the order of a copy without a list).
FIRST_ABSENT = ["1001_DFA_DIS_XX", "1001_DFA_FEA_XX", "1001_DFA_HAP_XX", "1001_DFA_NEU_XX", "1001_DFA_SAD_XX"]


def test_a_copy_without_its_own_list_must_hold_every_official_clip(corpus, tmp_path):
    root = Path(shutil.copytree(corpus[0], tmp_path / "CREMA-D"))
    (root / "SentenceFilenames.csv").unlink()
    absent = sorted(set(official_clips()) - set(CLIPS))
    assert absent[:5] == FIRST_ABSENT and len(absent) == 7428
    with pytest.raises(DataError) as err:
        run(root, tmp_path / "c")
    message = str(err.value)
    shown = ", ".join(f"{c} (AudioWAV/{c}.wav, VideoFlash/{c}.flv)" for c in FIRST_ABSENT)
    assert (f"CREMA-D at {root}: 7,428 of the 7,442 clips expected lack media "
            f"(14,856 of 14,884 media files are missing): {shown}, ... (7,428 in all). "
            f"The clips expected are the official clip list shipped with mcrlib "
            f"(mcrlib/data/cremad_meta/SentenceFilenames.csv, 7,442 clips)") in message
    assert "`git lfs pull`" in message and "CheyneyComputerScience/CREMA-D" in message
    assert "data.cremad.expect_complete: false" in message and not (tmp_path / "c" / "report.json").exists()

    # a partial copy on purpose: the clips it has files for are read, the rest counted
    (root / "VideoFlash" / "1003_DFA_NEU_XX.flv").unlink()          # half a clip: skipped, named
    with pytest.warns(UserWarning, match=re.escape("1 of the 14 clips expected lacks media and is skipped "
                                                   "(expect_complete: false): 1003_DFA_NEU_XX")):
        report = run(root, tmp_path / "partial", expect_complete=False)
    reasons = {s["clip"]: s["reason"] for s in report["skipped"]}
    assert reasons.keys() == SKIPPED | {"1003_DFA_NEU_XX"}
    assert reasons["1003_DFA_NEU_XX"] == "VideoFlash/1003_DFA_NEU_XX.flv: missing"
    assert report["clips_kept"] == 12 and report["clips_listed"] == 14 and report["expect_complete"] is False
    assert report["official_clips_absent"] == 7429 and report["unexpected"] == []
    index = json.loads((tmp_path / "partial" / "index.json").read_text())
    assert index["clips"] == sorted(set(CLIPS) - SKIPPED - {"1003_DFA_NEU_XX"})


def test_a_partial_copy_on_purpose_skips_and_names_the_clips_without_media(corpus, tmp_path):
    root = Path(shutil.copytree(corpus[0], tmp_path / "CREMA-D"))
    (root / "VideoFlash" / "1001_DFA_ANG_XX.flv").unlink()
    (root / "AudioWAV" / "1002_TIE_DIS_XX.wav").unlink()
    (root / "AudioWAV" / "1003_DFA_NEU_XX.wav").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 72862\n")
    with pytest.warns(UserWarning, match=re.escape(
            "3 of the 14 clips expected lack media and are skipped (expect_complete: false): "
            "1001_DFA_ANG_XX, 1002_TIE_DIS_XX, 1003_DFA_NEU_XX")):
        report = run(root, tmp_path / "c", expect_complete=False)
    reasons = {s["clip"]: s["reason"] for s in report["skipped"]}
    assert reasons == {
        "1001_DFA_ANG_XX": "VideoFlash/1001_DFA_ANG_XX.flv: missing",
        "1002_TIE_DIS_XX": "AudioWAV/1002_TIE_DIS_XX.wav: missing",
        "1003_DFA_NEU_XX": "AudioWAV/1003_DFA_NEU_XX.wav: a Git LFS pointer, not media (run `git lfs pull`)",
        "1076_MTI_SAD_XX": reasons["1076_MTI_SAD_XX"]}
    assert "0 samples" in reasons["1076_MTI_SAD_XX"]
    assert report["clips_kept"] == 10 and report["clips_kept"] + len(report["skipped"]) == report["clips_listed"] == 14
    assert report["official_clips_absent"] == 7442 - 11     # 10 kept + 1076_MTI_SAD_XX read (and found defective)
    data = loaded(tmp_path / "c")
    assert sum(len(t["label"]) for t in data.splits.values()) == 10


def test_unexpected_names_and_files_are_reported_and_not_read(corpus, tmp_path):
    root = Path(shutil.copytree(corpus[0], tmp_path / "CREMA-D"))
    for folder, ext in (("AudioWAV", "wav"), ("VideoFlash", "flv")):    # media under a name not in the corpus
        shutil.copy(root / folder / f"1001_DFA_ANG_XX.{ext}", root / folder / f"1001_XYZ_ANG_XX.{ext}")
    shutil.copy(root / "VideoFlash" / "1001_DFA_ANG_XX.flv", root / "VideoFlash" / "1001_DFA_ANG_XX (1).flv")
    (root / "AudioWAV" / "1001_DFA_ANG_XX.mp3").write_bytes(b"ID3")
    (root / "AudioWAV" / ".DS_Store").write_bytes(b"\0")                    # hidden: not reported
    listing = root / "SentenceFilenames.csv"
    listing.write_text(listing.read_text() + '\n15,"1001_XYZ_ANG_XX"\n16,"1001_DFA_ANG_XX_copy"\n')
    files = ["AudioWAV/1001_DFA_ANG_XX.mp3", "AudioWAV/1001_XYZ_ANG_XX.wav", "VideoFlash/1001_DFA_ANG_XX (1).flv",
             "VideoFlash/1001_XYZ_ANG_XX.flv"]
    with pytest.warns(UserWarning, match=re.escape(
            "6 names are not part of the official corpus (mcrlib/data/cremad_meta/SentenceFilenames.csv) "
            "and not read: 1001_DFA_ANG_XX_copy, 1001_XYZ_ANG_XX, AudioWAV/1001_DFA_ANG_XX.mp3, "
            "AudioWAV/1001_XYZ_ANG_XX.wav, VideoFlash/1001_DFA_ANG_XX (1).flv, ... (6 in all)")):
        report = run(root, tmp_path / "c")
    assert report["unexpected"] == ["1001_DFA_ANG_XX_copy", "1001_XYZ_ANG_XX", *files]
    reasons = {s["clip"]: s["reason"] for s in report["skipped"]}
    assert reasons["1001_XYZ_ANG_XX"] == ("not in the official CREMA-D clip list "
                                          "(mcrlib/data/cremad_meta/SentenceFilenames.csv)")
    assert reasons["1001_DFA_ANG_XX_copy"] == "not a CREMA-D clip name"
    assert report["clips_listed"] == 16 and report["clips_kept"] == len(CLIPS) - len(SKIPPED)
    index = json.loads((tmp_path / "c" / "index.json").read_text())
    assert sorted(index["clips"]) == sorted(set(CLIPS) - SKIPPED)

    # without a list of its own, the names come from the media files: the same files are unexpected
    listing.unlink()
    with pytest.warns(UserWarning, match="4 names are not part of the official corpus"):
        report = run(root, tmp_path / "glob", expect_complete=False)
    assert report["unexpected"] == files
    reasons = {s["clip"]: s["reason"] for s in report["skipped"]}
    assert reasons.keys() == SKIPPED | {"1001_XYZ_ANG_XX", "1001_DFA_ANG_XX (1)"}
    assert reasons["1001_DFA_ANG_XX (1)"] == "not a CREMA-D clip name"
    assert report["clips_kept"] == len(CLIPS) - len(SKIPPED)


def test_a_complete_copy_passes_silently(corpus, tmp_path):
    """The fixture (its own list, every listed clip with its media) warns of nothing."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = run(corpus[0], tmp_path)
    assert report["unexpected"] == [] and {s["clip"] for s in report["skipped"]} == SKIPPED


def test_load_refuses_a_missing_incomplete_or_changed_folder(corpus, tmp_path):
    redo = "run `python -m mcrlib.data.prepare cremad`"
    with pytest.raises(DataError, match=re.escape(redo)):
        loaded(tmp_path / "nowhere")                                  # no folder, no fingerprint
    folder = Path(shutil.copytree(corpus[1], tmp_path / "prepared"))
    (folder / "index.json").unlink()
    with pytest.raises(DataError, match=r"no complete prepared CREMA-D folder .*missing index\.json.*"
                       + re.escape(redo)):
        load(LoadConfig(prepared=str(folder)))                        # `load` alone checks its files too
    with pytest.raises(DataError, match=r"missing: index\.json"):
        loaded(folder)
    folder = Path(shutil.copytree(corpus[1], tmp_path / "changed"))
    report = json.loads((folder / "report.json").read_text())
    (folder / "report.json").write_text(json.dumps({**report, "clips_kept": 0}))
    with pytest.raises(DataError, match=r"changed after prepare: report\.json"):
        loaded(folder)


def test_load_reads_only_the_prepared_folder(corpus, tmp_path, monkeypatch):
    """A relative `prepared` is relative to the working directory; the raw corpus need not be there;
    other preprocessing settings make another folder with another fingerprint."""
    root = Path(shutil.copytree(corpus[0], tmp_path / "CREMA-D"))
    monkeypatch.chdir(tmp_path)
    run(root, Path("data/processed/cremad"))
    shutil.rmtree(root)
    data, reference = loaded("data/processed/cremad", fold=1), loaded(corpus[1], fold=1)
    for s in SPLITS:
        assert all(torch.equal(data.splits[s][k], reference.splits[s][k]) for k in ("audio", "visual", "label"))
    # the same tensors to the byte (the report differs: it records the raw root)
    assert (fingerprint.file_sha256(Path("data/processed/cremad/features.pt"))
            == fingerprint.file_sha256(corpus[1] / "features.pt"))
    run(corpus[0], tmp_path / "small", image_size=8)
    assert fingerprint.verify(tmp_path / "small") != fingerprint.verify(corpus[1])
    assert loaded(tmp_path / "small").splits["train"]["visual"].shape[-2:] == (8, 8)


def test_parallel_decoding_gives_the_same_tensors(corpus, tmp_path):
    root, cache = corpus
    out = prepare(config(root), tmp_path, workers=2, progress=False)
    a, b = torch.load(cache / "features.pt"), torch.load(out / "features.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_media_errors_are_data_errors(tmp_path):
    assert issubclass(media.MediaError, DataError) and issubclass(media.MediaError, ValueError)
    (tmp_path / "bad.wav").write_bytes(b"RIFF\x00\x01garbage")
    with pytest.raises(media.MediaError) as err:
        media.read_wav(tmp_path / "bad.wav")
    assert err.value.reason == "unreadable WAV" and str(err.value) == f"unreadable WAV: {err.value.detail}"
    (tmp_path / "bad.flv").write_bytes(b"FLV\x01" + bytes(range(256)) * 8)
    with pytest.raises(media.MediaError, match="undecodable video|no decodable video frame"):
        media.read_frames_at_fps(tmp_path / "bad.flv", n_frames=3, fps=1.0, size=SIZE)


@pytest.mark.parametrize("config_cls,section,params,fragment", [
    (LoadConfig, "data.params", {"fold": 5}, "data.params.fold=5"),
    (LoadConfig, "data.params", {"fold": 3, "split": "actors"}, "data.params.fold=3"),
    (LoadConfig, "data.params", {"val_share": 0.0}, "data.params.val_share=0.0"),
    (LoadConfig, "data.params", {"n_folds": 1}, "data.params.n_folds=1"),
    (LoadConfig, "data.params", {"processed": "data/processed/cremad"}, "unknown key 'data.params.processed'"),
    (LoadConfig, "data.params", {"root": ""}, "unknown key 'data.params.root'"),
    (LoadConfig, "data.params", {"image_size": 16}, "unknown key 'data.params.image_size'"),
    (PrepareConfig, "data.cremad", {"image_size": 4}, "data.cremad.image_size=4"),
    (PrepareConfig, "data.cremad", {"hop_length": 1024}, "data.cremad.hop_length"),
    (PrepareConfig, "data.cremad", {"size": 224}, "unknown key 'data.cremad.size'"),
    (PrepareConfig, "data.cremad", {"fold": 0}, "unknown key 'data.cremad.fold'"),
    (PrepareConfig, "data.cremad", {"expect_complete": "no"}, "data.cremad.expect_complete='no'"),
])
def test_bad_settings_are_rejected(config_cls, section, params, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        from_dict(config_cls, params, section)


def test_paper_defaults_and_spec():
    cfg = PrepareConfig()
    assert cfg.root == "" and cfg.expect_complete is True
    assert (cfg.sample_rate, cfg.seconds, cfg.tile, cfg.n_fft, cfg.hop_length) == (22050, 3.0, 3, 512, 353)
    assert (cfg.n_frames, cfg.fps, cfg.image_size) == (3, 1.0, 224)
    assert LoadConfig() == LoadConfig(prepared="data/processed/cremad", fold=0, split="release", n_folds=3,
                                      split_seed=0, val_share=0.1)
    assert DATASETS["cremad"] is SPEC and SPEC.root_env == "MCR_CREMAD_ROOT"
    assert dataset_modalities("cremad", {}) == ("audio", "visual")


# ----------------------------------------------------------------- the real corpus' names
@pytest.fixture(scope="module")
def real():
    return list(official_clips()), official_actors()


def test_official_metadata_ships_as_package_data():
    meta = REPO / "mcrlib" / "data" / "cremad_meta"
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    covered = {p for pattern in declared["mcrlib.data"] for p in (REPO / "mcrlib" / "data").glob(pattern)}
    assert set(meta.iterdir()) == {meta / "SentenceFilenames.csv", meta / "VideoDemographics.csv", meta / "README.md",
                                   meta / "release_folds.tsv"}
    assert set(meta.iterdir()) <= covered        # a non-editable install (wheel) carries them
    assert official_actors() == read_actor_table(meta / "VideoDemographics.csv")
    readme = (meta / "README.md").read_text()
    assert "ODbL" in readme and "CheyneyComputerScience/CREMA-D" in readme
    assert "kkontras/Synergy" in readme and "0cade2339c7d" in readme   # the release folds' source and commit


def test_real_names_match_the_layout_and_the_defect_list(real):
    clips, actors = real
    assert len(clips) == len(set(clips)) == 7442 and len(actors) == 91
    assert clips[:2] == ["1001_IEO_NEU_XX", "1001_IEO_HAP_LO"] and clips[-1].startswith("1091_")
    rows = [line.split("\t") for line in gzip.decompress(FILES.read_bytes()).decode().splitlines()[1:] if line]
    sizes = {path: int(size) for path, size in rows}
    assert len(sizes) == len(rows) == 14884
    assert set(sizes) == {f for c in clips for f in expected_files(c)}     # the layout, and nothing else
    # Every real media file is far above the 1 KiB under which a file is read to tell a Git LFS pointer.
    assert min(sizes.values()) == sizes["VideoFlash/1076_MTI_NEU_XX.flv"] == 35166
    # The one-minute defect is by far the largest video.
    largest = sorted(sizes, key=sizes.get)[-2:]
    assert largest[-1] == "VideoFlash/1064_IEO_DIS_MD.flv" and sizes[largest[-1]] > 10 * sizes[largest[0]]
    assert {parse_clip(c)[0] for c in clips} == set(actors)
    assert set(KNOWN_DEFECTS) <= set(clips)
    assert Counter(parse_clip(c)[1] for c in clips) == {0: 1087, 1: 1271, 2: 1271, 3: 1271, 4: 1271, 5: 1271}
    assert set(CLIPS) <= set(clips)                    # the fixture is made of real names


def test_real_folds_are_actor_disjoint_and_balanced(real):
    clips, actors = real
    clip_actors = [parse_clip(c)[0] for c in clips]
    labels = [parse_clip(c)[1] for c in clips]
    folds = actor_folds(actors, 3, seed=0, val_share=0.1)
    assert folds == actor_folds(actors, 3, seed=0, val_share=0.1)          # deterministic
    assert folds != actor_folds(actors, 3, seed=1, val_share=0.1)
    assert sorted(a for f in folds for a in f["test"]) == sorted(actors)   # tests partition the 91
    for fold in folds:
        sets = {s: set(fold[s]) for s in SPLITS}
        assert sum(len(v) for v in sets.values()) == 91 and set.union(*sets.values()) == set(actors)
        assert len(fold["test"]) in (30, 31) and len(fold["val"]) == 6      # round(0.1 * 60 or 61)
        rows = split_rows(clip_actors, fold)
        assert sorted(i for s in SPLITS for i in rows[s]) == list(range(7442))   # exactly one split each
        for s in SPLITS:
            assert {clip_actors[i] for i in rows[s]} == sets[s]
            assert set(Counter(labels[i] for i in rows[s])) == set(range(6))
        assert 0.30 < len(rows["test"]) / 7442 < 0.37 and 0.05 < len(rows["val"]) / 7442 < 0.09
    for seed in range(5):       # stratified by sex: 48 men -> 16 per test group, 43 women -> 15/14/14
        for fold in actor_folds(actors, 3, seed=seed, val_share=0.1):
            sexes = Counter(actors[a] for a in fold["test"])
            assert sexes["Male"] == 16 and sexes["Female"] in (14, 15)


# ---------------------------------------------------------------- the release's folds
def test_the_release_folds_are_the_authors_5820_clips_in_5_actor_disjoint_folds():
    """The package's release_folds.tsv (the MCR authors' data_splits_VALV): 5,820 official clips,
    5 folds, each actor-disjoint with 14 test actors and about 4,040 / 880 / 900 clips."""
    from mcrlib.data.cremad_clips import RELEASE_CLIPS, release_folds
    folds = release_folds()
    assert len(folds) == RELEASE_CLIPS == 5820 and set(folds) <= set(official_clips())
    for f in range(5):
        split_of = {clip: where[f] for clip, where in folds.items()}
        assert set(split_of.values()) == set(SPLITS)
        actors = {s: {parse_clip(c)[0] for c, w in split_of.items() if w == s} for s in SPLITS}
        assert not (actors["train"] & actors["val"] or actors["train"] & actors["test"] or actors["val"] & actors["test"])
        assert len(actors["test"]) == 14 and len(actors["val"]) == 14
        sizes = Counter(split_of.values())
        assert 4000 <= sizes["train"] <= 4100 and 840 <= sizes["val"] <= 900 and 870 <= sizes["test"] <= 940
        assert sum(sizes.values()) == 5820


def test_the_default_split_is_the_release_fold_by_fold(corpus):
    """Each kept clip of the fixture sits in the split the release gives it in every fold; the
    clips the release leaves out are in no split, and the data report names them and why."""
    from mcrlib.data.cremad_clips import release_folds
    root, cache = corpus
    assert LoadConfig().split == "release"
    kept = set(CLIPS) - SKIPPED
    in_release = {c for c in kept if c in release_folds()}
    assert in_release and kept - in_release   # the fixture has clips on both sides
    for fold in range(5):
        where = by_clip(load_dataset("cremad", {"prepared": str(cache), "fold": fold}))
        assert set(where) == in_release
        assert all(where[c][0] == release_folds()[c][fold] for c in in_release)
    report = json.loads((cache / "report.json").read_text())
    release = report["release"]
    assert release["clips_outside_release"] == len(kept - in_release)
    assert set(release["outside_examples"]) == kept - in_release and "face features" in release["outside_why"]
    assert release["release_clips_absent"] == 5820 - len(in_release)
    assert set(report["folds"]) == {str(f) for f in range(5)} and set(report["actor_folds"]) == {"0", "1", "2"}


@pytest.mark.parametrize("params, key", [({"split": "kfold"}, "data.params.split"),
                                         ({"fold": 5}, "data.params.fold"),
                                         ({"split": "actors", "fold": 3}, "data.params.fold")])
def test_a_bad_split_or_fold_names_the_key(params, key):
    with pytest.raises(ConfigError, match=key):
        LoadConfig(**params)


def test_fold_rows_of_the_whole_corpus_are_the_release_fold_sizes():
    """Both loaders cut a fold with fold_rows: on the corpus' 7,442 clips, release fold 0 is the
    release's 4,043 / 878 / 899 clips and the other 1,622 clips are in no split."""
    from mcrlib.data.cremad_clips import fold_rows
    clips = list(official_clips())
    rows = fold_rows(LoadConfig(fold=0), clips, official_actors())
    assert {s: len(r) for s, r in rows.items()} == {"train": 4043, "val": 878, "test": 899}
    actors = fold_rows(LoadConfig(fold=0, split="actors"), clips, official_actors())
    assert sum(len(r) for r in actors.values()) == 7442
