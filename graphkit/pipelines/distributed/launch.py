r"""Process-group set-up for runs launched by ``torchrun``.

``torchrun --nproc-per-node N -m graphkit run ...`` starts ``N`` processes
with ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT`` set. :func:`session` joins them into one process group:
gloo on CPU, NCCL on GPUs (each process on ``cuda:LOCAL_RANK``). Every
call has the timeout ``parallel.timeout_s``, so if a rank dies the others
fail with a :class:`~graphkit.pipelines.distributed.comm.RankFailureError` within
that time rather than hang.
"""
from __future__ import annotations

import datetime
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator, TypeVar

import torch
import torch.distributed as dist

from graphkit.pipelines.distributed.comm import Comm, RankFailureError

log = logging.getLogger(__name__)
T = TypeVar('T')

__all__ = ['DistContext', 'session', 'launched', 'env_rank',
           'first_per_machine']

_ENV = ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')


def launched() -> bool:
    r"""Whether the launcher variables (``RANK``, ``WORLD_SIZE``,
    ``MASTER_ADDR``, ``MASTER_PORT``) are set."""
    return all(k in os.environ for k in _ENV)


def env_rank() -> int:
    r"""This process's rank from the environment (0 outside a launch)."""
    return int(os.environ.get('RANK', '0'))


@dataclass
class DistContext:
    r"""One rank's view of the process group."""
    rank: int
    world_size: int
    local_rank: int
    backend: str
    device: torch.device
    comm: Comm
    owns_group: bool

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _init(backend: str | None, timeout_s: float,
          device: torch.device) -> DistContext:
    if not dist.is_available():
        raise RuntimeError("torch.distributed is not available in this "
                           "PyTorch build")
    owns = False
    if not dist.is_initialized():
        missing = [k for k in _ENV if k not in os.environ]
        if missing:
            raise ValueError(
                f"parallel.mode needs a distributed launch, e.g. "
                f"'torchrun --nproc-per-node 2 -m graphkit run ... "
                f"--parallel ddp'; the environment lacks "
                f"{', '.join(missing)}")
        if backend is None:
            backend = 'nccl' if device.type == 'cuda' else 'gloo'
        if backend not in ('gloo', 'nccl'):
            raise ValueError(f"parallel.backend must be 'gloo' or 'nccl', "
                             f"got '{backend}'")
        if backend == 'nccl':
            torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', '0')))
        dist.init_process_group(
            backend, timeout=datetime.timedelta(seconds=timeout_s))
        owns = True
    rank, world = dist.get_rank(), dist.get_world_size()
    local = int(os.environ.get('LOCAL_RANK', rank))
    backend = dist.get_backend()
    if device.type == 'cuda':
        device = torch.device('cuda', local)
    if backend == 'gloo' and device.type != 'cpu':
        raise ValueError(f"the gloo backend works on CPU tensors; got "
                         f"device {device} (use parallel.backend=nccl)")
    return DistContext(rank, world, local, backend, device,
                       Comm(rank, world, timeout_s,
                            device if backend == 'nccl' else 'cpu'), owns)


@contextmanager
def session(backend: str | None, timeout_s: float,
            device: torch.device) -> Iterator[DistContext]:
    r"""Joins (or reuses) the default process group for the duration of
    the block and leaves it afterwards if it created it. A distributed error
    escaping the block is re-raised as a
    :class:`~graphkit.pipelines.distributed.comm.RankFailureError` naming the rank."""
    if timeout_s <= 0:
        raise ValueError(f"parallel.timeout_s must be positive, got "
                         f"{timeout_s}")
    ctx = _init(backend, timeout_s, device)
    log.info('rank %d of %d joined (%s on %s)', ctx.rank, ctx.world_size,
             ctx.backend, ctx.device)
    failed = False
    try:
        yield ctx
    except RankFailureError:
        failed = True
        raise
    except dist.DistError as err:
        failed = True
        raise RankFailureError(
            f"rank {ctx.rank} of {ctx.world_size}: a distributed call "
            f"failed: {err}. Another rank probably exited or stalled "
            f"(parallel.timeout_s = {timeout_s:g} s).") from err
    finally:
        if ctx.owns_group and not failed:
            dist.destroy_process_group()


def first_per_machine(ctx: DistContext, fn: Callable[[], T], what: str) -> T:
    r"""Runs ``fn`` on the first process of each machine (``LOCAL_RANK``
    0) while the others wait, then on the others: for set-up that writes
    shared files, such as copying a dataset and writing PyG's processed
    files, so no two processes write the same file. If ``fn`` fails on a
    first process, every process stops at once: that one with its own
    error, the others with an error naming ``what``."""
    if ctx.world_size == 1:
        return fn()
    first = ctx.local_rank == 0
    out, error = None, None
    if first:
        try:
            out = fn()
        except Exception as err:   # re-raised below, after telling the rest
            error = err
    ok = torch.tensor([0.0 if error else 1.0], device=ctx.device)
    ctx.comm.all_reduce(ok, 'setup', op=dist.ReduceOp.MIN)
    if error is not None:
        raise error
    if ok.item() < 1:
        raise RuntimeError(f"rank {ctx.rank}: {what} failed on the first "
                           f"process of a machine; its error is in that "
                           f"process's output")
    return out if first else fn()
