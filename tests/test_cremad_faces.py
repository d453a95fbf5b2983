"""CREMA-D's face features (mcrlib.data.face_features) and the dataset that reads them
(mcrlib.data.cremad_faces), on committed FLVs showing a real face (tests/fixtures/faces)."""
import builtins
import json
import warnings

import numpy as np
import pytest
import torch

from mcrlib.data import DATASETS, dataset_modalities, fingerprint, load_dataset
from mcrlib.data.cremad_clips import actor_folds
from mcrlib.data.cremad_faces import SPEC, LoadConfig, PrepareConfig, load, prepare, read_audio, read_video
from mcrlib.data.face_features import (FACE_SIZE, INSTALL, N_FEATURES, FaceDetector, FacePipeline, build_descriptor,
                                       fill_boxes, preprocess)
from mcrlib.data.prepare import prepare as prepare_stage
from mcrlib.data.spec import ENCODER_FAMILIES
from mcrlib.errors import DataError
from tests.fixtures import faces
from tests.fixtures.faces import CLIPS, FACE, NO_FACE, NO_FACE_CLIPS, SKIPPED, write_cremad_faces

SMALL = {"weights": "random", "face_size": 64, "device": "cpu", "seconds": 1.0, "max_frames": 10}


@pytest.fixture(scope="module")
def detector():
    return FaceDetector(device="cpu")


@pytest.fixture(scope="module")
def pipeline(detector):
    return FacePipeline(detector, build_descriptor("random"), torch.device("cpu"), face_size=64, batch_size=5)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, pipeline):
    """The tiny copy prepared once (the pipeline shared), with the warnings it raised."""
    base = tmp_path_factory.mktemp("cremad_faces")
    root = write_cremad_faces(base / "CREMA-D")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = prepare(PrepareConfig(root=str(root), **SMALL), base / "out", progress=False, pipeline=pipeline)
    return out, [str(w.message) for w in caught]


# ---------------------------------------------------------------- the fixture and the detector
def test_fixture_flvs_are_small_flv1_files_of_the_documented_frames():
    for path, n in ((FACE, faces.BLANK_FRAMES + faces.FACE_FRAMES), (NO_FACE, faces.NO_FACE_FRAMES)):
        assert path.stat().st_size < 150_000
        frames, decoded = read_video(path, 150)
        assert frames.shape == (n, faces.SIZE, faces.SIZE, 3) and frames.dtype == np.uint8 and decoded == n
    frames, decoded = read_video(FACE, 5)
    assert len(frames) == 5 and decoded == 6            # more frames than kept: said so
    blank = read_video(FACE, 150)[0][:faces.BLANK_FRAMES]
    assert np.abs(blank.astype(int) - 128).max() <= 3   # grey, no face


def test_mtcnn_finds_the_astronauts_face_and_nothing_on_blank_or_gradient_frames(detector):
    frames, _ = read_video(FACE, 150)
    boxes = detector.boxes(frames)
    assert boxes[:faces.BLANK_FRAMES] == [None] * faces.BLANK_FRAMES
    found = boxes[faces.BLANK_FRAMES:]
    assert all(b is not None for b in found)
    for i, (x1, y1, x2, y2) in enumerate(found):
        top = left = 8 + i                          # where the 96x96 photo region is pasted
        # the face (x 181-268, y 62-172 of the 512x512 photo) at half scale inside the region
        assert abs(x1 - (left + (181 - 130) / 2)) < 8 and abs(y1 - (top + (62 - 20) / 2)) < 12
        assert 30 < x2 - x1 < 60 and 40 < y2 - y1 < 70
    assert found[-1][0] > found[0][0]               # it moves right
    assert detector.boxes(read_video(NO_FACE, 150)[0]) == [None] * faces.NO_FACE_FRAMES


