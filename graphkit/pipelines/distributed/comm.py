r"""Byte-counting wrappers around every ``torch.distributed`` call.

Every collective and point-to-point call of the parallel trainers goes
through :class:`Comm`, which

* counts the bytes *this rank puts on the wire*, per tag (``halo``,
  ``pipeline``, ``grad``, ``output``, ``metrics``), under the usual
  algorithms: a point-to-point send counts its tensor's bytes
  :math:`n`; a ring all-reduce over :math:`P` ranks counts
  :math:`2(P-1)n/P`; a ring all-gather of :math:`n` bytes per rank counts
  :math:`(P-1)n`; a broadcast counts :math:`(P-1)n` at the root and 0
  elsewhere;
* turns a failed or timed-out call into a :class:`RankFailureError` that
  names this rank, the call, its peers and the configured timeout, so a
  dead rank makes every other rank exit with a clear message instead of
  hanging.
"""
from __future__ import annotations

import datetime
from collections import defaultdict
from typing import Callable, Sequence, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = ['Comm', 'RankFailureError']

T = TypeVar('T')


class RankFailureError(RuntimeError):
    r"""A collective or point-to-point call failed or timed out, usually
    because another rank exited or stalled."""


class Comm:
    r"""The communication layer of one rank.

    Args:
        rank (int): this process's global rank.
        world_size (int): number of processes.
        timeout_s (float): the limit of every call, in seconds.
        device (torch.device, optional): where the backend's tensors live
            (``cuda`` for NCCL). A collective on a tensor elsewhere (e.g. a
            CPU scalar of metrics) runs on a copy there, written back.
    """
    def __init__(self, rank: int, world_size: int, timeout_s: float,
                 device: torch.device | str = 'cpu') -> None:
        self.device = torch.device(device)
        self.rank, self.world_size = rank, world_size
        self.timeout_s = float(timeout_s)
        self.sent: dict[str, int] = defaultdict(int)
        self.calls: dict[str, int] = defaultdict(int)

    # -- accounting ----------------------------------------------------------
    def count(self, tag: str, nbytes: float) -> None:
        self.sent[tag] += int(round(nbytes))
        self.calls[tag] += 1

    def take(self) -> dict[str, int]:
        r"""Bytes sent per tag since the last call (and ``total``); resets
        the counters."""
        out = dict(self.sent)
        out['total'] = sum(self.sent.values())
        self.sent.clear()
        self.calls.clear()
        return out

    def _guard(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except (RuntimeError, dist.DistError) as err:
            if isinstance(err, RankFailureError):
                raise
            raise RankFailureError(
                f"rank {self.rank} of {self.world_size}: {what} failed: "
                f"{str(err).strip().splitlines()[0] if str(err) else err!r}. "
                f"Another rank probably exited or stalled (every call times "
                f"out after parallel.timeout_s = {self.timeout_s:g} s).") \
                from err

    @staticmethod
    def _size(group) -> int:
        return dist.get_world_size(group)

    # -- collectives ---------------------------------------------------------
    def all_reduce(self, tensor: Tensor, tag: str, group=None,
                   op=dist.ReduceOp.SUM) -> Tensor:
        p = self._size(group)
        if p == 1:
            return tensor
        self.count(tag, 2 * (p - 1) / p * _nbytes(tensor))
        buf = self._on_device(tensor)
        self._guard(f"all_reduce ({tag}, {_desc(tensor)})",
                    lambda: dist.all_reduce(buf, op=op, group=group))
        if buf is not tensor:
            tensor.copy_(buf)
        return tensor

    def broadcast(self, tensor: Tensor, src: int, tag: str,
                  group=None) -> Tensor:
        p = self._size(group)
        if p == 1:
            return tensor
        if self.rank == src:
            self.count(tag, (p - 1) * _nbytes(tensor))
        buf = self._on_device(tensor)
        self._guard(f"broadcast from rank {src} ({tag}, {_desc(tensor)})",
                    lambda: dist.broadcast(buf, src=src, group=group))
        if buf is not tensor:
            tensor.copy_(buf)
        return tensor

    def all_gather(self, tensor: Tensor, tag: str,
                   group=None) -> list[Tensor]:
        p = self._size(group)
        if p == 1:
            return [tensor]
        buf = self._on_device(tensor).contiguous()
        out = [torch.empty_like(buf) for _ in range(p)]
        self.count(tag, (p - 1) * _nbytes(tensor))
        self._guard(f"all_gather ({tag}, {_desc(tensor)})",
                    lambda: dist.all_gather(out, buf, group=group))
        return [o.to(tensor.device) for o in out]

    def _on_device(self, tensor: Tensor) -> Tensor:
        return (tensor if tensor.device == self.device
                else tensor.to(self.device))

    def barrier(self, group=None) -> None:
        self._guard('barrier', lambda: dist.barrier(group=group))

    # -- point to point ------------------------------------------------------
    def exchange(self, sends: Sequence[tuple[int, Tensor]],
                 recvs: Sequence[tuple[int, Tensor]], tag: str) -> None:
        r"""Sends and receives a batch of tensors at once
        (``batch_isend_irecv``) and waits for all of them. ``sends`` and
        ``recvs`` are ``(global peer rank, tensor)`` pairs; the received
        tensors are filled in place."""
        ops = []
        for peer, t in sends:
            self.count(tag, _nbytes(t))
            ops.append(dist.P2POp(dist.isend, t.contiguous(), peer))
        ops += [dist.P2POp(dist.irecv, t, peer) for peer, t in recvs]
        if not ops:
            return
        peers = sorted({p for p, _ in sends} | {p for p, _ in recvs})
        what = f"point-to-point {tag} exchange with rank(s) {peers}"

        def run() -> None:
            timeout = datetime.timedelta(seconds=self.timeout_s)
            for work in dist.batch_isend_irecv(ops):
                if not work.wait(timeout):
                    raise RuntimeError(f"no reply within {self.timeout_s:g}"
                                       f" s")
        self._guard(what, run)

    def send(self, tensor: Tensor, dst: int, tag: str):
        r"""Starts sending ``tensor`` to ``dst``; returns a handle to pass
        to :meth:`wait` (the tensor must stay alive until then)."""
        self.count(tag, _nbytes(tensor))
        tensor = tensor.contiguous()
        work = self._guard(f"send to rank {dst} ({tag}, {_desc(tensor)})",
                           lambda: dist.isend(tensor, dst))
        return (work, tensor, dst, tag)

    def wait(self, handles: Sequence) -> None:
        timeout = datetime.timedelta(seconds=self.timeout_s)
        for work, tensor, dst, tag in handles:
            def run(work=work) -> None:
                if not work.wait(timeout):
                    raise RuntimeError(f"no reply within {self.timeout_s:g}"
                                       f" s")
            self._guard(f"send to rank {dst} ({tag}, {_desc(tensor)})", run)

    def recv(self, tensor: Tensor, src: int, tag: str) -> Tensor:
        timeout = datetime.timedelta(seconds=self.timeout_s)

        def run() -> None:
            if not dist.irecv(tensor, src).wait(timeout):
                raise RuntimeError(f"no message within {self.timeout_s:g} s")
        self._guard(f"receive from rank {src} ({tag}, {_desc(tensor)})", run)
        return tensor


def _nbytes(t: Tensor) -> int:
    return t.numel() * t.element_size()


def _desc(t: Tensor) -> str:
    return f"{tuple(t.shape)} {str(t.dtype).replace('torch.', '')}"
