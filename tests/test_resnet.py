"""ResNet-18 encoders: torchvision's network at width 64, the same topology at other widths."""
import torch
from torchvision.models import resnet18

from mcrlib.config import ModelConfig
from mcrlib.data.tensors import TensorSplits
from mcrlib.models import FramesEncoder, ImageEncoder, build_model


def n_params(module):
    return sum(p.numel() for p in module.parameters())


def test_width_64_is_torchvisions_resnet18_on_one_channel():
    enc = ImageEncoder(in_channels=1, width=64)
    reference = resnet18(weights=None)
    # only conv1 (1 instead of 3 input channels) and the removed classifier differ
    expected = n_params(reference) - 64 * 3 * 7 * 7 + 64 * 1 * 7 * 7 - n_params(reference.fc)
    assert n_params(enc) == expected
    assert enc(torch.randn(2, 1, 64, 33)).shape == (2, 512)


def test_narrow_resnet18_keeps_the_topology():
    enc = ImageEncoder(in_channels=1, width=8, small_input=True)
    blocks = [m for m in enc.modules() if type(m).__name__ == "BasicBlock"]
    assert len(blocks) == 8 and enc.out_dim == 64
    assert enc(torch.randn(3, 1, 8, 8)).shape == (3, 64)


def test_frames_encoder_pools_over_time_and_normalises_uint8():
    enc = FramesEncoder(width=8).eval()
    frames = torch.randint(0, 256, (2, 3, 3, 32, 32), dtype=torch.uint8)
    per_frame = torch.stack([enc.trunk((frames[:, t].float() / 255 - enc.mean) / enc.std) for t in range(3)], 1)
    torch.testing.assert_close(enc(frames), per_frame.mean(1), rtol=1e-5, atol=1e-6)


def test_build_model_picks_encoders_by_sample_shape():
    splits = {s: {"audio": torch.randn(4, 1, 64, 33), "visual": torch.randn(4, 1, 8, 8),
                  "video": torch.zeros(4, 2, 3, 32, 32, dtype=torch.uint8), "vec": torch.randn(4, 10),
                  "label": torch.zeros(4, dtype=torch.long)} for s in ("train", "val", "test")}
    data = TensorSplits(splits, modalities=("audio", "visual", "video", "vec"), n_classes=3)
    model = build_model(ModelConfig(resnet_width=8), data)
    kinds = {m: type(e).__name__ for m, e in model.encoders.items()}
    assert kinds == {"audio": "ImageEncoder", "visual": "ImageEncoder", "video": "FramesEncoder", "vec": "MLPEncoder"}
    out = model({k: v for k, v in splits["train"].items()})
    assert out.logits.shape == (4, 3)


def test_narrow_trunks_stay_off_the_channels_last_path():
    """Widths 2 and 4 in channels-last crashed torch 2.11's CPU backward on one machine
    (docs/cpu-heap-corruption.md): below width 8 the encoder keeps the plain layout."""
    for width, channels_last in ((2, False), (4, False), (8, True), (64, True)):
        enc = ImageEncoder(in_channels=1, width=width, small_input=True)
        conv = next(m for m in enc.modules() if isinstance(m, torch.nn.Conv2d) and m.weight.shape[1] > 1
                    and m.kernel_size == (3, 3))
        assert conv.weight.is_contiguous(memory_format=torch.channels_last) == channels_last, width
        assert conv.weight.is_contiguous() != channels_last, width


def test_guarded_narrow_backward_runs_in_a_separate_process():
    """The guarded path (plain layout at widths 2 and 4) trained through the model code, in a
    subprocess: a heap corruption would kill that process, not the test session."""
    import subprocess
    import sys
    code = ("import torch; from mcrlib.models import ImageEncoder; torch.set_num_threads(1)\n"
            "for w in (2, 4):\n"
            "    enc = ImageEncoder(in_channels=1, width=w)\n"
            "    for _ in range(3): enc(torch.randn(32, 1, 64, 33)).pow(2).mean().backward()\n"
            "print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]
