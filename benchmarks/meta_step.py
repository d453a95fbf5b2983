"""FLOPs of a training step counted on the meta device: every operation runs its meta kernel
(shapes and dtypes only, no arithmetic), so a step of a 300M-parameter model at the paper's batch
is counted in seconds, where the real step takes minutes on 2 CPU cores.

    flops = meta_step_flops(trainer, data, batch)

The trainer is built as a run builds it (on the CPU); its model, method and optimizer move to the
meta device, the method's epoch hook runs there, and `Trainer.step`, the trainer's own, runs once
under `MetaStepCounter`. It counts the FLOPs by torch.utils.flop_counter's rules (FlopCounterMode's,
without its module tracker, whose autograd hooks fail under MMPareto's autograd.grad on the HF
encoders), and it answers what a meta tensor cannot, having no value: a scalar read (`.item()`,
`if tensor:`, such as the trainer's finiteness check or a method's branch on a statistic) gives
the value of a tensor made by torch.full (a sequence length), else 1 (True); boolean-mask indexing
assumes every element set (HF Wav2Vec2's SpecAugment). A method whose FLOPs depend on such a
branch is counted along that branch.

Attention is counted here where a real CPU step misses it: on the CPU, attention without dropout
(an encoder in eval mode: Uni-Pre's frozen encoders, AGM's mono-modal passes; the pretrained
encoders) runs as aten._scaled_dot_product_flash_attention_for_cpu, which torch's FlopCounterMode
does not count (torch 2.11); on the meta device attention runs as its math decomposition (bmm),
which it counts. On a GPU the fused kernels are counted by torch's own formula for them.
Wav2Vec2 and HuBERT train with LayerDrop (each transformer layer skipped with probability 0.1 per
step): a step's count depends on the draw, which every count here takes from the same seed.
benchmarks/paper_rehearsal.py checks the count against the real step's where it measures one
(`meta_count_equals_real`); tests/test_meta_step.py checks it for every training method.
"""
from __future__ import annotations

from collections import Counter

import torch
import torch.fx.experimental._config as fx_config
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.weak import WeakTensorKeyDictionary
from torch.utils.flop_counter import flop_registry

META = torch.device("meta")
aten = torch.ops.aten


# Operations whose output holds the single value of their input where that input is one constant
# (a tensor made by torch.full): its reductions, copies and views. MetaStepCounter follows a constant
# through them, so that a length made by torch.full((batch,), steps) and read back with
# int(lengths.max()) (torchaudio's Conformer builds its padding mask so) reads `steps`.
_KEEPS_CONSTANT = {aten.max.default, aten.min.default, aten.amax.default, aten.amin.default,
                   aten._to_copy.default, aten.clone.default, aten.expand.default, aten.view.default,
                   aten.unsqueeze.default, aten.squeeze.dim, aten.select.int, aten.slice.Tensor,
                   aten.alias.default, aten.detach.default, aten.lift_fresh.default}


