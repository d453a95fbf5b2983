"""CREMA-D: real preprocess + load on a tiny corpus in the real format (tests/fixtures/cremad.py),
and the actor-disjoint folds on the corpus' real 7,442 clip names (../shared/data/cremad-meta)."""
import json
import math
import os
import re
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from mcrlib.config import ConfigError, from_dict
from mcrlib.data.cremad import (EMOTIONS, KNOWN_DEFECTS, SPLITS, CremadConfig, actor_folds, build,
                                expected_files, load, parse_clip, preprocess, read_actor_table,
                                read_clip_list, split_rows)
from tests.fixtures.cremad import (ACTOR_BLUE, CLIPS, LONG, SHORT_VIDEO, SKIPPED, label_of, tone_hz,
                                   write_cremad)

SIZE = 16
META = Path(os.environ.get("MCR_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "data" / "cremad-meta"


def config(root, **kw):
    return CremadConfig(root=str(root), image_size=SIZE, **kw)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = write_cremad(tmp_path_factory.mktemp("cremad") / "CREMA-D")
    cache = preprocess(config(root), tmp_path_factory.mktemp("cache"), workers=0, progress=False)
    return root, cache


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
    data = load(config(root), cache)
    assert data.modalities == ("audio", "visual") and data.n_classes == 6 and data.task == "classification"
    for t in data.splits.values():
        n = len(t["label"])
        assert t["audio"].shape == (n, 1, 257, 188) and t["audio"].dtype == torch.float32
        assert t["visual"].shape == (n, 3, 3, SIZE, SIZE) and t["visual"].dtype == torch.uint8
        assert t["label"].dtype == torch.long and torch.isfinite(t["audio"]).all()
    assert set(by_clip(data)) == set(CLIPS) - SKIPPED
    assert EMOTIONS == {"NEU": 0, "HAP": 1, "SAD": 2, "FEA": 3, "DIS": 4, "ANG": 5}
    assert parse_clip("1064_IEO_DIS_MD") == (1064, 4) and parse_clip("1001_DFA_NEU_XX") == (1001, 0)
    with pytest.raises(ValueError, match="not a CREMA-D clip name"):
        parse_clip("1001_DFA_BORED_XX")


def test_folds_are_actor_disjoint_and_cover_every_clip(corpus):
    root, cache = corpus
    tested = Counter()
    for fold in range(3):
        where = by_clip(load(config(root, fold=fold), cache))
        assert set(where) == set(CLIPS) - SKIPPED                  # each kept clip in exactly one split
        actors = {s: {int(c[:4]) for c, (split, _) in where.items() if split == s} for s in SPLITS}
        assert all(actors[s] for s in SPLITS)
        assert not (actors["train"] & actors["val"] or actors["train"] & actors["test"]
                    or actors["val"] & actors["test"])
        tested.update(actors["test"])
    assert tested == Counter(list(ACTOR_BLUE))                          # every actor tested exactly once


def test_audio_is_the_release_spectrogram(corpus):
    root, cache = corpus
    data = load(config(root), cache)
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
    data = load(config(root), cache)
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
    for f in range(3):
        data = load(config(root, fold=f), cache)
        for s in SPLITS:
            summary = report["folds"][str(f)][s]
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
    out = preprocess(config(root), tmp_path / "cache", workers=0, progress=False)
    report = json.loads((out / "report.json").read_text())
    reasons = {s["clip"]: s["reason"] for s in report["skipped"]}
    assert set(reasons) == SKIPPED | {"1001_DFA_ANG_XX", "1002_IEO_FEA_LO", "1003_DFA_NEU_XX"}
    assert "unreadable WAV" in reasons["1001_DFA_ANG_XX"]
    assert "undecodable video" in reasons["1002_IEO_FEA_LO"] or "no decodable" in reasons["1002_IEO_FEA_LO"]
    assert "silent" in reasons["1003_DFA_NEU_XX"]
    assert [p["clip"] for p in report["padded_audio"]] == ["1064_DFA_HAP_XX"]
    data = load(config(root), out)
    assert sum(len(t["label"]) for t in data.splits.values()) == len(CLIPS) - 4


def test_missing_root_or_files_name_layout_and_source(corpus, tmp_path):
    for root in (tmp_path / "nowhere", ""):
        with pytest.raises(FileNotFoundError) as err:
            preprocess(config(root), tmp_path / "c", workers=0, progress=False)
        message = str(err.value)
        assert "AudioWAV/<clip>.wav" in message and "VideoFlash/<clip>.flv" in message
        assert "CheyneyComputerScience/CREMA-D" in message
    assert "MCR_CREMAD_ROOT" in message

    root = Path(shutil.copytree(corpus[0], tmp_path / "CREMA-D"))
    (root / "VideoFlash" / "1001_DFA_ANG_XX.flv").unlink()
    (root / "AudioWAV" / "1002_TIE_DIS_XX.wav").unlink()
    with pytest.raises(FileNotFoundError) as err:
        preprocess(config(root), tmp_path / "c", workers=0, progress=False)
    message = str(err.value)
    assert "2 of 28 media files are missing" in message
    assert "VideoFlash/1001_DFA_ANG_XX.flv" in message and "AudioWAV/1002_TIE_DIS_XX.wav" in message
    assert "CheyneyComputerScience/CREMA-D" in message and not (tmp_path / "c" / "report.json").exists()

    root = Path(shutil.copytree(corpus[0], tmp_path / "lfs"))
    (root / "AudioWAV" / "1001_DFA_ANG_XX.wav").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 72862\n")
    with pytest.raises(FileNotFoundError, match=r"Git LFS pointers.*git lfs pull"):
        preprocess(config(root), tmp_path / "c", workers=0, progress=False)

    (root / "VideoDemographics.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"missing: VideoDemographics\.csv"):
        preprocess(config(root), tmp_path / "c", workers=0, progress=False)


def test_load_refuses_a_missing_or_foreign_cache(corpus, tmp_path):
    root, cache = corpus
    with pytest.raises(FileNotFoundError, match="no complete CREMA-D cache"):
        load(config(root), tmp_path)
    with pytest.raises(ValueError, match="image_size"):
        load(CremadConfig(root=str(root), image_size=32), cache)


def test_build_preprocesses_once_then_reads_the_cache(corpus, tmp_path):
    root = corpus[0]
    cfg = config(root, processed=str(tmp_path / "processed"), fold=1)
    first = build(cfg)
    stamp = (tmp_path / "processed" / "features.pt").stat().st_mtime_ns
    second = build(cfg)
    assert (tmp_path / "processed" / "features.pt").stat().st_mtime_ns == stamp
    for s in SPLITS:
        assert torch.equal(first.splits[s]["audio"], second.splits[s]["audio"])
    build(CremadConfig(root=str(root), processed=str(tmp_path / "processed"), image_size=8))
    assert (tmp_path / "processed" / "features.pt").stat().st_mtime_ns != stamp


def test_parallel_decoding_gives_the_same_cache(corpus, tmp_path):
    root, cache = corpus
    out = preprocess(config(root), tmp_path, workers=2, progress=False)
    a, b = torch.load(cache / "features.pt"), torch.load(out / "features.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("params,fragment", [
    ({"fold": 3}, "data.params.fold=3"), ({"val_share": 0.0}, "data.params.val_share=0.0"),
    ({"image_size": 4}, "data.params.image_size=4"), ({"hop_length": 1024}, "data.params.hop_length"),
    ({"n_folds": 1}, "data.params.n_folds=1"), ({"size": 224}, "unknown key 'data.params.size'"),
])
def test_bad_settings_are_rejected(params, fragment):
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        from_dict(CremadConfig, {"root": "", **params}, "data.params")


def test_paper_defaults():
    cfg = CremadConfig(root="")
    assert (cfg.sample_rate, cfg.seconds, cfg.tile, cfg.n_fft, cfg.hop_length) == (22050, 3.0, 3, 512, 353)
    assert (cfg.n_frames, cfg.fps, cfg.image_size, cfg.n_folds) == (3, 1.0, 224, 3)


# ----------------------------------------------------------------- the real corpus' names
@pytest.fixture(scope="module")
def real():
    assert META.is_dir(), f"CREMA-D metadata not found at {META} (set MCR_SHARED to the shared folder)"
    return read_clip_list(META / "SentenceFilenames.csv"), read_actor_table(META / "VideoDemographics.csv")


def test_real_names_match_the_layout_and_the_defect_list(real):
    clips, actors = real
    assert len(clips) == len(set(clips)) == 7442 and len(actors) == 91
    listed = {line.split("\t")[0] for line in (META / "files.tsv").read_text().splitlines()[1:] if line}
    assert listed == {f for c in clips for f in expected_files(c)}
    assert {parse_clip(c)[0] for c in clips} == set(actors)
    assert set(KNOWN_DEFECTS) <= set(clips)
    assert Counter(parse_clip(c)[1] for c in clips) == {0: 1087, 1: 1271, 2: 1271, 3: 1271, 4: 1271, 5: 1271}


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
