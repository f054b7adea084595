r"""Full-graph training split by layers, by graph parts, or both: the
``graph``, ``pipeline`` (GNNPipe) and ``hybrid`` modes.

One engine runs all three, as GNNPipe's own system does. The ranks form a
grid of :math:`S` pipeline stages times :math:`W` graph-parallel ways,
``rank = stage * W + way``:

* ``graph``: :math:`S = 1, W = P`, one chunk per way (the baseline);
* ``pipeline``: :math:`S = P, W = 1`, :math:`K` chunks (default
  :math:`4S`);
* ``hybrid``: :math:`W` = ``parallel.ways``, :math:`S = P / W`, :math:`K`
  chunks per way.

**Layers.** The model is a :class:`~graphkit.models.deep.LayerChain`:
units ``0`` (input), ``1..L`` (the propagation layers) and ``L + 1``
(output). Stage :math:`s` owns a contiguous block of units of near-equal
size (greedy: ``remaining units / remaining stages``).

**Graph.** The graph is normalised once,
:math:`\hat{\mathbf{A}} = \mathbf{D}^{-1/2}(\mathbf{A}+\mathbf{I})
\mathbf{D}^{-1/2}`, and partitioned (:func:`~graphkit.pipelines.distributed.
partition.partition_graph`) into :math:`W K` parts: way :math:`w` owns parts
:math:`wK..wK+K-1`, its chunks.

**Forward** (one epoch, chunks in a shared order, shuffled per epoch when
``shuffle_chunks``). For chunk :math:`c` of way :math:`w`, stage :math:`s`
receives the chunk's rows of the state from rank ``(s-1)W + w`` (stage 0
computes the input unit), then for each of its layers :math:`\ell`

.. math::
    \mathbf{H}^{(\ell+1)}_c = f_\ell\big(\hat{\mathbf{A}}_{c,:}\,
    [\mathbf{H}^{(\ell)}_c;\ \tilde{\mathbf{H}}^{(\ell)}_{\bar c};\
    \mathbf{H}^{(\ell)}_{\mathrm{halo}}]\big),

where :math:`\mathbf{H}_c` is live, :math:`\tilde{\mathbf{H}}_{\bar c}`
are the rows of other chunks of the same way from the *historical* buffer
(fresh if processed earlier this epoch, older otherwise), and the halo
rows come from the other ways of the same stage (point-to-point, both
directions, every layer). The output rows go to rank ``(s+1)W + w``; the
last stage adds :math:`\sum_{v \in c\,\cap\,\mathrm{train}}\ell_v /
n_{\mathrm{train}}` to the loss, so the chunks' losses sum to the
full-batch mean.

**Backward** runs the chunks in reverse order; each stage back-propagates
the gradients received from the next stage and sends its input gradients
to the previous one. Halo gradients return to their owners. With
``cross_chunk_grad``, the gradient that reaches historical rows is
accumulated (times ``cross_chunk_scale``) in a full-graph buffer and added
to those rows' gradient when their own chunk is back-propagated later in
the same epoch; the buffer is cleared every epoch.

**Update.** Weight gradients are all-reduced (summed) over the :math:`W`
ways of each stage and the optimizer steps once per epoch: full-batch
semantics, no weight staleness. With one chunk per way the computation is
exactly the full-batch one.

**History snapshot.** With ``snapshot_period`` :math:`p > 1` the
historical buffers are saved at the end of every :math:`p`-th epoch and
restored at the start of every epoch, so the rows not yet computed in an
epoch all come from one model version; :math:`p = 1` keeps the last value
written.

**Communication** per epoch (fp32, :math:`b = 4`): the pipeline moves
:math:`2(S-1) N d b` (times the number of state tensors, 2 for GCNII),
the halo exchange :math:`2 L R d b` with :math:`R` the halo rows summed
over ways and chunks, plus the weight all-reduce.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Module

from graphkit.pipelines.distributed.comm import Comm
from graphkit.pipelines.distributed.partition import partition_graph
from graphkit.models.deep import LayerChain, as_layer_chain
from graphkit.pipelines.strategies.base import Strategy
from graphkit.utils.tensor import mask_dropout, run_recomputed

log = logging.getLogger(__name__)

__all__ = ['grid', 'split_units', 'ChunkPlan', 'build_plans',
           'LayerParallelEngine', 'LayerParallelModel',
           'LayerParallelStrategy']


def grid(mode: str, world_size: int, ways: int = 2) -> tuple[int, int]:
    r"""The ``(stages, ways)`` grid of ``mode`` on ``world_size`` ranks."""
    if mode == 'graph':
        return 1, world_size
    if mode == 'pipeline':
        return world_size, 1
    if mode == 'hybrid':
        if ways < 1 or world_size % ways:
            raise ValueError(f"hybrid: parallel.ways ({ways}) must divide "
                             f"the number of processes ({world_size})")
        return world_size // ways, ways
    raise ValueError(f"Unknown layer-parallel mode '{mode}': expected "
                     f"graph, pipeline or hybrid")


def split_units(num_units: int, stages: int) -> list[tuple[int, int]]:
    r"""Contiguous blocks ``[a, b)`` of ``num_units`` units over
    ``stages`` stages, greedily balanced (cost 1 per unit)."""
    if stages > num_units:
        raise ValueError(f"Cannot split {num_units} units (input, "
                         f"{num_units - 2} layers, output) over {stages} "
                         f"pipeline stages; use fewer processes or more "
                         f"layers")
    out, start = [], 0
    for s in range(stages):
        size = -(-(num_units - start) // (stages - s))
        out.append((start, start + size))
        start += size
    return out


@dataclass
class ChunkPlan:
    r"""Everything one rank needs to run one chunk of its way.

    ``pool`` lists the way's own rows a chunk step reads, the chunk's rows
    first (``rest`` are the others, read from the history); ``halo`` are
    ``(peer way, rows)`` read from the other ways, appended after the pool
    in peer order; ``send`` are ``(peer way, pool positions)`` the peers
    read from this rank; ``edge_index`` / ``edge_weight`` are the chunk's
    in-edges of :math:`\hat{\mathbf{A}}` in local numbering."""
    chunk: Tensor
    rest: Tensor
    halo: list[tuple[int, int]]
    send: list[tuple[int, Tensor]]
    edge_index: Tensor
    edge_weight: Tensor

    @property
    def halo_rows(self) -> int:
        return sum(n for _, n in self.halo)


def build_plans(edge_index: Tensor, edge_weight: Tensor, part: Tensor,
                ways: int, chunks: int, way: int) -> list[ChunkPlan]:
    r"""The :class:`ChunkPlan` of every chunk of ``way``; node :math:`v`
    lies in chunk ``part[v] % chunks`` of way ``part[v] // chunks``."""
    n, dev = part.numel(), edge_index.device
    src, dst = edge_index
    dst_part, src_way = part[dst], part[src] // chunks
    plans = []
    for k in range(chunks):
        mine = way * chunks + k
        chunk = (part == mine).nonzero().view(-1)
        into = dst_part == mine
        s, d, w = src[into], dst[into], edge_weight[into]
        needed = [s[src_way[into] == way]]
        for peer in range(ways):
            if peer != way:
                m = (dst_part == peer * chunks + k) & (src_way == way)
                needed.append(src[m])
        rest = torch.cat(needed).unique()
        rest = rest[~torch.isin(rest, chunk)]
        pool = torch.cat([chunk, rest])
        local = torch.full((n, ), -1, dtype=torch.long, device=dev)
        local[pool] = torch.arange(pool.numel(), device=dev)
        send = []
        for peer in range(ways):
            if peer != way:
                m = (dst_part == peer * chunks + k) & (src_way == way)
                send.append((peer, local[src[m].unique()]))
        halo, offset = [], pool.numel()
        s_way = src_way[into]
        for peer in range(ways):
            if peer != way:
                rows = s[s_way == peer].unique()
                local[rows] = torch.arange(offset, offset + rows.numel(),
                                           device=dev)
                offset += rows.numel()
                halo.append((peer, rows.numel()))
        ei = torch.stack([local[s], local[d]])
        plans.append(ChunkPlan(chunk, rest, halo, send, ei, w))
    return plans


