"""One run on several processes (torchrun), detected from torchrun's environment.

`torchrun --nproc_per_node=W -m mcrlib.cli config.yaml` (or `mcr-run` under torchrun) sets
RANK, WORLD_SIZE and LOCAL_RANK; `setup(device)` then joins the process group (nccl on CUDA,
gloo on CPU) once, and every other function here is a no-op in a single process. See
docs/distributed.md for what is exact under data parallelism and what is not.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def env_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main() -> bool:
    """Rank 0, or the only process: the one that writes checkpoints and the run cache."""
    return rank() == 0


def local_device(device: torch.device) -> torch.device:
    """Under torchrun each process takes the GPU of its LOCAL_RANK; a CPU device is unchanged."""
    if device.type == "cuda" and env_world_size() > 1 and device.index is None:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def setup(device: torch.device) -> None:
    """Join torchrun's process group (once) when WORLD_SIZE > 1; nothing otherwise."""
    if env_world_size() <= 1 or not dist.is_available() or dist.is_initialized():
        return
    device = local_device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        dist.init_process_group("nccl", device_id=device)
    else:
        dist.init_process_group("gloo")


def teardown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def shard(batch: dict[str, torch.Tensor], batch_size: int) -> dict[str, torch.Tensor]:
    """This rank's rows of a global batch: rows [r*B/W, (r+1)*B/W). Every rank draws the same
    global batch order from (seed, epoch), so a resumed run sees exactly the same shards."""
    if not is_distributed():
        return batch
    local = batch_size // world_size()
    lo = rank() * local
    return {k: v[lo:lo + local] for k, v in batch.items()}


def _coalesced_all_reduce_mean(tensors: list[torch.Tensor]) -> None:
    """tensors <- their mean over ranks, in one collective (per dtype)."""
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for t in tensors:
        by_dtype.setdefault(t.dtype, []).append(t)
    for group in by_dtype.values():
        flat = torch.cat([t.reshape(-1) for t in group])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= dist.get_world_size()
        offset = 0
        for t in group:
            t.copy_(flat[offset:offset + t.numel()].view_as(t))
            offset += t.numel()


def average_gradients(parameters) -> None:
    """Each parameter's .grad <- its mean over ranks (the gradient of the global batch's mean
    loss when every rank's loss is a mean over its equally large shard).

    Which parameters have a gradient can differ between ranks: the pretrained speech encoders'
    LayerDrop and SpecAugment draw per rank, so a layer skipped on one rank is trained on
    another. The ranks first agree on the set (one small all-reduce of a flag per parameter); a
    parameter with a gradient on some rank gets a zero gradient where it has none (its shard did
    not reach it, as DDP's find_unused_parameters counts it), and one without a gradient on any
    rank keeps none, so the optimizer skips it exactly as in a single process."""
    if not is_distributed():
        return
    params = [p for p in parameters if p.requires_grad]
    if not params:
        return
    device = next((p.grad.device for p in params if p.grad is not None), params[0].device)
    used = torch.tensor([p.grad is not None for p in params], dtype=torch.uint8, device=device)
    dist.all_reduce(used, op=dist.ReduceOp.MAX)
    grads = []
    for p, on_some_rank in zip(params, used.tolist()):   # .tolist(): a CPU-GPU sync point, once a step
        if on_some_rank:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            grads.append(p.grad)
    if grads:
        _coalesced_all_reduce_mean(grads)


def average_tensors(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """The mean over ranks of each (float) tensor, e.g. the epoch's training-loss means."""
    if not is_distributed() or not tensors:
        return tensors
    out = [t.detach().clone().float() for t in tensors]
    _coalesced_all_reduce_mean(out)
    return out


def broadcast_parameters(module: torch.nn.Module) -> None:
    """Rank 0's parameters and buffers on every rank (they are equal already when every rank
    seeds alike; this makes it so, as DDP does at construction)."""
    if not is_distributed():
        return
    for t in [*module.parameters(), *module.buffers()]:
        dist.broadcast(t.data, src=0)


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Rank 0's buffers on every rank (the state a model or method keeps from its own batches,
    e.g. running statistics), so that evaluation and the checkpoint agree on every rank (DDP's
    broadcast_buffers, once per epoch instead of once per forward)."""
    if not is_distributed():
        return
    for t in module.buffers():
        dist.broadcast(t.data, src=0)


def gather_objects(obj) -> list:
    """[rank 0's obj, rank 1's, ...] on every rank; [obj] in a single process."""
    if not is_distributed():
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out
