"""The pretrained-encoder ("Conformer") family: backbones (wav2vec 2.0, HuBERT, ViViT) + Conformer head.

No weights can be downloaded here: every backbone is a tiny randomly initialised model of the
same `transformers` classes, and the checkpoint path is tested with a folder written by
`save_pretrained`.
"""
import socket
import subprocess
import sys

import pytest
import torch

from mcrlib.errors import DataError, WeightsError
from mcrlib.models.conformer_head import ConformerHead
from mcrlib.models.pretrained import load_backbone
from mcrlib.models.speech_encoder import SpeechConformerEncoder
from mcrlib.models.vivit_encoder import VideoConformerEncoder

SPEECH = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37,
          "conv_dim": (16, 16), "conv_kernel": (3, 3), "conv_stride": (2, 2), "num_feat_extract_layers": 2,
          "num_conv_pos_embeddings": 8, "num_conv_pos_embedding_groups": 2,
          "layerdrop": 0.0}   # LayerDrop (0.1 by default) would skip whole layers at random in training
# wav2vec2-large-robust's layout: layer-normed feature encoder, pre-norm ("stable") transformer
WAV2VEC2 = {**SPEECH, "feat_extract_norm": "layer", "do_stable_layer_norm": True}
VIVIT = {"image_size": 32, "num_frames": 4, "tubelet_size": [2, 8, 8], "hidden_size": 32,
         "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 37}
HEAD = {"bottleneck": 8, "d_model": 16, "n_layers": 2, "n_heads": 2, "conv_kernel": 3}


def _speech(backbone="wav2vec2", seed=0, **kwargs):
    torch.manual_seed(seed)
    config = kwargs.pop("random_config", WAV2VEC2 if backbone == "wav2vec2" else SPEECH)
    return SpeechConformerEncoder(backbone=backbone, random_config=config, head=HEAD, **kwargs)


def _video(seed=0, **kwargs):
    torch.manual_seed(seed)
    enc = VideoConformerEncoder(random_config=kwargs.pop("random_config", VIVIT), head=HEAD, **kwargs)
    with torch.no_grad():      # ViViT initialises its position embeddings to zero
        enc.vivit.embeddings.position_embeddings.normal_()
    return enc


def _same_for_sample0(model, x, replace):
    """Whether model's output for sample 0 is unchanged when the other samples are replaced."""
    other = x.clone()
    other[1:] = replace
    with torch.no_grad():
        return torch.allclose(model(x)[0], model(other)[0], atol=1e-5)


# --- the Conformer head -----------------------------------------------------------------------

def test_head_architecture_defaults_are_the_release():
    head = ConformerHead(in_dim=1408)
    assert head.out_dim == 512
    assert tuple(head.conv.weight.shape) == (50, 1408, 1)
    assert (head.proj.in_features, head.proj.out_features) == (50, 512)
    layers = head.conformer.conformer_layers
    assert len(layers) == 5
    assert layers[0].self_attn.num_heads == 8 and layers[0].self_attn.embed_dim == 512
    assert layers[0].ffn1.sequential[1].out_features == 4 * 512
    assert layers[0].conv_module.sequential[2].kernel_size == (31,)
    assert layers[0].self_attn_dropout.p == 0.1


def test_head_shapes_and_batch_independence():
    torch.manual_seed(0)
    head = ConformerHead(in_dim=12, **HEAD).eval()
    x = torch.randn(3, 7, 12)
    assert head(x).shape == (3, 16)
    assert _same_for_sample0(head, x, torch.randn(2, 7, 12))
    # the release's quirk (time-first into a batch-first Conformer) would fail that check
    def quirk(inp):
        h = head.proj(head.conv(inp.transpose(1, 2)).transpose(1, 2)).transpose(0, 1)   # (T, B, D)
        return head.conformer(h, torch.full((h.shape[0],), h.shape[1]))[0].mean(1)
    assert not _same_for_sample0(quirk, x, torch.randn(2, 7, 12))


def test_head_lengths():
    torch.manual_seed(0)
    head = ConformerHead(in_dim=12, **HEAD).eval()
    x = torch.randn(2, 7, 12)
    with torch.no_grad():
        assert torch.allclose(head(x, torch.tensor([7, 7])), head(x), atol=1e-6)
        assert torch.allclose(head(x, torch.tensor([4, 4])), head(x[:, :4]), atol=1e-6)
    # with a 1-wide depthwise convolution (the only part that sees neighbouring steps unmasked),
    # a sample's padding changes nothing: masked attention, mean over its valid steps only
    torch.manual_seed(0)
    pointwise = ConformerHead(in_dim=12, **{**HEAD, "conv_kernel": 1}).eval()
    padded = x.clone()
    padded[0, 3:] = torch.randn(4, 12) * 10
    lengths = torch.tensor([3, 7])
    with torch.no_grad():
        out = pointwise(x, lengths)
        assert torch.allclose(pointwise(padded, lengths), out, atol=1e-5)
        assert torch.allclose(out[0], pointwise(x[:1, :3])[0], atol=1e-5)
        assert not torch.allclose(pointwise(padded)[0], pointwise(x)[0], atol=1e-3)
    with pytest.raises(ValueError, match="lengths"):
        head(x, torch.tensor([0, 7]))
    with pytest.raises(ValueError, match=r"\(B, T, 12\)"):
        head(torch.randn(2, 7, 5))
    with pytest.raises(ValueError, match="divisible"):
        ConformerHead(in_dim=4, d_model=10, n_heads=3)


# --- backbones -----------------------------------------------------------------------------

def test_load_backbone_arguments():
    with pytest.raises(ValueError, match="exactly one of checkpoint"):
        load_backbone("hubert")
    with pytest.raises(ValueError, match="exactly one of checkpoint"):
        load_backbone("hubert", checkpoint="x", random_config={})
    with pytest.raises(ValueError, match="unknown backbone"):
        load_backbone("bert", random_config={})
    import transformers
    for kind, cls in [("wav2vec2", transformers.Wav2Vec2Model), ("hubert", transformers.HubertModel),
                      ("vivit", transformers.VivitModel)]:
        model = load_backbone(kind, random_config=VIVIT if kind == "vivit" else SPEECH)
        assert type(model) is cls and model.config.hidden_size == 32


def test_local_folder_loads_the_saved_weights(tmp_path):
    torch.manual_seed(0)
    saved = load_backbone("hubert", random_config=SPEECH)
    saved.save_pretrained(tmp_path / "hubert")
    loaded = load_backbone("hubert", checkpoint=str(tmp_path / "hubert"))
    reference = saved.state_dict()
    assert set(loaded.state_dict()) == set(reference)
    assert all(torch.equal(v, reference[k]) for k, v in loaded.state_dict().items())
    enc = SpeechConformerEncoder(backbone="hubert", checkpoint=str(tmp_path / "hubert"), head=HEAD)
    assert torch.equal(enc.backbone.encoder.layers[1].attention.k_proj.weight,
                       reference["encoder.layers.1.attention.k_proj.weight"])


@pytest.fixture
def no_network(monkeypatch, tmp_path):
    """Offline mode over an empty cache, and any connection attempt fails the test."""
    import huggingface_hub.constants as constants

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    # huggingface_hub reads both variables when it is imported: set what it read
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))


