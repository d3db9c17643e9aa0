"""Data-parallel training across processes with torch.distributed, launched by torchrun.

`torchrun --nproc_per_node N -m apucodec train ...` (or `--nnodes M --rdzv-endpoint host:port` across machines)
starts N processes with RANK, WORLD_SIZE, LOCAL_RANK and MASTER_ADDR/PORT set; `setup()` reads them and joins the
group: NCCL when the processes drive CUDA GPUs, gloo on CPUs. Without those variables training stays one plain process
and every helper here is a no-op, so single-device code pays nothing.

The helpers exist for the quantizer, whose codebooks are buffers learned by EMA rather than by gradients: DDP would
average gradients but leave each rank's codebooks to drift apart on its own data. Summing the EMA statistics over
ranks makes every rank run the same k-means step on the global batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Group:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None  # None: a single process, no group
    owned: bool = False         # setup() created the group, so teardown() destroys it

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


def setup(device_name: str) -> tuple[Group, str]:
    """Join the process group torchrun described, if any; returns the group and the device this rank should use
    (cuda:LOCAL_RANK under NCCL)."""
    if not launched_by_torchrun():
        return Group(), device_name
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
    backend = "nccl" if use_cuda else "gloo"
    if use_cuda:
        torch.cuda.set_device(local_rank)
        device_name = f"cuda:{local_rank}"
    elif device_name == "auto":
        device_name = "cpu"
    owned = not dist.is_initialized()
    if owned:
        dist.init_process_group(backend=backend, rank=rank, world_size=world)
    return Group(rank, world, local_rank, backend, owned), device_name


def teardown(group: Group, finished: bool = True) -> None:
    """Destroy the group train() created. After a finished run every rank first waits for the others: a rank that
    destroys gloo's group while its peer is still in its last collective makes the peer abort at exit ("terminate
    called without an active exception", seen under load in CI). After a failure no barrier: the peer may never come."""
    if group.owned and dist.is_initialized():
        if finished and dist.get_world_size() > 1:
            dist.barrier()
        dist.destroy_process_group()


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_main() -> bool:
    return not active() or dist.get_rank() == 0


def all_reduce_sum_(tensor: torch.Tensor) -> torch.Tensor:
    """Sum `tensor` over ranks in place (no-op in a single process)."""
    if active():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_(tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Overwrite `tensor` on every rank with rank `src`'s (no-op in a single process)."""
    if active():
        dist.broadcast(tensor, src=src)
    return tensor


def gather_objects(obj: object) -> list[object]:
    """Every rank's `obj`, in rank order, on every rank ([obj] in a single process)."""
    if not active():
        return [obj]
    out: list[object] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: object, src: int = 0) -> object:
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """DDP around `model`, leaving its buffers (the codebooks) to the quantizer, which keeps them identical itself:
    DDP must not overwrite them with rank 0's copy every step, which would hide a desynchronisation instead of
    preventing it. torch 2.13 renamed the switch (`forward_sync_buffers`) and warns, on every rank, about the old one
    (`broadcast_buffers`); the new one still syncs once at init, which is harmless here since every rank builds or
    loads the same model."""
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel.__init__).parameters:
        return DistributedDataParallel(model, device_ids=ids, forward_sync_buffers=False)
    return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)
