"""FLOPs of a training step counted on the meta device equal the real step's count, for every
method that trains (benchmarks/meta_step.py: the paper rehearsal counts every run this way)."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.meta_step import MetaStepCounter, meta_step_flops
from mcrlib.build import build, resolve
from mcrlib.config import MethodConfig, ModelConfig, RunConfig, TrainConfig
from mcrlib.data import TensorSplits
from mcrlib.methods import METHODS
from mcrlib.train import Trainer

SHAPES = {"audio": (1, 64, 33), "visual": (1, 8, 8)}    # AV-Digits' samples: ResNet-18 encoders
TRAINING = sorted(name for name, spec in METHODS.items() if spec.trains and name != "unimodal")


def _data(n_classes=4):
    gen = torch.Generator().manual_seed(0)

    def split(n):
        out = {m: torch.randn(n, *s, generator=gen) for m, s in SHAPES.items()}
        out["label"] = torch.arange(n) % n_classes       # every class present
        return out
    return TensorSplits(splits={"train": split(16), "val": split(8), "test": split(8)},
                        modalities=tuple(SHAPES), n_classes=n_classes)


def _trainer(method, data, params=None):
    config = RunConfig(model=ModelConfig(), method=MethodConfig(name=method, params=params or {}), seed=0,
                       train=TrainConfig(device="cpu", progress=False, batch_size=8))
    resolved = resolve(config, data=data)
    model, built = build(resolved, data)
    return Trainer(model, built, resolved.config.train, seed=0, task=data.task)


def _real_flops(trainer, data, batch):
    trainer.model.train()
    trainer.method.train()
    trainer.method.on_epoch_start(trainer.epoch_state(data, 0))
    with FlopCounterMode(display=False) as counter:
        trainer.step(batch, 0)
    return counter.get_total_flops()


@pytest.mark.parametrize("method", TRAINING + ["unimodal"])
def test_meta_count_equals_the_real_steps_count(method):
    data = _data()
    params = {"modality": "audio"} if method == "unimodal" else None
    batch = {k: v[:8] for k, v in data.splits["train"].items()}
    real = _real_flops(_trainer(method, data, params), data, batch)
    meta, _ = meta_step_flops(_trainer(method, data, params), data, batch)
    assert real > 0 and meta == real


def test_the_meta_count_at_twice_the_batch_and_the_optimizer_steps_the_meta_parameters():
    """Joint training's FLOPs are linear in the batch; MCR's grow faster (its supervised contrastive
    term compares every pair of the batch), which is why the rehearsal counts at the paper's batch
    rather than scaling a small batch's count."""
    data = _data()
    half, full = ({k: v[:n] for k, v in data.splits["train"].items()} for n in (4, 8))
    trainer = _trainer("mcr", data)
    mcr_half, _ = meta_step_flops(trainer, data, half)
    stepped = [p for group in trainer.optimizer.param_groups for p in group["params"]]
    assert all(p.is_meta for p in stepped) and {id(p) for p in trainer.model.parameters()} <= {id(p) for p in stepped}
    assert any(trainer.optimizer.state[p] for p in stepped)     # Adam's state exists: the step ran
    mcr_full, _ = meta_step_flops(_trainer("mcr", data), data, full)
    assert mcr_full > 2 * mcr_half
    joint = [meta_step_flops(_trainer("joint", data), data, b)[0] for b in (half, full)]
    assert joint[1] == 2 * joint[0]


def test_scalar_reads_answer_a_meta_tensors_values_with_ones():
    t = torch.empty(3, device="meta")
    with MetaStepCounter() as reads:
        assert bool((t > 0).all()) is True and t.sum().item() == 1.0
        assert t.tolist() == [1.0, 1.0, 1.0]
        counts = torch.bincount(torch.empty(5, dtype=torch.long, device="meta"), minlength=4)
    assert counts.shape == (4,) and counts.is_meta and reads.reads == 4
    with pytest.raises(RuntimeError, match="meta"):   # outside the mode a meta tensor has no value
        t.sum().item()


def test_a_constant_made_by_full_is_read_back_through_reductions_and_copies():
    """torchaudio's Conformer reads its padding mask's length as int(lengths.max()), where our
    Conformer head made `lengths` by torch.full: the meta step must read the real length."""
    with MetaStepCounter() as reads:
        lengths = torch.full((3,), 199, dtype=torch.long, device="meta")
        assert int(torch.max(lengths).item()) == 199 and lengths.tolist() == [199, 199, 199]
        assert (lengths + 1).max().item() == 1          # arithmetic does not keep it: the default answer
    assert reads.reads == 3


def test_the_conformer_head_counts_on_the_meta_device_attention_included():
    """On the CPU, attention runs as aten._scaled_dot_product_flash_attention_for_cpu, which
    torch's FlopCounterMode does not count (torch 2.11): the real step's count misses attention.
    On the meta device attention runs as its math decomposition (bmm), which it counts. Every
    other operation counts the same on both."""
    from mcrlib.models.conformer_head import ConformerHead
    head = ConformerHead(in_dim=16, bottleneck=8, d_model=16, n_layers=1, n_heads=2, conv_kernel=3, dropout=0.0)
    x = torch.randn(2, 7, 16)
    with FlopCounterMode(display=False) as real:
        head(x).sum().backward()
    head.to("meta")
    with FlopCounterMode(display=False) as meta, MetaStepCounter():
        head(x.to("meta")).sum().backward()
    real, meta = real.get_flop_counts()["Global"], meta.get_flop_counts()["Global"]
    assert {str(op): n for op, n in meta.items() if str(op) != "aten.bmm"} == {str(op): n for op, n in real.items()}
    # attention over 7 steps, 2 heads of 8: QK^T and AV forward (2 bmm), their 4 gradients backward
    batch_heads, steps, dim = 2 * 2, 7, 8
    assert meta[torch.ops.aten.bmm] == 6 * 2 * batch_heads * steps * steps * dim