def _check_weights_message(err, checkpoint):
    message = str(err)
    assert isinstance(err, DataError)
    assert repr(checkpoint) in message
    assert "local folder" in message and "config.json" in message
    hub_id = "<hub id>" if checkpoint.startswith("/") else checkpoint
    assert f"hf download {hub_id} --local-dir <folder>" in message
    assert "HF_HUB_OFFLINE=1" in message


@pytest.mark.parametrize("kind", ["wav2vec2", "vivit"])
def test_unavailable_weights_are_a_weights_error(no_network, tmp_path, kind):
    for checkpoint in [str(tmp_path / "missing" / "folder"), "facebook/wav2vec2-large-robust"]:
        with pytest.raises(WeightsError) as caught:
            load_backbone(kind, checkpoint=checkpoint)
        _check_weights_message(caught.value, checkpoint)
        assert ("there is no folder" in str(caught.value)) == checkpoint.startswith("/")
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError) as caught:       # a folder without the files
        load_backbone(kind, checkpoint=str(tmp_path / "empty"))
    _check_weights_message(caught.value, str(tmp_path / "empty"))


def test_modules_import_transformers_lazily():
    code = ("import sys, mcrlib.models.pretrained, mcrlib.models.conformer_head, "
            "mcrlib.models.speech_encoder, mcrlib.models.vivit_encoder; "
            "assert 'transformers' not in sys.modules and 'torchaudio' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


# --- speech encoder ------------------------------------------------------------------------

@pytest.mark.parametrize("backbone", ["wav2vec2", "hubert"])
def test_speech_encoder_shapes_and_gradients(backbone):
    enc = _speech(backbone)
    assert enc.out_dim == 16
    x = torch.randn(3, 400)
    out = enc(x)
    assert out.shape == (3, 16)
    out.square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.head.parameters())
    for layer in enc.backbone.encoder.layers:
        for name, p in layer.named_parameters():
            assert p.grad is not None, name
            if name == "attention.k_proj.bias":
                # The key bias adds q_i . b to every logit of query i, which the softmax cancels:
                # its gradient is zero in exact arithmetic, and only rounding (which differs
                # between CPUs) leaves a value of about 1e-11. Assert the exact-arithmetic truth.
                assert p.grad.abs().max() < 1e-6 * layer.attention.v_proj.bias.grad.abs().max(), name
            else:
                assert p.grad.abs().max() > 1e-6, name
    assert enc.backbone.feature_projection.projection.weight.grad.abs().sum() > 0
    frozen = list(enc.backbone.feature_extractor.parameters())
    assert frozen and all(not p.requires_grad and p.grad is None for p in frozen)


def test_speech_feature_encoder_can_be_trained():
    enc = _speech("hubert", freeze_feature_encoder=False)
    enc(torch.randn(2, 400)).sum().backward()
    assert all(p.grad is not None for p in enc.backbone.feature_extractor.parameters())