def test_detector_settings_reach_mtcnn():
    mtcnn = FaceDetector(device="cpu", thresholds=(0.5, 0.6, 0.9), min_face_size=33, factor=0.6).mtcnn
    assert (mtcnn.thresholds, mtcnn.min_face_size, mtcnn.factor) == ([0.5, 0.6, 0.9], 33, 0.6)
    assert mtcnn.select_largest and not mtcnn.keep_all and mtcnn.device == torch.device("cpu")


# ---------------------------------------------------------------- the no-face rule
def test_frames_without_a_face_take_the_previous_face_else_the_next():
    a, b = np.array([10.2, 20.7, 50.0, 70.4]), np.array([30.0, 5.0, 60.0, 40.0])
    boxes, facts = fill_boxes([None, None, a, None, b, None], 100, 120)
    assert boxes.tolist() == [[10, 20, 50, 71]] * 4 + [[30, 5, 60, 40]] * 2
    assert facts == {"frames": 6, "frames_with_face": 2, "frames_filled": 4, "no_face_clip": False}


def test_boxes_are_clipped_to_the_frame():
    boxes, _ = fill_boxes([np.array([-12.0, -3.0, 140.0, 90.5])], 80, 128)
    assert boxes.tolist() == [[0, 0, 128, 80]]


def test_a_clip_without_any_face_takes_centred_squares():
    boxes, facts = fill_boxes([None] * 3, 60, 100)
    assert boxes.tolist() == [[20, 0, 80, 60]] * 3
    assert facts == {"frames": 3, "frames_with_face": 0, "frames_filled": 0, "no_face_clip": True}


def test_leading_frames_without_a_face_are_described_at_the_first_faces_box(pipeline):
    frames, _ = read_video(FACE, 150)
    features, facts = pipeline(frames)
    assert features.shape == (len(frames), N_FEATURES) and features.dtype == np.float32
    assert np.isfinite(features).all()
    assert facts == {"frames": 12, "frames_with_face": 9, "frames_filled": 3, "no_face_clip": False}
    assert not np.allclose(features[3], features[0], atol=1e-3)       # a face, not grey
    # textured leading frames (the gradient, no face) are cropped at the next frame's face box
    clip = np.concatenate([read_video(NO_FACE, 150)[0][:2], frames[3:]])
    features, facts = pipeline(clip)
    assert (facts["frames_with_face"], facts["frames_filled"]) == (9, 2)
    box = fill_boxes([pipeline.detector.boxes(clip[2:3])[0]], 128, 128)[0][0]
    image = torch.from_numpy(clip[1]).permute(2, 0, 1)
    with torch.inference_mode():
        at_box = pipeline.descriptor(preprocess(image, box, 64)[None])[0].numpy()
        centre = pipeline.descriptor(preprocess(image, (0, 0, 128, 128), 64)[None])[0].numpy()
    np.testing.assert_allclose(features[1], at_box, rtol=1e-3, atol=1e-3)
    assert np.abs(features[1] - centre).max() > 100 * np.abs(features[1] - at_box).max()


def test_the_no_face_clip_is_described_from_centre_crops(pipeline):
    frames, _ = read_video(NO_FACE, 150)
    features, facts = pipeline(frames)
    assert facts["no_face_clip"] and facts["frames_with_face"] == 0 and features.shape == (8, N_FEATURES)
    image = torch.from_numpy(frames[5]).permute(2, 0, 1)
    with torch.inference_mode():   # one frame alone: batched convolutions round a little differently
        whole = pipeline.descriptor(preprocess(image, (0, 0, 128, 128), 64)[None])[0].numpy()
        corner = pipeline.descriptor(preprocess(image, (0, 0, 64, 64), 64)[None])[0].numpy()
    error = np.abs(features[5] - whole).max()
    assert error < 1e-2 * np.abs(whole).max() and np.abs(features[5] - corner).max() > 10 * error


