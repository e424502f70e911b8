"""Distributed data parallel helpers (``torchrun``; gloo on CPU, NCCL on GPU).

The loop does not wrap modules in ``DistributedDataParallel``. Instead every rank computes the
gradients of its share of the global batch and :func:`average_gradients` all-reduces them (in
buckets) before clipping and the optimizer step. This keeps tasks free to call any module method
(``encode_motion``, ``decode``...) rather than only ``forward``, works the same for several optimizer
groups (GANs) and for gradient accumulation, and is deterministic. The price is no overlap of
communication with the backward pass, which matters little on one node at our model sizes.

Outside ``torchrun`` (no ``WORLD_SIZE``) everything here is a no-op for a single process.
:class:`EpochSampler` is the data order every rank agrees on (seeded, sharded, resumable).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterable, Mapping

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from vasa.errors import VasaError


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits: ``rank`` of ``world_size``, its ``device`` and the backend."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None
    owns_group: bool = False  # True when init_distributed created the process group

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cuda"`` without a GPU is a user error."""
    if device not in ("auto", "cpu", "cuda"):
        raise VasaError(f"device must be 'auto', 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise VasaError("device='cuda' but no CUDA GPU is visible: use device='auto' or 'cpu'")
    if device == "cpu" or not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", local_rank % torch.cuda.device_count())


def to_device(x: Any, device: torch.device) -> Any:
    """Move the tensors in a (nested dict/list/tuple) batch to ``device``."""
    if isinstance(x, torch.Tensor):
        return x.to(device, non_blocking=True)
    if isinstance(x, Mapping):
        return {k: to_device(v, device) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(to_device(v, device) for v in x)
    return x


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment (if any).

    Uses NCCL when the chosen device is CUDA, gloo otherwise. A group created by the caller beforehand
    is reused and left open.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world <= 1 and not (dist.is_available() and dist.is_initialized()):
        return DistInfo(device=dev)
    owns = False
    if not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=timedelta(minutes=30),
                                device_id=dev if dev.type == "cuda" else None)
        owns = True
    return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank,
                    device=dev, backend=dist.get_backend(), owns_group=owns)


def shutdown(info: DistInfo) -> None:
    """Destroy the process group if :func:`init_distributed` created it."""
    if info.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.distributed:
        dist.barrier()


def all_reduce_mean_(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """In-place mean over ranks (no-op for one process)."""
    if info.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor.div_(info.world_size)
    return tensor


def broadcast_object(obj: Any, info: DistInfo, src: int = 0) -> Any:
    """``obj`` from rank ``src`` on every rank."""
    if not info.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_object(obj: Any, info: DistInfo) -> list[Any]:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank."""
    if not info.distributed:
        return [obj]
    out: list[Any] = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


@torch.no_grad()
def broadcast_module(module: nn.Module, info: DistInfo, buffers_only: bool = False) -> None:
    """Copy rank 0's parameters (and buffers) to every rank."""
    if not info.distributed:
        return
    tensors = list(module.buffers()) if buffers_only else [*module.parameters(), *module.buffers()]
    for t in tensors:
        dist.broadcast(t.data, src=0)


def _buckets(params: list[torch.Tensor], bucket_bytes: int) -> Iterable[list[torch.Tensor]]:
    bucket: list[torch.Tensor] = []
    size = 0
    for p in params:
        if bucket and (size + p.numel() * p.element_size() > bucket_bytes
                       or p.dtype != bucket[0].dtype or p.device != bucket[0].device):
            yield bucket
            bucket, size = [], 0
        bucket.append(p)
        size += p.numel() * p.element_size()
    if bucket:
        yield bucket


@torch.no_grad()
def average_gradients(params: list[nn.Parameter], info: DistInfo, bucket_mb: float = 25.0) -> None:
    """Average ``.grad`` over ranks in flat buckets.

    A parameter that got a gradient on some rank but not on this one is given a zero gradient first,
    so every rank ends with the same set of gradients (and the same optimizer update).
    """
    if not info.distributed or not params:
        return
    has = torch.tensor([p.grad is not None for p in params], dtype=torch.uint8, device=info.device)
    dist.all_reduce(has, op=dist.ReduceOp.MAX)
    for p, h in zip(params, has.tolist()):
        if h and p.grad is None:
            p.grad = torch.zeros_like(p)
    grads = [p.grad for p in params if p.grad is not None]
    for bucket in _buckets(grads, int(bucket_mb * 2**20)):
        flat = torch.cat([g.reshape(-1) for g in bucket])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat.div_(info.world_size)
        offset = 0
        for g in bucket:
            n = g.numel()
            g.copy_(flat[offset:offset + n].view_as(g))
            offset += n


class EpochSampler:
    """A deterministic, resumable batch order, sharded by rank.

    Epoch ``e`` visits ``permutation(seed, e)`` of the dataset in optimizer steps of ``step_batch =
    micro_batch * grad_accum * world_size`` samples; the tail that does not fill a step is dropped, so
    every step has the same size. Step ``s`` of an epoch uses ``perm[s*step_batch:(s+1)*step_batch]``,
    cut into ``grad_accum`` micro-batches of ``micro_batch * world_size``, of which rank ``r`` takes
    slice ``r``. Hence the global batch (and the data order) is the same for any split of it into
    ranks and accumulation steps, and a position ``(epoch, index)`` pins the order exactly.
    """

    def __init__(self, size: int, seed: int, micro_batch: int, grad_accum: int, rank: int = 0,
                 world_size: int = 1):
        self.size, self.seed = int(size), int(seed)
        self.micro_batch, self.grad_accum = int(micro_batch), int(grad_accum)
        self.rank, self.world_size = int(rank), int(world_size)
        self.step_batch = self.micro_batch * self.grad_accum * self.world_size
        if self.size < self.step_batch:
            raise VasaError(f"the dataset has {self.size} samples, fewer than one optimizer step needs "
                            f"({self.step_batch} = batch_size x grad_accum x world size): lower batch_size")
        self.steps_per_epoch = self.size // self.step_batch

    def permutation(self, epoch: int) -> np.ndarray:
        """The sample order of ``epoch`` (same on every rank)."""
        return np.random.default_rng([self.seed, epoch]).permutation(self.size)

    def micro_batches(self, epoch: int, first_step: int = 0) -> list[list[int]]:
        """This rank's micro-batches (dataset indices) from step ``first_step`` of ``epoch`` on."""
        perm = self.permutation(epoch)
        out: list[list[int]] = []
        share = self.micro_batch * self.world_size
        for s in range(first_step, self.steps_per_epoch):
            chunk = perm[s * self.step_batch:(s + 1) * self.step_batch]
            for a in range(self.grad_accum):
                micro = chunk[a * share:(a + 1) * share]
                out.append(micro[self.rank * self.micro_batch:(self.rank + 1) * self.micro_batch].tolist())
        return out