class _HaloExchange(torch.autograd.Function):
    r"""Appends the halo rows of the other ways to this rank's pool;
    backward returns the halo rows' gradients to their owners, which add
    them to the pool rows they sent."""

    @staticmethod
    def forward(ctx, pool: Tensor, peers: list, comm: Comm,
                tag: str) -> Tensor:
        d = pool.size(1)
        sends = [(rank, pool[pos]) for rank, pos, _ in peers if pos.numel()]
        recvs = [(rank, pool.new_empty(n, d)) for rank, _, n in peers if n]
        comm.exchange(sends, recvs, tag)
        ctx.peers, ctx.comm, ctx.tag, ctx.n_pool = peers, comm, tag, \
            pool.size(0)
        return torch.cat([pool] + [t for _, t in recvs])

    @staticmethod
    def backward(ctx, grad: Tensor):
        d = grad.size(1)
        g_pool = grad[:ctx.n_pool].clone()
        sends, recvs, offset = [], [], ctx.n_pool
        for rank, pos, n in ctx.peers:
            if n:
                sends.append((rank, grad[offset:offset + n]))
                offset += n
            if pos.numel():
                recvs.append((rank, pos, grad.new_empty(pos.numel(), d)))
        ctx.comm.exchange(sends, [(r, t) for r, _, t in recvs], ctx.tag)
        for _, pos, t in recvs:
            g_pool.index_add_(0, pos, t)
        return g_pool, None, None, None