# ---------------------------------------------------------------- the descriptor
def test_random_efficientnet_b2_gives_1408_features_per_frame_deterministically():
    model = build_descriptor("random")
    x = torch.randn(3, 3, 64, 64)
    with torch.inference_mode():
        out = model(x)
        again = build_descriptor("random")(x)
    assert out.shape == (3, N_FEATURES) and N_FEATURES == 1408
    torch.testing.assert_close(out, again)
    assert 0.01 < out.std().item() < 100                     # calibrated: not vanishing


def test_preprocessing_follows_the_weights_transforms():
    from torchvision.models import EfficientNet_B2_Weights
    frame = torch.randint(0, 256, (3, 100, 90), dtype=torch.uint8)
    ours = preprocess(frame, (10, 20, 70, 100), FACE_SIZE)
    theirs = EfficientNet_B2_Weights.IMAGENET1K_V1.transforms()(frame[:, 20:100, 10:70])
    assert ours.shape == (3, 288, 288)
    torch.testing.assert_close(ours, theirs)


def test_a_local_state_dict_file_is_loaded(tmp_path):
    from torchvision.models import efficientnet_b2
    torch.manual_seed(1)
    source = efficientnet_b2(weights=None)
    torch.save(source.state_dict(), tmp_path / "b2.pth")
    model = build_descriptor(str(tmp_path / "b2.pth"))
    torch.testing.assert_close(model.features[0][0].weight, source.features[0][0].weight)
    assert isinstance(model.classifier, torch.nn.Identity)