class MetaStepCounter(TorchDispatchMode):
    """Counts a meta-device step's FLOPs (torch.utils.flop_counter's rules: `flops`,
    `total_flops()`), and answers what a meta tensor cannot give, because it depends on values,
    counting the answers (`reads`). Unlike FlopCounterMode it does not count an operation without
    a rule through that operation's decomposition; none of this project's steps needs it (where a
    real step was counted by FlopCounterMode, the meta count is never lower: rehearsal's
    `meta_count_equals_real`). A tensor made by torch.full keeps its value through
    `_KEEPS_CONSTANT`, and reading it gives that value. Otherwise: a scalar read (aten._local_scalar_dense, behind `.item()`,
    `bool(t)`, `float(t)`) is 1 of its dtype; a copy off the meta device (`.cpu()`, `.tolist()`)
    is a tensor of ones of its shape there; `torch.bincount` (no meta kernel: its length depends
    on the values) is ones of length `minlength`. These feed a method's statistics (a coefficient,
    a histogram), whose FLOPs are negligible beside the step's; what the step computes with them
    keeps its shapes."""

    def __init__(self):
        super().__init__()
        self.reads = 0
        self.flops: Counter = Counter()                # operator -> FLOPs (flop_counter's rules)
        self.constants = WeakTensorKeyDictionary()    # meta tensor -> the one value it holds

    def total_flops(self) -> int:
        return int(sum(self.flops.values()))

    def __enter__(self):
        # Boolean-mask indexing (HF Wav2Vec2's SpecAugment: hidden[mask] = embedding) needs
        # nonzero, whose meta kernel is off by default; on, it assumes every element is set.
        self._nonzero = fx_config.meta_nonzero_assume_all_nonzero
        fx_config.meta_nonzero_assume_all_nonzero = True
        return super().__enter__()

    def __exit__(self, *exc):
        fx_config.meta_nonzero_assume_all_nonzero = self._nonzero
        return super().__exit__(*exc)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = self._answer(func, args, kwargs or {})
        # FLOPs by torch.utils.flop_counter's own rules (FlopCounterMode's), without its module
        # tracker, whose autograd hooks fail under a method's autograd.grad (MMPareto) with HF models
        rule = flop_registry.get(func._overloadpacket)
        if rule is not None:
            self.flops[func._overloadpacket] += rule(*args, **(kwargs or {}), out_val=out)
        return out

    def _answer(self, func, args, kwargs):
        first = args[0] if args else None
        if func is aten.full.default:
            out = func(*args, **kwargs)
            if out.is_meta:
                self.constants[out] = args[1]
            return out
        if not (isinstance(first, torch.Tensor) and first.is_meta):
            return func(*args, **kwargs)
        constant = self.constants.get(first)
        if func is aten._local_scalar_dense.default:
            self.reads += 1
            if constant is not None:
                return constant
            return True if first.dtype is torch.bool else (1.0 if first.dtype.is_floating_point else 1)
        if func is aten._to_copy.default and kwargs.get("device") is not None \
                and torch.device(kwargs["device"]).type != "meta":
            self.reads += 1
            return torch.full(first.shape, 1 if constant is None else constant,
                              dtype=kwargs.get("dtype") or first.dtype, device=kwargs["device"])
        if func is aten.bincount.default:
            self.reads += 1
            weights = kwargs.get("weights", args[1] if len(args) > 1 else None)
            minlength = kwargs.get("minlength", args[2] if len(args) > 2 else 0)
            return torch.ones(max(int(minlength), 1), device=META,
                              dtype=torch.int64 if weights is None else weights.dtype)
        out = func(*args, **kwargs)
        if constant is not None and func in _KEEPS_CONSTANT and isinstance(out, torch.Tensor) and out.is_meta:
            self.constants[out] = constant
        return out


def meta_step_flops(trainer, data, batch: dict, *, epoch: int = 0) -> tuple[int, int]:
    """(FLOPs of one training step, scalar reads answered) on the meta device. `trainer` is
    consumed: its model, method and optimizer are left on the meta device."""
    def named(trainer):
        return {**dict(trainer.model.named_parameters(prefix="model")),
                **dict(trainer.method.named_parameters(prefix="method"))}
    before = named(trainer)
    # Module.to makes new Parameter objects when the device changes: the optimizer is pointed at
    # them, so that its step runs on the meta device too (its state is empty before a first step)
    trainer.model.to(META)
    trainer.method.to(META)
    moved = {id(before[name]): p for name, p in named(trainer).items()}
    for group in trainer.optimizer.param_groups:
        group["params"] = [moved.get(id(p), p) for p in group["params"]]
        if group.get("fused"):
            group["fused"] = False     # fused kernels exist for real devices only; same arithmetic
    trainer.device = META
    meta_batch = {k: v.to(META) for k, v in batch.items()}
    # Wav2Vec2 and HuBERT train with LayerDrop (transformers draws torch.rand([]) on the CPU per
    # layer and step; 0.1 in their configs): a step's FLOPs depend on the draw. The same seed for
    # every count makes the draws the same, so two methods' counts differ by the method only.
    with torch.random.fork_rng(devices=[]), MetaStepCounter() as reads:
        torch.manual_seed(0)
        trainer.model.train()
        trainer.method.train()
        trainer.method.on_epoch_start(trainer.epoch_state(data, epoch))
        before = reads.total_flops()   # the epoch hook's own passes (a method's prototypes) are not the step's
        trainer.step(meta_batch, 0)
        flops = reads.total_flops() - before
    return flops, reads.reads
