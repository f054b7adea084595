r"""Data-parallel mini-batch training (``parallel.mode = ddp``).

Every rank holds a replica of the model, wrapped in
:class:`~torch.nn.parallel.DistributedDataParallel`. An epoch's training
seeds are shuffled with the epoch's generator (the same on every rank) and
cut into *global* batches of ``train.batch_size`` seeds; rank :math:`r`
takes the :math:`r`-th of :math:`P` near-equal shards of each global batch
and samples its neighbourhood. The gradient all-reduce (a DDP
communication hook, so its bytes are counted) sums

.. math::
    \mathbf{g} = \sum_r \frac{n_r}{n}\,\nabla \bar{\ell}_r,

with :math:`\bar\ell_r` the mean loss of rank :math:`r`'s :math:`n_r`
seeds and :math:`n = \sum_r n_r`: exactly the gradient of the mean loss
over the global batch, even when it does not split evenly. A last global
batch with fewer than :math:`P` seeds is dropped, so every rank takes the
same number of steps.
"""
from __future__ import annotations

import logging
from typing import Any, Iterator

import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn import Module
from torch.nn.parallel import DistributedDataParallel

from graphkit.data import loaders
from graphkit.pipelines.distributed.comm import Comm

log = logging.getLogger(__name__)

__all__ = ['global_batches', 'shard', 'ReplicatedModel', 'ShardedNodeTask',
           'wrap_ddp', 'expected_bytes']


def global_batches(seeds: Tensor, batch_size: int, world_size: int,
                   generator: torch.Generator) -> list[Tensor]:
    r"""The epoch's global batches: ``seeds`` shuffled by ``generator``
    and cut into batches of ``batch_size``; a last batch with fewer than
    ``world_size`` seeds is dropped."""
    if batch_size < world_size:
        raise ValueError(f"ddp: train.batch_size ({batch_size}) must be at "
                         f"least the number of processes ({world_size})")
    perm = seeds[torch.randperm(seeds.numel(), generator=generator)]
    out = list(perm.split(batch_size))
    if out and out[-1].numel() < world_size:
        out.pop()
    return out


def shard(batch: Tensor, rank: int, world_size: int) -> Tensor:
    r"""Rank ``rank``'s part of a global batch (near-equal contiguous
    shards)."""
    return torch.tensor_split(batch, world_size)[rank]


class _HookState:
    def __init__(self, comm: Comm) -> None:
        self.comm = comm
        self.weight = 1.0


def _weighted_allreduce(state: _HookState, bucket):
    r"""DDP communication hook: scales this rank's gradient bucket by
    :math:`n_r / n` and sums it over ranks (ring all-reduce bytes counted
    under ``grad``)."""
    buf = bucket.buffer()
    buf.mul_(state.weight)
    p = state.comm.world_size
    state.comm.count('grad', 2 * (p - 1) / p * buf.numel() *
                     buf.element_size())
    fut = dist.all_reduce(buf, async_op=True).get_future()
    return fut.then(lambda f: f.value()[0])


class ReplicatedModel(DistributedDataParallel):
    r"""DDP that also exposes the wrapped model's ``data_keys`` (extra
    graph inputs read by the task)."""

    @property
    def data_keys(self) -> tuple[str, ...]:
        return getattr(self.module, 'data_keys', ())


class ShardedNodeTask:
    r"""A node task whose :meth:`train_batches` yields this rank's shard of
    every global batch; everything else is the wrapped task's."""
    def __init__(self, task, comm: Comm, hook: _HookState) -> None:
        self._task, self._comm, self._hook = task, comm, hook

    def __getattr__(self, name: str) -> Any:
        return getattr(self._task, name)

    def train_batches(self, generator: torch.Generator) -> Iterator[Any]:
        t, comm = self._task, self._comm
        seeds = t.masks['train'].nonzero().view(-1)
        batches = global_batches(seeds, t.batch_size, comm.world_size,
                                 generator)
        if not batches:
            raise ValueError(f"ddp: {seeds.numel()} training seeds give no "
                             f"batch for {comm.world_size} processes")
        mine = [shard(b, comm.rank, comm.world_size) for b in batches]
        # every shard but the last has the same size, so one loader yields
        # them in order
        size = mine[0].numel()
        loader = loaders.neighbor_loader(t.data, torch.cat(mine), size,
                                         t.num_neighbors, shuffle=False,
                                         generator=generator)
        for b, part, batch in zip(batches, mine, loader):
            self._hook.weight = part.numel() / b.numel()
            yield batch


def expected_bytes(model: Module, num_seeds: int, batch_size: int,
                   world_size: int) -> dict[str, float]:
    r"""Bytes all ranks send per epoch for the gradient all-reduce: a ring
    all-reduce of the :math:`|\theta|` trainable parameters makes each rank
    send :math:`2(P-1)/P \cdot |\theta| b`, so all ranks together send

    .. math::
        V_{\text{ddp}} = 2 (P - 1)\, |\theta|\, b \cdot T

    per epoch, with :math:`T` the number of global batches (optimiser
    steps). It does not depend on the graph."""
    params = sum(p.numel() * p.element_size() for p in model.parameters()
                 if p.requires_grad)
    steps = num_seeds // batch_size + (num_seeds % batch_size >= world_size)
    total = 2 * (world_size - 1) * params * steps
    return {'total': float(total), 'pipeline': 0.0, 'halo': 0.0,
            'allreduce': float(total)}


def wrap_ddp(model: Module, task, comm: Comm,
             device: torch.device) -> tuple[ReplicatedModel,
                                            ShardedNodeTask]:
    r"""The DDP replica of ``model`` (parameters broadcast from rank 0,
    weighted all-reduce hook) and the sharded task."""
    if getattr(task, 'kind', None) != 'node' or not task.batch_size:
        raise ValueError(
            f"parallel.mode=ddp shards neighbour-sampled node batches; it "
            f"needs a node task with train.batch_size set (got a "
            f"{getattr(task, 'kind', '?')} task, batch_size="
            f"{task.batch_size}). For full-graph training use "
            f"parallel.mode=graph or pipeline")
    state = _HookState(comm)
    if comm.rank == 0:   # DDP broadcasts rank 0's parameters and buffers
        comm.count('setup', (comm.world_size - 1) * sum(
            t.numel() * t.element_size()
            for t in list(model.parameters()) + list(model.buffers())))
    ddp = ReplicatedModel(model, device_ids=[device.index]
                          if device.type == 'cuda' else None)
    ddp.register_comm_hook(state, _weighted_allreduce)
    return ddp, ShardedNodeTask(task, comm, state)