@dataclass
class _ChunkRecord:
    inputs: list[Tensor]
    outputs: list[Tensor]
    loss: Tensor | None
    history: list[tuple[int, Tensor, Tensor]]


class LayerParallelEngine:
    r"""One rank of the ``graph`` / ``pipeline`` / ``hybrid`` engine (see
    the module docstring).

    Args:
        model (Module): a :class:`~graphkit.models.deep.LayerChain`, or a
            node classifier around one; every rank holds a full copy
            initialised identically and trains its stage's units.
        task: the node task (full graph, ``task.data`` and its masks).
        comm (Comm): this rank's communication layer.
        mode (str): ``graph``, ``pipeline`` or ``hybrid``.
        seed (int): the run's seed (chunk order, random partitions).
        ways (int): hybrid ways :math:`W`.
        chunks (int, optional): chunks per way (default: :math:`4S`; always
            1 in graph mode).
        partition (str): partition method.
        shuffle_chunks (bool): new chunk order every epoch.
        snapshot_period (int): history snapshot period :math:`p`.
        cross_chunk_grad (bool): carry gradients across chunks.
        cross_chunk_scale (float): their scale.
        activation_checkpoint (bool): in training, keep only the input of
            every unit of every chunk and recompute the unit during
            backward (:func:`torch.utils.checkpoint.checkpoint`, with the
            random state restored, so the dropout masks are the same).
            Halo exchanges are not repeated: they stay outside the
            recomputed part. This frees the per-layer activations of all
            chunks, which otherwise live until the backward pipeline, for
            one more forward pass (default: :obj:`False`)
    """
    def __init__(self, model: Module, task, comm: Comm, mode: str,
                 seed: int = 0, ways: int = 2, chunks: int | None = None,
                 partition: str = 'auto', shuffle_chunks: bool = True,
                 snapshot_period: int = 23, cross_chunk_grad: bool = True,
                 cross_chunk_scale: float = 2.0,
                 activation_checkpoint: bool = False) -> None:
        if getattr(task, 'kind', None) != 'node' or task.batch_size:
            raise ValueError(f"parallel.mode={mode} trains node "
                             f"classification on the full graph; got a "
                             f"{getattr(task, 'kind', '?')} task with "
                             f"train.batch_size={task.batch_size} (use "
                             f"parallel.mode=ddp for mini-batches)")
        if snapshot_period < 1:
            raise ValueError(f"parallel.snapshot_period must be >= 1, got "
                             f"{snapshot_period}")
        self.model = model
        self.chain, self.input_dropout = as_layer_chain(model)
        self.task, self.comm, self.mode, self.seed = task, comm, mode, seed
        rank, world = comm.rank, comm.world_size
        self.S, self.W = grid(mode, world, ways)
        self.K = 1 if mode == 'graph' else int(chunks or 4 * self.S)
        if self.K < 1:
            raise ValueError(f"parallel.chunks must be >= 1, got {chunks}")
        self.stage, self.way = divmod(rank, self.W)
        self.shuffle = shuffle_chunks
        self.period = snapshot_period
        self.cross = cross_chunk_grad and self.K > 1
        self.scale = cross_chunk_scale
        self.recompute = activation_checkpoint
        self.group = None
        if self.W > 1:
            for s in range(self.S):   # every rank creates every group
                g = dist.new_group([s * self.W + w for w in range(self.W)])
                if s == self.stage:
                    self.group = g

        data = task.data
        self.x, self.num_nodes = data.x, data.num_nodes
        L = self.chain.num_layers
        self.units = split_units(L + 2, self.S)
        self.first, self.last = self.units[self.stage]
        ei, ew = LayerChain.normalize_graph(data.edge_index, None,
                                            self.num_nodes, self.x.dtype)
        part = partition_graph(data.edge_index, self.num_nodes,
                               self.W * self.K, partition, seed).to(ei.device)
        self.part = part
        self.plans = build_plans(ei, ew, part, self.W, self.K, self.way)
        self.eval_part = part // self.K
        self.eval_plans = (self.plans if self.K == 1 else build_plans(
            ei, ew, self.eval_part, self.W, 1, self.way))
        self.way_nodes = [(self.eval_part == w).nonzero().view(-1)
                          for w in range(self.W)]
        self.widths = self._widths()
        self.halo_rows = sum(p.halo_rows for p in self.plans)

        train = task.masks['train'].to(self.x.device)
        y = data.y
        self.multiclass = task.bundle.task_type == 'multiclass'
        if self.multiclass:
            self.norm = float(train.sum())
        else:
            self.norm = float((~torch.isnan(y[train].float())).sum())
        self.train_mask, self.y = train, y
        self.hist: dict[int, Tensor] = {}
        self.snap: dict[int, Tensor] = {}
        self.gacc: dict[int, Tensor] = {}
        if self.K > 1:
            for u in range(max(self.first, 1), min(self.last, L + 1)):
                d = self.widths[u - 1][0]
                self.hist[u - 1] = self.x.new_zeros(self.num_nodes, d)
                if self.cross:
                    self.gacc[u - 1] = self.x.new_zeros(self.num_nodes, d)
        self._tag_prefix = ''
        log.info('%s: rank %d = stage %d / %d, way %d / %d, units [%d, %d) '
                 'of %d, %d chunk(s) per way, %d halo rows per epoch',
                 mode, rank, self.stage, self.S, self.way, self.W,
                 self.first, self.last, L + 2, self.K, self.halo_rows)

    # -- set-up ---------------------------------------------------------------
    @torch.no_grad()
    def _widths(self) -> list[list[int]]:
        r"""State widths after every unit, from a one-node dry run (eval
        mode, so no random numbers are drawn)."""
        was = self.chain.training
        self.chain.eval()
        one = torch.zeros(2, 1, dtype=torch.long, device=self.x.device)
        w1 = self.x.new_ones(1)
        state = self.chain.chain_input(self.x[:1])
        out = [[t.size(1) for t in state]]
        for i in range(self.chain.num_layers):
            state = self.chain.chain_layer(i, state, one, w1)
            out.append([t.size(1) for t in state])
        out.append([self.chain.chain_output(state).size(1)])
        self.chain.train(was)
        return out

    def _peers(self, plan: ChunkPlan) -> list[tuple[int, Tensor, int]]:
        base = self.stage * self.W
        sends = dict(plan.send)
        return [(base + peer, sends[peer], n) for peer, n in plan.halo]

    def _tag(self, name: str) -> str:
        return self._tag_prefix + name

    # -- one chunk -------------------------------------------------------------
    def _layer(self, i: int, state: tuple[Tensor, ...], plan: ChunkPlan,
               history: list, train: bool) -> tuple[Tensor, ...]:
        h = state[0]
        n = h.size(0)
        pool = h
        if train and i in self.hist:
            buf = self.hist[i]
            buf[plan.chunk] = h.detach()
            if plan.rest.numel():
                old = buf[plan.rest]
                if self.cross:
                    old.requires_grad_(True)
                    history.append((i, plan.rest, old))
                pool = torch.cat([h, old])
            if self.cross and h.requires_grad:
                acc, rows = self.gacc[i], plan.chunk
                h.register_hook(lambda g, acc=acc, rows=rows: g + acc[rows])
        if self.W > 1:
            pool = _HaloExchange.apply(pool, self._peers(plan), self.comm,
                                       self._tag('halo'))
        extra = [torch.cat([e, e.new_zeros(pool.size(0) - n, e.size(1))])
                 for e in state[1:]]
        out = self._run(self.chain.chain_layer, train, i, (pool, *extra),
                        plan.edge_index, plan.edge_weight)
        return tuple(t[:n] for t in out)

    def _run(self, fn, train: bool, *args: Any) -> Any:
        """``fn(*args)``, recomputed during backward when
        ``activation_checkpoint`` is on (training only)."""
        return run_recomputed(fn, *args, recompute=train and self.recompute)

    def _input(self, rows: Tensor) -> tuple[Tensor, ...]:
        x = mask_dropout(self.x[rows], self.input_dropout,
                         self.chain.training)
        return self.chain.chain_input(x)

    def _forward_chunk(self, plan: ChunkPlan, train: bool) -> _ChunkRecord:
        L = self.chain.num_layers
        n = plan.chunk.numel()
        inputs: list[Tensor] = []
        if self.stage == 0:
            state: Any = None
        else:
            prev = (self.stage - 1) * self.W + self.way
            inputs = [self.comm.recv(self.x.new_empty(n, d), prev,
                                     self._tag('pipeline'))
                      for d in self.widths[self.first - 1]]
            if train:
                for t in inputs:
                    t.requires_grad_(True)
            state = tuple(inputs)
        history: list = []
        out = None
        for u in range(self.first, self.last):
            if u == 0:
                state = self._run(self._input, train, plan.chunk)
            elif u <= L:
                state = self._layer(u - 1, state, plan, history, train)
            else:
                out = self.chain.chain_output(state)
        if self.stage == self.S - 1:
            return _ChunkRecord(inputs, [out], self._loss(out, plan)
                                if train else None, history)
        return _ChunkRecord(inputs, list(state), None, history)

    def _loss(self, out: Tensor, plan: ChunkPlan) -> Tensor:
        m = self.train_mask[plan.chunk]
        pred, y = out[m], self.y[plan.chunk][m]
        if self.multiclass:
            return F.cross_entropy(pred, y, reduction='sum') / self.norm
        y = y.float()
        keep = ~torch.isnan(y)
        return F.binary_cross_entropy_with_logits(
            pred[keep], y[keep], reduction='sum') / self.norm

    # -- an epoch ----------------------------------------------------------------
    def chunk_order(self, epoch: int) -> list[int]:
        if not self.shuffle or self.K == 1:
            return list(range(self.K))
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.K, generator=gen).tolist()

    def train_epoch(self, epoch: int, optimizer: torch.optim.Optimizer,
                    grad_clip: float | None = None) -> float:
        r"""One epoch: the chunked forward and backward pipelines, the
        weight-gradient all-reduce and one optimizer step. Returns the
        full-batch training loss (the same on every rank)."""
        self.model.train()
        optimizer.zero_grad(set_to_none=True)
        if self.period > 1 and self.snap:
            for i, buf in self.hist.items():
                buf.copy_(self.snap[i])
        nxt = (self.stage + 1) * self.W + self.way
        prev = (self.stage - 1) * self.W + self.way
        order = self.chunk_order(epoch)
        records, handles = [], []
        for k in order:
            rec = self._forward_chunk(self.plans[k], train=True)
            if self.stage < self.S - 1:
                handles += [self.comm.send(t.detach(), nxt, 'pipeline')
                            for t in rec.outputs]
            records.append(rec)
        self.comm.wait(handles)
        handles, loss = [], 0.0
        for k, rec in zip(reversed(order), reversed(records)):
            if self.stage == self.S - 1:
                rec.loss.backward()
                loss += float(rec.loss.detach())
            else:
                n = self.plans[k].chunk.numel()
                grads = [self.comm.recv(self.x.new_empty(n, t.size(1)), nxt,
                                        'pipeline') for t in rec.outputs]
                pairs = [(t, g) for t, g in zip(rec.outputs, grads)
                         if t.requires_grad]
                if pairs:
                    torch.autograd.backward([t for t, _ in pairs],
                                            [g for _, g in pairs])
            if self.stage > 0:
                handles += [self.comm.send(
                    t.grad if t.grad is not None else torch.zeros_like(t),
                    prev, 'pipeline') for t in rec.inputs]
            for i, rows, old in rec.history:
                if old.grad is not None:
                    self.gacc[i].index_add_(0, rows, old.grad,
                                            alpha=self.scale)
        self.comm.wait(handles)
        self._sync_grads()
        total = torch.tensor([loss], dtype=torch.float64)
        self.comm.all_reduce(total, 'metrics')
        if grad_clip:
            self._clip(grad_clip)
        optimizer.step()
        for buf in self.gacc.values():
            buf.zero_()
        if self.period > 1 and epoch % self.period == 0:
            self.snap = {i: buf.clone() for i, buf in self.hist.items()}
        return float(total)

    def _stage_params(self) -> list[tuple[str, Tensor]]:
        return [(n, p) for n, p in self.model.named_parameters()
                if p.grad is not None]

    def _sync_grads(self) -> None:
        r"""Sums the weight gradients over the ways of this stage (one
        flat all-reduce)."""
        if self.W == 1:
            return
        params = [p for _, p in self._stage_params()]
        if not params:
            return
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        self.comm.all_reduce(flat, 'grad', group=self.group)
        offset = 0
        for p in params:
            p.grad.copy_(flat[offset:offset + p.numel()].view_as(p))
            offset += p.numel()

    def _clip(self, max_norm: float) -> None:
        r"""Global gradient-norm clipping: the squared norms of all stages
        (each counted once, hence the division by :math:`W`)."""
        params = [p for _, p in self._stage_params()]
        sq = sum(float(p.grad.pow(2).sum()) for p in params)
        total = torch.tensor([sq / self.W], dtype=torch.float64)
        self.comm.all_reduce(total, 'metrics')
        norm = float(total) ** 0.5
        if norm > max_norm:
            for p in params:
                p.grad.mul_(max_norm / (norm + 1e-6))

    @torch.no_grad()
    def infer(self) -> Tensor:
        r"""Exact full-graph outputs (every way one chunk, no history), on
        every rank."""
        self._tag_prefix = 'eval_'
        try:
            rec = self._forward_chunk(self.eval_plans[0], train=False)
            if self.stage < self.S - 1:
                nxt = (self.stage + 1) * self.W + self.way
                self.comm.wait([self.comm.send(t, nxt, self._tag('pipeline'))
                                for t in rec.outputs])
            c = self.widths[-1][0]
            out = self.x.new_empty(self.num_nodes, c)
            for w, rows in enumerate(self.way_nodes):
                root = (self.S - 1) * self.W + w
                buf = (rec.outputs[0] if self.comm.rank == root else
                       self.x.new_empty(rows.numel(), c))
                self.comm.broadcast(buf.contiguous(), root,
                                    self._tag('output'))
                out[rows] = buf
            return out
        finally:
            self._tag_prefix = ''

    # -- communication model -------------------------------------------------------
    def expected_bytes(self) -> dict[str, float]:
        r"""The notes' per-epoch volume of this configuration, summed over
        ranks (fp32): pipeline :math:`2(S-1) N d b \cdot n_{state}` and halo
        :math:`2 L R d b`, :math:`R` the halo rows of all ways and
        chunks."""
        b = self.x.element_size()
        d = self.widths[0][0]
        n_state = len(self.widths[0])
        pipe = 2 * (self.S - 1) * self.num_nodes * d * b * n_state
        halo_rows = torch.tensor([float(self.halo_rows)])
        if self.W > 1:   # every way of the stage adds its halo rows
            self.comm.all_reduce(halo_rows, 'setup', group=self.group)
        halo = 2 * self.chain.num_layers * float(halo_rows) * d * b
        return {'pipeline': float(pipe), 'halo': halo,
                'total': float(pipe) + halo}

    # -- state -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {'hist': {i: t.clone() for i, t in self.hist.items()},
                'snap': {i: t.clone() for i, t in self.snap.items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for i, t in state['hist'].items():
            self.hist[i].copy_(t)
        self.snap = {i: t.clone() for i, t in state['snap'].items()}


class LayerParallelModel(Module):
    r"""The model as the training loop sees it in the layer-parallel
    modes: ``forward`` runs the exact full-graph pass of the engine and
    returns every node's output on every rank (for evaluation); training
    goes through :class:`LayerParallelStrategy`."""
    def __init__(self, module: Module, engine: LayerParallelEngine) -> None:
        super().__init__()
        self.module = module
        self.engine = engine

    def forward(self, x: Tensor, edge_index: Any = None,
                **kwargs: Any) -> Tensor:
        if x.size(0) != self.engine.num_nodes:
            raise ValueError(f"{type(self).__name__} was built for the "
                             f"task's graph of {self.engine.num_nodes} "
                             f"nodes; got an input of {x.size(0)} rows")
        return self.engine.infer()


class LayerParallelStrategy(Strategy):
    r"""Backprop through the engine: one :meth:`step` is one epoch (the
    chunked pipeline and one optimizer step). It reuses the optimizer of
    the backprop strategy it replaces."""
    name = 'layer-parallel'

    def __init__(self, model: LayerParallelModel, base: Strategy) -> None:
        self.model = model
        self.engine = model.engine
        self.optimizer = base.optimizer
        self.grad_clip = base.grad_clip
        self.epoch = 0

    def begin_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def step(self, task, batch: Any) -> dict[str, float]:
        return {'loss': self.engine.train_epoch(self.epoch, self.optimizer,
                                                self.grad_clip)}

    def state_dict(self) -> dict[str, Any]:
        return {'optimizer': self.optimizer.state_dict(),
                'engine': self.engine.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state['optimizer'])
        self.engine.load_state_dict(state['engine'])