def test_unloadable_weights_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(DataError, match=r"'IMAGENET1K_V9'.*neither.*IMAGENET1K_V1.*state-dict file.*internet"):
        build_descriptor("IMAGENET1K_V9")
    (tmp_path / "bad.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match=r"(?s)bad.pth could not be loaded.*efficientnet_b2_rwightman"):
        build_descriptor(str(tmp_path / "bad.pth"))
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(DataError, match="not an EfficientNet-B2 state dict"):
        build_descriptor(str(tmp_path / "other.pth"))

    # a torchvision name that cannot be fetched (no network, nothing cached)
    from torchvision.models import EfficientNet_B2_Weights

    def offline(self, *args, **kwargs):
        raise OSError("network unreachable")
    monkeypatch.setattr(EfficientNet_B2_Weights, "get_state_dict", offline)
    with pytest.raises(DataError, match=r"'IMAGENET1K_V1' \(torchvision\) could not be loaded.*network "
                                        r"unreachable.*machine with internet.*pass its path"):
        build_descriptor("IMAGENET1K_V1")


def test_missing_facenet_pytorch_names_the_install_command(monkeypatch):
    real_import = builtins.__import__

    def no_facenet(name, *args, **kwargs):
        if name.startswith("facenet_pytorch"):
            raise ImportError("No module named 'facenet_pytorch'")
        return real_import(name, *args, **kwargs)
    monkeypatch.setattr(builtins, "__import__", no_facenet)
    with pytest.raises(DataError) as err:
        FaceDetector(device="cpu")
    assert INSTALL in str(err.value) and "--no-deps because" in str(err.value) and "torch<2.3" in str(err.value)
    assert INSTALL == "pip install --no-deps facenet-pytorch==2.6.0"


# ---------------------------------------------------------------- prepare and load
def test_waveform_is_raw_16k_cut_or_zero_padded(tmp_path):
    root = write_cremad_faces(tmp_path / "CREMA-D")
    wav = root / "AudioWAV" / "1001_DFA_ANG_XX.wav"           # 1.2 s
    cut, seconds = read_audio(wav, PrepareConfig(seconds=1.0))
    assert cut.shape == (16000,) and seconds == pytest.approx(1.2)
    np.testing.assert_allclose(cut, faces.wave("1001_DFA_ANG_XX", 1.2)[:16000], atol=1e-4)  # PCM_16
    padded, _ = read_audio(wav, PrepareConfig(seconds=2.0))
    assert padded.shape == (32000,) and not padded[19200:].any() and padded[:19200].any()


def test_prepare_writes_features_index_and_report(prepared):
    out, messages = prepared
    feats = torch.load(out / "features.pt", weights_only=True)
    index = json.loads((out / "index.json").read_text())
    report = json.loads((out / "report.json").read_text())
    kept = [c for c in CLIPS if c not in SKIPPED]
    assert index["clips"] == kept and report["clips_kept"] == len(kept) == 7
    assert feats["audio"].shape == (7, 16000) and feats["audio"].dtype == torch.float32
    assert feats["visual"].shape == (7, 10, N_FEATURES) and feats["visual"].dtype == torch.float32
    assert feats["n_frames"].tolist() == [8 if c in NO_FACE_CLIPS else 10 for c in kept]
    assert feats["label"].tolist() == [{"NEU": 0, "HAP": 1, "SAD": 2, "FEA": 3, "DIS": 4, "ANG": 5}[c.split("_")[2]]
                                       for c in kept]
    nf = kept.index("1002_IEO_FEA_LO")
    assert not feats["visual"][nf, 8:].any() and feats["visual"][nf, :8].abs().sum(1).gt(0).all()
    assert [s["clip"] for s in report["skipped"]] == ["1076_MTI_SAD_XX"]
    assert "empty audio" in report["skipped"][0]["reason"]
    assert report["known_defects"]["1076_MTI_SAD_XX"]["outcome"].startswith("skipped")
    # faces: six clips of the face FLV (first 10 of its 12 frames, 3 blank), one without any face
    assert report["faces"] == {"frames": 6 * 10 + 8, "frames_with_face": 6 * 7, "frames_filled": 6 * 3,
                               "clips_with_filled_frames": 6, "no_face_clips": ["1002_IEO_FEA_LO"]}
    assert report["frames_truncated"] == [c for c in kept if c not in NO_FACE_CLIPS]
    assert report["audio_padded"] == 4 and {a["clip"] for a in report["audio_cut"]} == {"1001_DFA_ANG_XX",
                                                                                         "1076_DFA_FEA_XX"}
    assert report["settings"]["weights"] == "random" and report["settings"]["max_frames"] == 10
    assert any("without a face in any frame" in m and "1002_IEO_FEA_LO" in m for m in messages)
    # the folds, as cremad's: the release's (the default) and the actor-table ones
    folds = actor_folds({1001: "Male", 1002: "Female", 1003: "Female", 1064: "Male", 1076: "Female"})
    assert [report["actor_folds"][str(f)]["test"]["actors"] for f in range(3)] == [f["test"] for f in folds]
    assert set(report["folds"]) == {str(f) for f in range(5)} and report["release"]["release_clips"] == 5820


@pytest.mark.parametrize("fold", [0, 1, 2])
def test_load_cuts_actor_disjoint_folds_and_z_scores_with_train_statistics(prepared, fold):
    out, _ = prepared
    raw = torch.load(out / "features.pt", weights_only=True)
    clips = json.loads((out / "index.json").read_text())["clips"]
    data = load(LoadConfig(prepared=str(out), fold=fold, split="actors"))   # every fixture clip has a split
    assert data.modalities == ("audio", "visual") and data.n_classes == 6
    actors = {s: set() for s in ("train", "val", "test")}
    total = 0
    for s, split in data.splits.items():
        total += len(split["label"])
        assert split["audio"].shape[1:] == (16000,) and split["visual"].shape[1:] == (10, N_FEATURES)
    assert total == len(clips)
    # rows back to clips: the labels of each split are those of its actors' clips
    cfg = LoadConfig(prepared=str(out), fold=fold, split="actors")
    folds = actor_folds({int(a): s for a, s in json.loads((out / "index.json").read_text())["actors"].items()},
                        cfg.n_folds, cfg.split_seed, cfg.val_share)[fold]
    for s in actors:
        rows = [i for i, c in enumerate(clips) if int(c[:4]) in folds[s]]
        actors[s] = {int(clips[i][:4]) for i in rows}
        assert data.splits[s]["label"].tolist() == raw["label"][rows].tolist()
    assert not (actors["train"] & actors["val"]) and not (actors["train"] & actors["test"])
    assert not (actors["val"] & actors["test"])
    train = data.splits["train"]
    assert train["audio"].mean().item() == pytest.approx(0, abs=1e-4)
    assert train["audio"].std().item() == pytest.approx(1, abs=1e-3)
    train_rows = [i for i, c in enumerate(clips) if int(c[:4]) in folds["train"]]
    n = raw["n_frames"][train_rows]
    valid = torch.arange(10)[None] < n[:, None]
    frames = train["visual"][valid]
    informative = raw["visual"][train_rows][valid].std(0) > 1e-6
    assert frames.mean(0).abs().max().item() < 1e-3
    assert torch.allclose(frames.std(0)[informative], torch.ones(int(informative.sum())), atol=1e-3)
    for s in data.splits:                                   # padding stays 0 after z-scoring
        rows = [i for i, c in enumerate(clips) if int(c[:4]) in folds[s]]
        pad = torch.arange(10)[None] >= raw["n_frames"][rows][:, None]
        assert not data.splits[s]["visual"][pad].any()


def test_registered_as_a_prepared_dataset_with_its_families(prepared, tmp_path, monkeypatch):
    assert DATASETS["cremad_faces"] is SPEC and SPEC.root_env == "MCR_CREMAD_ROOT"
    assert SPEC.encoder_families(LoadConfig()) == {"audio": "waveform", "visual": "sequence"}
    assert "waveform" in ENCODER_FAMILIES
    assert dataset_modalities("cremad_faces", {}) == ("audio", "visual")
    # the stage's entry point (prepare + fingerprint), then the registry's loader checks it
    root = write_cremad_faces(tmp_path / "CREMA-D")
    monkeypatch.setenv("MCR_CREMAD_ROOT", str(root))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepare_stage("cremad_faces", {**SMALL, "max_frames": 4}, tmp_path / "out")
    fingerprint.verify(tmp_path / "out", "cremad_faces")
    data = load_dataset("cremad_faces", {"prepared": str(tmp_path / "out"), "fold": 1, "split": "actors"})
    assert data.encoders == {"audio": "waveform", "visual": "sequence"}
    assert data.splits["test"]["visual"].shape[1:] == (4, N_FEATURES)


def test_bad_input_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("MCR_CREMAD_ROOT", raising=False)
    with pytest.raises(DataError, match="no data root: set data.cremad_faces.root or .*MCR_CREMAD_ROOT"):
        prepare(PrepareConfig(**SMALL), tmp_path / "out")
    with pytest.raises(DataError, match="CREMA-D at .*missing: AudioWAV"):
        (tmp_path / "empty").mkdir()
        prepare(PrepareConfig(root=str(tmp_path / "empty"), **SMALL), tmp_path / "out")
    root = write_cremad_faces(tmp_path / "CREMA-D")
    with pytest.raises(DataError, match="'no-such-weights' are neither"):
        prepare(PrepareConfig(root=str(root), **{**SMALL, "weights": "no-such-weights"}), tmp_path / "out")
    with pytest.raises(DataError, match="no complete prepared CREMA-D faces folder .*features.pt"):
        load(LoadConfig(prepared=str(tmp_path / "out")))
    from mcrlib.config import ConfigError, from_dict
    with pytest.raises(ConfigError, match="thresholds"):
        from_dict(PrepareConfig, {"thresholds": [0.6, 0.7]}, "data.cremad_faces")
    with pytest.raises(ConfigError, match="device"):
        from_dict(PrepareConfig, {"device": "tpu"}, "data.cremad_faces")
    assert from_dict(PrepareConfig, {"thresholds": [0.5, 0.6, 0.7]}).thresholds == (0.5, 0.6, 0.7)
