"""AVE for the pretrained family: the ResNet route's videos and lists, raw waveforms and ten
frames, audio z-scored with the train split's statistics."""
import json

import pytest
import torch

from mcrlib.data import ave, ave_pretrained, media
from tests.fixtures.ave import SHORT_EVENT, kept, write_ave


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    base = tmp_path_factory.mktemp("ave")
    root = write_ave(base)
    cfg = ave_pretrained.PrepareConfig(root=str(root), frame_size=16, audio_seconds=1.0, sample_rate=8000)
    return ave_pretrained.prepare(cfg, base / "prepared", progress=False)


def test_waveforms_and_ten_frames_per_event(prepared):
    data = ave_pretrained.load(ave_pretrained.LoadConfig(prepared=str(prepared)))
    ids = json.loads((prepared / "ids.json").read_text())
    report = json.loads((prepared / "report.json").read_text())
    # the one-second event (8 frames at the fixture's 8 fps) cannot give 10 frames: skipped, said why
    short = [s for s in report["skipped"] if s["id"] in SHORT_EVENT]
    assert [s["reason"] for s in short] == ["too_few_frames"] and report["dataset"] == "ave_pretrained"
    for split in ("train", "val", "test"):
        tensors = data.splits[split]
        assert ids[split] == [e[1] for e in kept(split) if e[1] not in SHORT_EVENT]
        assert tensors["audio"].shape == (len(ids[split]), 8000)          # 1 s at 8 kHz, no spectrogram
        assert tensors["visual"].shape == (len(ids[split]), 10, 3, 16, 16)
    audio = data.splits["train"]["audio"]
    assert abs(audio.mean().item()) < 1e-4 and abs(audio.std().item() - 1) < 1e-3   # train statistics


def test_the_waveform_is_what_the_resnet_route_makes_its_spectrogram_of(prepared, tmp_path):
    """Same events, same segment, same tiling: only the representation differs."""
    root = write_ave(tmp_path)
    resnet = ave.prepare(ave.PrepareConfig(root=str(root), frame_size=16, audio_seconds=1.0, sample_rate=8000),
                         tmp_path / "resnet", progress=False)
    spectrograms = torch.load(resnet / "train.pt")["audio"]
    waves = torch.load(prepared / "train.pt")["audio"]          # as prepared, before load's z-score
    row = {video: i for i, video in enumerate(json.loads((resnet / "ids.json").read_text())["train"])}
    mine = json.loads((prepared / "ids.json").read_text())["train"]
    assert len(mine) == len(waves) >= 3
    for video, wave in zip(mine, waves):
        assert torch.allclose(media.log_psd(wave, 8000, 512, 353).unsqueeze(0), spectrograms[row[video]])
    assert ave.SPEC.encoder_families(ave.LoadConfig()) == {"audio": "resnet2d", "visual": "frames"}
    assert ave_pretrained.SPEC.encoder_families(ave_pretrained.LoadConfig()) == {"audio": "waveform", "visual": "frames"}
