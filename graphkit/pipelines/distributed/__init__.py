r"""Distributed training on ``torch.distributed``: data-parallel (``ddp``),
graph-parallel (``graph``), the GNNPipe layer pipeline (``pipeline``) and
their ``hybrid``.

The strategies wrap a model built by the registry; model code never
imports ``torch.distributed``. :func:`parallelize` is the one entry point
of the training loop: it returns the model, strategy and task the loop
uses on this rank, and :meth:`Parallel.epoch_metrics` adds the epoch's
all-reduced loss and the bytes each rank sent.
"""
from __future__ import annotations

import logging
from pathlib import Path
import torch
import torch.distributed as dist
from torch.nn import Module

from graphkit.pipelines.distributed.comm import Comm, RankFailureError
from graphkit.pipelines.distributed.launch import (DistContext, env_rank,
                                                   first_per_machine,
                                                   launched, session)
from graphkit.pipelines.distributed.partition import partition_graph
from graphkit.utils.tensor import peak_memory_mb

log = logging.getLogger(__name__)

__all__ = ['MODES', 'Parallel', 'parallelize', 'session', 'DistContext',
           'Comm', 'RankFailureError', 'partition_graph', 'launched',
           'env_rank', 'check_mode', 'first_per_machine']

MODES = ('none', 'ddp', 'graph', 'pipeline', 'hybrid')


def check_mode(mode: str) -> str:
    key = mode.strip().lower()
    if key not in MODES:
        raise ValueError(f"Unknown parallel mode '{mode}'. Valid: "
                         f"{', '.join(MODES)}")
    return key


class Parallel:
    r"""What the training loop uses on this rank in a distributed mode."""
    def __init__(self, mode: str, ctx: DistContext, model: Module, strategy,
                 task, expected: dict[str, float] | None = None) -> None:
        self.mode, self.ctx = mode, ctx
        self.model, self.strategy, self.task = model, strategy, task
        self.expected = expected or {}

    @property
    def sharded_state(self) -> bool:
        r"""Whether ranks hold different state (pipeline stages), so each
        writes its own checkpoint."""
        return self.mode in ('pipeline', 'hybrid')

    def epoch_metrics(self, entry: dict[str, float]) -> dict[str, float]:
        r"""Adds to an epoch's entry: the loss averaged over ranks (ddp;
        the other modes already report the full-batch loss), this rank's
        training bytes (``bytes_sent``, and per kind ``bytes_<tag>``), the
        sum over ranks (``bytes_total``), the formula for the mode
        (``bytes_formula``), and the largest peak memory of any rank so far
        in MiB (``peak_memory_mb_max``: resident set on CPU, allocated
        memory on GPU)."""
        comm = self.ctx.comm
        sent = comm.take()
        train = {k: v for k, v in sent.items()
                 if k != 'total' and not k.startswith('eval_')}
        mine = float(sum(train.values()))
        vals = torch.tensor([entry['loss'] if self.mode == 'ddp' else 0.0,
                             mine], dtype=torch.float64)
        comm.all_reduce(vals, 'epoch_metrics')
        peak = torch.tensor([peak_memory_mb(self.ctx.device)],
                            dtype=torch.float64)
        comm.all_reduce(peak, 'epoch_metrics', op=dist.ReduceOp.MAX)
        comm.take()
        out = dict(entry)
        if self.mode == 'ddp':
            out['loss'] = float(vals[0]) / self.ctx.world_size
        out['bytes_sent'] = mine
        for k, v in train.items():
            out[f'bytes_{k}'] = float(v)
        out['bytes_total'] = float(vals[1])
        out['peak_memory_mb_max'] = float(peak)
        if self.expected:
            out['bytes_formula'] = self.expected['total']
        return out

    def checkpoint_file(self, path: Path) -> Path | None:
        r"""Where this rank writes its checkpoint (``None``: it does
        not)."""
        if self.ctx.is_main:
            return path
        if self.sharded_state:
            return path.with_name(f'{path.stem}.rank{self.ctx.rank}'
                                  f'{path.suffix}')
        return None

    def resume_file(self, path: Path) -> Path:
        r"""The checkpoint this rank resumes from."""
        return self.checkpoint_file(path) or path


def parallelize(cfg, task, model: Module, strategy, ctx: DistContext,
                seed: int) -> Parallel:
    r"""Wraps ``model`` / ``strategy`` / ``task`` for ``cfg.parallel.mode``
    on this rank."""
    pc = cfg.parallel
    mode = check_mode(pc.mode)
    if getattr(strategy, 'name', '') != 'backprop':
        raise ValueError(f"parallel.mode={mode} trains with backprop; the "
                         f"'{getattr(strategy, 'name', strategy)}' strategy "
                         f"is not supported")
    if mode == 'ddp':
        from graphkit.pipelines.distributed.ddp import (expected_bytes,
                                                        wrap_ddp)
        if pc.activation_checkpoint:
            # recomputation inside the replica's own forward
            from graphkit.models.deep import as_layer_chain
            try:
                as_layer_chain(model)[0].activation_checkpoint = True
            except ValueError as err:
                raise ValueError(f"parallel.activation_checkpoint in ddp "
                                 f"recomputes the layers of a layer-chain "
                                 f"encoder: {err}") from None
        ddp, sharded = wrap_ddp(model, task, ctx.comm, ctx.device)
        strategy.model = ddp
        expected = expected_bytes(
            model, int(task.masks['train'].sum()), task.batch_size,
            ctx.world_size)
        if ctx.is_main:
            log.info('ddp: %d process(es); formula: %.3g bytes per epoch '
                     '(gradient all-reduce)', ctx.world_size,
                     expected['total'])
        return Parallel(mode, ctx, ddp, strategy, sharded, expected)
    from graphkit.pipelines.distributed.layerwise import (LayerParallelEngine,
                                                LayerParallelModel,
                                                LayerParallelStrategy)
    engine = LayerParallelEngine(
        model, task, ctx.comm, mode, seed=seed, ways=pc.ways,
        chunks=pc.chunks, partition=pc.partition,
        shuffle_chunks=pc.shuffle_chunks, snapshot_period=pc.snapshot_period,
        cross_chunk_grad=pc.cross_chunk_grad,
        cross_chunk_scale=pc.cross_chunk_scale,
        activation_checkpoint=pc.activation_checkpoint)
    wrapped = LayerParallelModel(model, engine)
    expected = engine.expected_bytes()
    ctx.comm.take()
    if ctx.is_main:
        log.info('%s: %d stage(s) x %d way(s), %d chunk(s) per way; '
                 'formula: %.3g bytes per epoch (pipeline %.3g, halo %.3g)',
                 mode, engine.S, engine.W, engine.K, expected['total'],
                 expected['pipeline'], expected['halo'])
    return Parallel(mode, ctx, wrapped, LayerParallelStrategy(wrapped,
                                                              strategy),
                    task, expected)