@pytest.mark.parametrize("backbone", ["wav2vec2", "hubert"])
def test_keep_layers_truncates(backbone):
    config = {**(WAV2VEC2 if backbone == "wav2vec2" else SPEECH), "num_hidden_layers": 3}
    enc = _speech(backbone, random_config=config, keep_layers=2).eval()
    assert len(enc.backbone.encoder.layers) == 2 and enc.backbone.config.num_hidden_layers == 2
    torch.manual_seed(0)
    full = load_backbone(backbone, random_config=config).eval()
    x = torch.randn(2, 400)
    with torch.no_grad():
        hidden = full(input_values=x, output_hidden_states=True).hidden_states
        expected = hidden[2] if backbone == "hubert" else full.encoder.layer_norm(hidden[2])
        assert torch.allclose(enc.backbone(input_values=x).last_hidden_state, expected, atol=1e-5)
    assert len(_speech(backbone, keep_layers=12).backbone.encoder.layers) == 2     # keeps all
    with pytest.raises(ValueError, match="keep_layers"):
        _speech(backbone, keep_layers=0)


def test_speech_encoder_is_batch_independent():
    enc = _speech("wav2vec2").eval()
    x = torch.randn(3, 400)
    assert _same_for_sample0(enc, x, torch.randn(2, 400))


def test_speech_encoder_rejects_other_inputs():
    with pytest.raises(ValueError, match="wav2vec2"):
        SpeechConformerEncoder(backbone="vivit", random_config=VIVIT)
    with pytest.raises(ValueError, match=r"\(B, L\)"):
        _speech("hubert")(torch.randn(2, 1, 400))


# --- video encoder -------------------------------------------------------------------------

def test_video_encoder_shapes_and_gradients():
    enc = _video()
    assert enc.out_dim == 16 and enc.vivit.pooler is None
    x = torch.randint(0, 256, (2, 4, 3, 32, 32), dtype=torch.uint8)
    out = enc(x)
    assert out.shape == (2, 16)
    out.square().sum().backward()
    missing = [name for name, p in enc.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not missing


def test_video_uint8_and_float_frames_agree_and_match_the_processor():
    from transformers import VivitImageProcessor

    enc = _video().eval()
    x = torch.randint(0, 256, (2, 4, 3, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.allclose(enc(x), enc(x.float() / 255), atol=1e-5)
    processor = VivitImageProcessor(do_resize=False, do_center_crop=False)
    frames = list(x[0].permute(0, 2, 3, 1).numpy())          # T frames of (H, W, C)
    expected = processor(frames, return_tensors="pt").pixel_values     # (1, T, C, H, W)
    assert torch.allclose(enc.pixel_values(x[:1]), expected, atol=1e-5)
    assert torch.allclose(enc.pixel_values(x[:1].float() / 255), expected, atol=1e-5)
    assert expected.min() < -2.9 and expected.max() > 0.9      # [0, 255] -> [-3, 1]


def test_video_encoder_is_batch_independent():
    enc = _video().eval()
    x = torch.rand(3, 4, 3, 32, 32)
    assert _same_for_sample0(enc, x, torch.rand(2, 4, 3, 32, 32))


def test_video_other_clip_sizes():
    enc = _video()
    with pytest.raises(ValueError, match=r"num_frames=4, image_size=32"):
        enc(torch.rand(1, 6, 3, 32, 32))
    with pytest.raises(ValueError, match=r"num_frames=4, image_size=32"):
        enc(torch.rand(1, 4, 3, 48, 48))
    resized = _video(num_frames=6, image_size=48)
    assert resized(torch.rand(2, 6, 3, 48, 48)).shape == (2, 16)
    assert resized.vivit.embeddings.position_embeddings.shape == (1, 1 + 3 * 6 * 6, 32)
    with pytest.raises(ValueError, match=r"num_frames=6, image_size=48"):
        resized(torch.rand(1, 4, 3, 32, 32))
    with pytest.raises(ValueError, match="tubelets"):
        _video(num_frames=5)


def test_video_position_resampling_keeps_the_grid_order():
    torch.manual_seed(0)
    enc = VideoConformerEncoder(random_config=VIVIT, head=HEAD)
    spatial = torch.randn(1, 1, 4, 4, 32)          # the same positions for both tubelet times
    grid = spatial.expand(1, 2, 4, 4, 32).reshape(1, 32, 32)
    with torch.no_grad():
        enc.vivit.embeddings.position_embeddings.copy_(torch.cat([torch.ones(1, 1, 32), grid], 1))
    enc._resample_positions(8, (32, 32))            # 2 -> 4 tubelet times, same image size
    new = enc.vivit.embeddings.position_embeddings
    assert new.shape == (1, 1 + 4 * 16, 32) and torch.equal(new[:, :1], torch.ones(1, 1, 32))
    assert torch.allclose(new[:, 1:].reshape(1, 4, 4, 4, 32), spatial.expand(1, 4, 4, 4, 32), atol=1e-6)
    enc.eval()
    assert enc(torch.rand(1, 8, 3, 32, 32)).shape == (1, 16)
