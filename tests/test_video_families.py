"""Video families: Video Swin-T for frame stacks (Sth-Sth), and the training-time frame
augmentation (RandomResizedCrop + flip) the Trainer applies."""
import pytest
import torch
from torchvision.models.video import swin3d_t

from mcrlib.augment import augment_frames
from mcrlib.config import ConfigError, ModelConfig, TrainConfig, from_dict
from mcrlib.data.tensors import TensorSplits
from mcrlib.methods import METHODS, method_params
from mcrlib.models import SwinVideoEncoder, build_model
from mcrlib.train import Trainer


def frames_data(n=8, t=4, size=32, classes=2):
    g = torch.Generator().manual_seed(0)
    splits = {s: {"rgb": torch.randint(0, 256, (n, t, 3, size, size), dtype=torch.uint8, generator=g),
                  "flow": torch.randint(0, 256, (n, t, 3, size, size), dtype=torch.uint8, generator=g),
                  "label": torch.arange(n) % classes} for s in ("train", "val", "test")}
    return TensorSplits(splits, modalities=("rgb", "flow"), n_classes=classes)


def test_swin_encoder_is_torchvisions_swin3d_t_without_its_head():
    enc = SwinVideoEncoder()
    reference = swin3d_t(weights=None)
    n = lambda m: sum(p.numel() for p in m.parameters())
    assert n(enc) == n(reference) - n(reference.head)
    assert enc.out_dim == 768


def test_swin_encoder_normalises_uint8_frames_and_takes_batch_time_channels():
    enc = SwinVideoEncoder().eval()
    frames = torch.randint(0, 256, (2, 4, 3, 32, 32), dtype=torch.uint8)
    clips = (frames.float() / 255).transpose(1, 2)
    expected = enc.swin((clips - enc.mean) / enc.std)
    torch.testing.assert_close(enc(frames), expected)
    assert expected.shape == (2, 768)


def test_model_config_picks_the_video_family():
    data = frames_data()
    assert type(build_model(ModelConfig(resnet_width=8), data).encoders["rgb"]).__name__ == "FramesEncoder"
    model = build_model(ModelConfig(video_encoder="swin3d_t"), data)
    assert all(isinstance(model.encoders[m], SwinVideoEncoder) for m in ("rgb", "flow"))
    with pytest.raises(ConfigError, match="model.video_encoder"):
        from_dict(ModelConfig, {"video_encoder": "vit"}, "model")


def test_swin_model_trains_end_to_end():
    data = frames_data(n=4)
    model = build_model(ModelConfig(video_encoder="swin3d_t"), data)
    method = METHODS["mcr"](method_params("mcr", {"copies": 2}), model=model)
    cfg = TrainConfig(batch_size=4, max_epochs=1, warmup_epochs=0, progress=False, device="cpu")
    before = model.encoders["flow"].swin.patch_embed.proj.weight.clone()
    fit = Trainer(model, method, cfg).fit(data)
    assert len(fit.history) == 1 and torch.isfinite(torch.tensor(fit.history[0]["train_loss_total"]))
    assert not torch.equal(before, model.encoders["flow"].swin.patch_embed.proj.weight)


def test_augmentation_shares_one_box_and_flip_across_a_samples_modalities():
    batch = {"rgb": torch.randint(0, 256, (6, 3, 3, 24, 24), dtype=torch.uint8),
             "audio": torch.randn(6, 1, 20, 20), "label": torch.arange(6)}
    batch["flow"] = batch["rgb"].clone()
    torch.manual_seed(0)
    out = augment_frames(batch, ("rgb", "flow", "audio"))
    assert torch.equal(out["rgb"], out["flow"])                 # same box, same flip
    assert out["rgb"].shape == batch["rgb"].shape and out["rgb"].dtype == torch.uint8
    assert out["audio"] is batch["audio"] and not torch.equal(out["rgb"], batch["rgb"])
    torch.manual_seed(0)
    assert torch.equal(augment_frames(batch, ("rgb", "flow", "audio"))["rgb"], out["rgb"])  # global RNG


def test_full_box_crop_leaves_each_clip_as_is_or_flipped_whole():
    batch = {"video": torch.randint(0, 256, (16, 2, 3, 8, 8), dtype=torch.uint8), "label": torch.arange(16)}
    torch.manual_seed(1)
    out = augment_frames(batch, ("video",), scale=(1.0, 1.0), ratio=(1.0, 1.0))
    flipped = [torch.equal(o, c.flip(-1)) for o, c in zip(out["video"], batch["video"])]
    kept = [torch.equal(o, c) for o, c in zip(out["video"], batch["video"])]
    assert all(f or k for f, k in zip(flipped, kept)) and any(flipped) and any(kept)


def test_trainer_augments_training_batches_only(monkeypatch):
    import mcrlib.train as train
    seen = []
    monkeypatch.setattr(train, "augment_frames", lambda batch, modalities: seen.append(len(batch["label"])) or batch)
    data = frames_data(n=8, size=16)
    model = build_model(ModelConfig(resnet_width=4), data)
    method = METHODS["joint"](method_params("joint", {}), model=model)
    for augment, calls in ((False, 0), (True, 2)):
        seen.clear()
        cfg = TrainConfig(batch_size=4, max_epochs=1, warmup_epochs=0, progress=False, device="cpu", augment_frames=augment)
        Trainer(model, method, cfg).fit(data)
        assert seen == [4] * calls
