"""The MultiBench-style Transformer encoder of the MOSI / MOSEI runs."""
import pytest
import torch
from torch import nn

from mcrlib.models.transformer import TransformerEncoder


def _encoder(seed=0, **kwargs):
    torch.manual_seed(seed)
    return TransformerEncoder(in_dim=kwargs.pop("in_dim", 20), **kwargs)


def test_architecture_is_multibench_transformer():
    enc = _encoder()
    assert enc.out_dim == 40
    assert isinstance(enc.conv, nn.Conv1d) and enc.conv.bias is None
    assert tuple(enc.conv.weight.shape) == (40, 20, 1)
    assert len(enc.transformer.layers) == 5
    layer = enc.transformer.layers[0]
    assert layer.self_attn.num_heads == 5 and layer.self_attn.embed_dim == 40
    assert layer.linear1.out_features == 2048 and layer.dropout.p == 0.1
    assert layer.norm_first is False and layer.self_attn.batch_first is False
    # release checkpoints (FactorCL_Uni.enc.*) use these parameter names
    keys = set(enc.state_dict())
    assert {"conv.weight", "transformer.layers.0.self_attn.in_proj_weight",
            "transformer.layers.4.linear2.weight"} <= keys


def test_shapes():
    enc = _encoder(in_dim=300).eval()
    assert enc(torch.randn(3, 7, 300)).shape == (3, 40)
    assert enc(torch.randn(1, 50, 300)).shape == (1, 40)
    assert enc.sequence(torch.randn(3, 7, 300)).shape == (7, 3, 40)


def test_constructor_is_keyword_only_and_checks_heads():
    with pytest.raises(TypeError):
        TransformerEncoder(20)
    with pytest.raises(ValueError, match="divisible"):
        TransformerEncoder(in_dim=20, d_model=42)


@torch.no_grad()
def test_feature_is_the_output_at_the_last_time_step():
    enc = _encoder().eval()
    x = torch.randn(4, 6, 20)
    full = enc.transformer(enc.conv(x.transpose(1, 2)).permute(2, 0, 1))   # computed by hand
    feat = enc(x)
    torch.testing.assert_close(feat, full[-1])
    assert not torch.allclose(feat, full[0], atol=1e-4)
    assert not torch.allclose(feat, full.mean(0), atol=1e-4)
    # No positional encoding (as in MultiBench): reordering the earlier steps leaves the last
    # step's output unchanged, while changing the last step changes it.
    shuffled = torch.cat([x[:, torch.tensor([3, 0, 4, 2, 1])], x[:, 5:]], dim=1)
    torch.testing.assert_close(enc(shuffled), feat, atol=1e-5, rtol=1e-5)
    changed = x.clone()
    changed[:, -1] += 1.0
    assert not torch.allclose(enc(changed), feat, atol=1e-4)
    # samples do not interact (batch axis is not the attention axis)
    torch.testing.assert_close(enc(x[1:2]), feat[1:2], atol=1e-5, rtol=1e-5)


def test_deterministic_for_a_seed():
    x = torch.randn(2, 5, 20)
    a, b, c = _encoder(seed=1), _encoder(seed=1), _encoder(seed=2)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name
    assert not torch.equal(a.conv.weight, c.conv.weight)
    a.eval()
    with torch.no_grad():
        assert torch.equal(a(x), a(x))
    a.train()
    torch.manual_seed(5)
    y1 = a(x)
    torch.manual_seed(5)
    y2 = a(x)
    torch.testing.assert_close(y1, y2, atol=0, rtol=0)
    # A loss that depends on the features. Not `y1.sum()`: the output is a LayerNorm's, whose sum
    # over features equals the sum of its bias whatever the input, so that gradient is zero in
    # exact arithmetic and only rounding (which differs between CPUs) makes it non-zero.
    weights = torch.randn(y1.shape, generator=torch.Generator().manual_seed(0))
    (y1 * weights).sum().backward()
    grad = a.conv.weight.grad
    assert grad is not None
    # Orders of magnitude above rounding: the gradient is as large as the weights' own scale allows.
    assert grad.abs().max() > 1e-3 * a.conv.weight.abs().max()
