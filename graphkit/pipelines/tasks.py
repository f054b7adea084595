r"""Tasks: each knows its loss, its batched prediction and its metric.

A task wraps a :class:`~graphkit.data.DatasetBundle`. Per run, the loop calls
:meth:`Task.setup` with that run's split, then iterates
:meth:`Task.train_batches`, hands each batch to a strategy (which calls
:meth:`Task.loss`), and calls :meth:`Task.evaluate`.
"""
from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from typing import Any, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Module

from graphkit.data import loaders
from graphkit.data.registry import DatasetBundle, lower_is_better
from graphkit.pipelines import metrics as M

__all__ = ['Task', 'NodeTask', 'LinkTask', 'GraphTask', 'GraphNodeTask',
           'RecommendationTask', 'make_task', 'TASKS']


class Task(ABC):
    r"""Base class of the tasks."""
    kind = ''

    def __init__(self, bundle: DatasetBundle, *, batch_size: int | None =
                 None, eval_batch_size: int = 65536,
                 num_neighbors: tuple[int, ...] = (10, 10),
                 metric: str | None = None,
                 device: torch.device | str = 'cpu') -> None:
        self.bundle = bundle
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.num_neighbors = tuple(num_neighbors)
        self.device = torch.device(device)
        self.metric = (metric or bundle.metric).lower()
        self.use_evaluator = bundle.evaluator is not None and metric is None

    @property
    def higher_is_better(self) -> bool:
        return not lower_is_better(self.metric)

    def model_dims(self) -> dict[str, Any]:
        r"""Keyword arguments the model builder needs from the data."""
        return {'in_channels': self.bundle.num_features,
                'out_channels': self.bundle.num_classes,
                'cached': self.static_graph}

    @property
    def static_graph(self) -> bool:
        r"""Whether the model always sees the same graph during a run (then
        encoders may cache graph normalisation, e.g. GCN's)."""
        return False

    def setup(self, split: Any) -> None:
        self.split = split

    def on_device(self, data: Any) -> Any:
        r"""``data`` moved to the task's device, as a shallow copy: PyG's
        ``Data.to`` moves tensors in place, which would move the caller's
        (e.g. the dataset bundle's, shared with other tasks) as well."""
        return copy.copy(data).to(self.device)

    @staticmethod
    def graph_inputs(model: Module, data: Any) -> dict[str, Any]:
        r"""The extra graph inputs a model declares in ``data_keys`` (e.g.
        HiGCN's flower-petal operators), read from ``data``."""
        out = {}
        for key in getattr(model, 'data_keys', ()):
            if data[key] is None:
                raise ValueError(
                    f"{type(model).__name__} needs data.{key}, which the "
                    f"data does not have; load it with the model's "
                    f"pre_transform (see graphkit.models.pre_transform_for)")
            out[key] = data[key]
        return out

    @abstractmethod
    def train_batches(self, generator: torch.Generator) -> Iterable[Any]:
        r"""Yields the training batches of one epoch, shuffled with
        ``generator``."""

    @abstractmethod
    def loss(self, model: Module, batch: Any) -> Tensor:
        r"""The training loss of ``model`` on ``batch``."""

    @abstractmethod
    def evaluate(self, model: Module) -> dict[str, float]:
        r"""Scores on ``train`` (where cheap), ``valid`` and ``test``, plus
        ``valid_loss``."""


# ----------------------------------------------------------------------------
# Node classification
# ----------------------------------------------------------------------------


class NodeTask(Task):
    r"""Node classification (multi-class cross-entropy, or multi-label BCE
    for OGB binary tasks), full-batch or neighbour-sampled."""
    kind = 'node'

    @property
    def static_graph(self) -> bool:
        return not self.batch_size

    def setup(self, split) -> None:
        super().setup(split)
        data = self.bundle.data
        if self.batch_size:
            self.data = data
        else:
            self.data = self.on_device(data)
        self.masks = {k: split.mask(k).to(self.data.y.device)
                      for k in ('train', 'valid', 'test')}
        self._adj_t = None
        self._full = None      # mini-batch tasks: the full graph on device

    def graph_for(self, model: Module) -> Any:
        r"""The full graph in the form ``model`` takes fastest: for a model
        that declares ``supports_sparse_adj``, the transposed adjacency
        :math:`\mathbf{A}^\top` (row :math:`i` lists the sources of the
        edges into :math:`i`) as a ``torch.sparse_csr`` tensor, built once;
        otherwise ``edge_index``."""
        # (a mini-batch task's full graph on the device, once predict
        # has moved it)
        data = self.data if self._full is None else self._full
        if not getattr(model, 'supports_sparse_adj', False):
            return data.edge_index
        if self._adj_t is None:
            from torch_geometric.utils import to_torch_csr_tensor
            n = data.num_nodes
            self._adj_t = to_torch_csr_tensor(
                data.edge_index.flip(0), size=(n, n))
        return self._adj_t.to(self.device)

    def _criterion(self, out: Tensor, y: Tensor) -> Tensor:
        if self.bundle.task_type == 'multiclass':
            return F.cross_entropy(out, y)
        target = y.float()
        mask = ~torch.isnan(target)
        return F.binary_cross_entropy_with_logits(out[mask], target[mask])

    def train_batches(self, generator):
        if not self.batch_size:
            yield None
            return
        seeds = self.masks['train'].nonzero().view(-1)
        yield from loaders.neighbor_loader(self.data, seeds, self.batch_size,
                                           self.num_neighbors, shuffle=True,
                                           generator=generator)

    def train_outputs(self, model, batch, call=None) -> tuple[Any, Tensor]:
        r"""``call(x, edge_index, ...)`` (the model by default) on the
        training targets of ``batch``: its output restricted to them (a
        tensor, or a tuple of per-node tensors with a ``select`` method
        such as Mowst's expert outputs) and their labels."""
        call = model if call is None else call
        if batch is None:
            out = call(self.data.x, self.graph_for(model),
                       **self.graph_inputs(model, self.data))
            m = self.masks['train']
            return _select(out, m), self.data.y[m]
        batch = batch.to(self.device)
        out = call(batch.x, batch.edge_index,
                   **self.graph_inputs(model, batch))
        return (_select(out, slice(0, batch.batch_size)),
                batch.y[:batch.batch_size])

    def loss(self, model, batch) -> Tensor:
        return self._criterion(*self.train_outputs(model, batch))

    @torch.no_grad()
    def predict(self, model: Module, call=None) -> Any:
        r"""``call`` (the model by default) on every node, full-batch or in
        mini-batches over all neighbours, in eval mode. The mini-batches
        hold every node's full receptive field, so aggregations over
        in-neighbours (mean, sum, max, attention) are exact; GCN's symmetric
        normalisation reads degrees inside the subgraph, which differ at
        its border. When ``eval_batch_size`` covers every node, the one
        batch would be the full graph, so it runs full-batch. A model
        with a ``task_predict(task)`` method does its own inference when
        ``call`` is not given."""
        if call is None and hasattr(model, 'task_predict'):
            # model-specific inference (e.g. Mowst skipping its GNN)
            return model.task_predict(self)
        model.eval()
        call = model if call is None else call
        if not self.batch_size or self.eval_batch_size >= self.data.num_nodes:
            # one batch would hold every node and its whole receptive
            # field, i.e. the full graph: skip the sampler
            if self.batch_size:     # the full graph, moved once
                if self._full is None:
                    self._full = self.on_device(self.data)
                data = self._full
            else:
                data = self.data
            return call(data.x, self.graph_for(model),
                        **self.graph_inputs(model, data))
        loader = loaders.neighbor_loader(
            self.data, None, self.eval_batch_size,
            [-1] * len(self.num_neighbors), shuffle=False)
        outs = []
        for batch in loader:
            batch = batch.to(self.device)
            out = call(batch.x, batch.edge_index,
                       **self.graph_inputs(model, batch))
            outs.append(_select(out, slice(0, batch.batch_size)))
        if isinstance(outs[0], Tensor):
            return torch.cat([o.cpu() for o in outs])
        return type(outs[0])(*(torch.cat([o[i].cpu() for o in outs])
                               for i in range(len(outs[0]))))

    def score(self, out: Tensor, which: str) -> float:
        m = self.masks[which].to(out.device)
        y = self.data.y.to(out.device)[m]
        if self.use_evaluator:
            ev = self.bundle.evaluator
            if self.bundle.task_type == 'multiclass':
                res = ev.eval({'y_true': y.view(-1, 1).cpu(),
                               'y_pred': out[m].argmax(-1, keepdim=True)
                               .cpu()})
            else:
                res = ev.eval({'y_true': y.cpu(), 'y_pred': out[m].cpu()})
            return float(res[ev.eval_metric])
        return M.compute(self.metric, pred=out[m], y=y)

    @torch.no_grad()
    def evaluate(self, model) -> dict[str, float]:
        out = self.predict(model)
        y = self.data.y.to(out.device)
        m = self.masks['valid'].to(out.device)
        res = {k: self.score(out, k) for k in ('train', 'valid', 'test')}
        res['valid_loss'] = float(self._criterion(out[m], y[m]))
        if hasattr(model, 'diagnostics'):
            # model-specific scores (e.g. Mowst: which expert decides)
            res.update(model.diagnostics(self))
        return res


def _select(out: Any, index: Any) -> Any:
    if isinstance(out, Tensor):
        return out[index]
    return out.select(index)


# ----------------------------------------------------------------------------
# Link prediction
# ----------------------------------------------------------------------------


class LinkTask(Task):
    r"""Link prediction with uniform negatives and a BCE loss.

    Every step encodes the training graph, scores a batch of positive
    training pairs and as many negatives from
    :func:`torch_geometric.utils.negative_sampling`, and minimises
    :math:`-\log\sigma(s^+) - \log(1-\sigma(s^-))`. Evaluation encodes once
    and scores the validation / test pairs in chunks.

    Large graphs (``sparse_threshold`` edges or more) are passed to the
    encoder as a sparse CSR adjacency, so message passing is one sparse
    matrix product instead of materialised per-edge messages.

    With ``target_link_removal`` (NCN's TLR), the positive pairs of a batch
    are removed, in both directions, from the graph the model encodes and
    decodes with during that step, so that training targets are absent from
    the input graph as test targets are. Evaluation uses the whole training
    graph.
    """
    kind = 'link'
    sparse_threshold = 200_000
    dense_negatives_max_nodes = 20_000

    def __init__(self, bundle: DatasetBundle, *,
                 target_link_removal: bool = False, **kwargs: Any) -> None:
        super().__init__(bundle, **kwargs)
        self.target_link_removal = target_link_removal

    @property
    def static_graph(self) -> bool:
        return not self.target_link_removal

    def model_dims(self) -> dict[str, Any]:
        out = super().model_dims()
        out['num_nodes'] = self.bundle.data.num_nodes
        return out

    def setup(self, split) -> None:
        super().setup(split)
        data = self.bundle.data
        self.num_nodes = data.num_nodes
        self.x = None if data.x is None else data.x.to(self.device)
        self.edge_index = split.edge_index.to(self.device)
        self.adj = self._as_graph(self.edge_index)
        self.train_pos = split.train_pos.to(self.device)
        self.data = self.on_device(data)

    def train_batches(self, generator):
        for idx in loaders.index_batches(self.train_pos.size(1),
                                         self.batch_size, True, generator):
            yield idx.to(self.device)

    def _as_graph(self, edge_index: Tensor) -> Any:
        if edge_index.size(1) >= self.sparse_threshold:
            from torch_geometric.utils import to_torch_csr_tensor
            return to_torch_csr_tensor(edge_index, size=(self.num_nodes,
                                                         self.num_nodes))
        return edge_index

    def training_graph(self, pos_pairs: Tensor) -> Any:
        r"""The graph the model sees while training on ``pos_pairs``: the
        training graph, without those links (both directions) under
        target-link removal."""
        if not self.target_link_removal:
            return self.adj
        n = self.num_nodes
        keys = self.edge_index[0] * n + self.edge_index[1]
        targets = torch.cat([pos_pairs[0] * n + pos_pairs[1],
                             pos_pairs[1] * n + pos_pairs[0]])
        keep = ~torch.isin(keys, targets)
        return self._as_graph(self.edge_index[:, keep])

    def loss(self, model, idx: Tensor) -> Tensor:
        from torch_geometric.utils import negative_sampling
        pos_pairs = self.train_pos[:, idx]
        method = ('dense' if self.num_nodes <= self.dense_negatives_max_nodes
                  else 'sparse')
        neg_pairs = negative_sampling(self.edge_index,
                                      num_nodes=self.num_nodes,
                                      num_neg_samples=idx.numel(),
                                      method=method)
        graph = self.training_graph(pos_pairs)
        h = model.encode(self.x, graph,
                         **self.graph_inputs(model, self.data))
        # One decoder call scores positives and negatives together.
        out = model.decode(h, torch.cat([pos_pairs, neg_pairs], 1), graph)
        pos, neg = out[:pos_pairs.size(1)], out[pos_pairs.size(1):]
        return (F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos))
                + F.binary_cross_entropy_with_logits(neg,
                                                     torch.zeros_like(neg)))

    def _score_pairs(self, model, h: Tensor, pairs: Tensor) -> Tensor:
        if pairs.dim() == 2 and pairs.size(0) != 2:
            raise ValueError(f"Pairs must have shape [2, B], got "
                             f"{tuple(pairs.shape)}")
        outs = [model.decode(h, pairs[:, i:i + self.eval_batch_size]
                             .to(self.device), self.adj).cpu()
                for i in range(0, pairs.size(1), self.eval_batch_size)]
        return torch.cat(outs) if outs else torch.empty(0)

    def _neg_scores(self, model, h: Tensor, pos: Tensor,
                    neg: Tensor) -> Tensor:
        if self.split.neg_layout == 'pairs':
            return self._score_pairs(model, h, neg)
        # 'per_source': neg[i] holds the negative targets of source pos[0, i].
        src = pos[0].view(-1, 1).expand_as(neg)
        flat = torch.stack([src.reshape(-1), neg.reshape(-1)])
        return self._score_pairs(model, h, flat).view_as(neg)

    def score(self, pos: Tensor, neg: Tensor) -> float:
        if self.use_evaluator:
            ev = self.bundle.evaluator
            if self.metric == 'mrr':
                res = ev.eval({'y_pred_pos': pos, 'y_pred_neg': neg})
                return float(res['mrr_list'].mean())
            res = ev.eval({'y_pred_pos': pos, 'y_pred_neg': neg.view(-1)})
            return float(res[self.metric])
        return M.compute(self.metric, pos=pos, neg=neg)

    @torch.no_grad()
    def evaluate(self, model) -> dict[str, float]:
        model.eval()
        h = model.encode(self.x, self.adj,
                         **self.graph_inputs(model, self.data))
        res = {}
        for which in ('valid', 'test'):
            pos_pairs, neg_pairs = self.split.pairs(which)
            pos = self._score_pairs(model, h, pos_pairs)
            neg = self._neg_scores(model, h, pos_pairs, neg_pairs)
            res[which] = self.score(pos, neg)
            if which == 'valid':
                res['valid_loss'] = float(
                    F.binary_cross_entropy_with_logits(
                        torch.cat([pos, neg.view(-1)]),
                        torch.cat([torch.ones_like(pos),
                                   torch.zeros(neg.numel())])))
        return res


# ----------------------------------------------------------------------------
# Graph-level classification and regression
# ----------------------------------------------------------------------------


class GraphTask(Task):
    r"""Graph classification (cross-entropy, or masked multi-task BCE for
    OGB molecules) and regression (MSE), on PyG mini-batches."""
    kind = 'graph'
    eval_splits = ('train', 'valid', 'test')

    def model_dims(self) -> dict[str, Any]:
        out = super().model_dims()
        out['atom_features'] = bool(self.bundle.info.get('atom_features'))
        # edge feature width, for models that read edge_attr
        out['edge_dim'] = int(getattr(self.bundle.data, 'num_edge_features',
                                      0) or 0)
        return out

    def setup(self, split) -> None:
        super().setup(split)
        self.dataset = self.bundle.data
        self.bs = self.batch_size or 32

    def train_batches(self, generator):
        yield from loaders.graph_loader(self.dataset, self.split.train_idx,
                                        self.bs, shuffle=True,
                                        generator=generator)

    def _forward(self, model, batch) -> Tensor:
        batch = batch.to(self.device)
        x = batch.x
        if x is not None and not self.model_dims()['atom_features']:
            x = x.float()
        return model(x, batch.edge_index, batch.batch, batch.num_graphs,
                     **self.graph_inputs(model, batch))

    def _criterion(self, out: Tensor, y: Tensor) -> Tensor:
        tt = self.bundle.task_type
        if tt == 'multiclass':
            return F.cross_entropy(out, y.view(-1))
        y = y.view(out.shape).float()
        mask = ~torch.isnan(y)
        if tt == 'regression':
            if self.metric == 'mae':
                return F.l1_loss(out[mask], y[mask])
            return F.mse_loss(out[mask], y[mask])
        return F.binary_cross_entropy_with_logits(out[mask], y[mask])

    def loss(self, model, batch) -> Tensor:
        out = self._forward(model, batch)
        return self._criterion(out, batch.y.to(out.device))

    @torch.no_grad()
    def _predict(self, model, which: str) -> tuple[Tensor, Tensor]:
        model.eval()
        outs, ys = [], []
        for batch in loaders.graph_loader(self.dataset,
                                          self.split.index(which),
                                          max(self.bs, 256)):
            outs.append(self._forward(model, batch).cpu())
            ys.append(batch.y.cpu())
        return torch.cat(outs), torch.cat(ys)

    def score(self, out: Tensor, y: Tensor) -> float:
        if self.use_evaluator:
            ev = self.bundle.evaluator
            y = y.view(out.shape) if self.bundle.task_type != 'multiclass' \
                else y.view(-1, 1)
            pred = out if self.bundle.task_type != 'multiclass' else \
                out.argmax(-1, keepdim=True)
            return float(ev.eval({'y_true': y, 'y_pred': pred})
                         [ev.eval_metric])
        if self.bundle.task_type == 'multiclass':
            return M.compute(self.metric, pred=out, y=y.view(-1))
        if self.metric == 'auc':
            return M.roc_auc(out[y.view(out.shape) == 1],
                             out[y.view(out.shape) == 0])
        return M.compute(self.metric, pred=out, y=y)

    @torch.no_grad()
    def evaluate(self, model) -> dict[str, float]:
        res = {}
        for which in self.eval_splits:
            out, y = self._predict(model, which)
            res[which] = self.score(out, y)
            if which == 'valid':
                res['valid_loss'] = float(self._criterion(out, y))
        return res


class GraphNodeTask(GraphTask):
    r"""Node classification over a dataset of many small graphs, trained
    and evaluated on whole graphs (PATTERN and CLUSTER): mini-batches of
    graphs, a per-node cross-entropy that is class-weighted per batch when
    the dataset asks for it (Dwivedi et al.: :math:`w_c = (V - n_c)/V` over
    the :math:`V` nodes of the batch, 0 for absent classes), and scores over
    all nodes of the split's graphs."""
    kind = 'node'
    # Validation and test only: the training graphs outnumber the others
    # five to ten times, so scoring them every evaluation would cost more
    # than training.
    eval_splits = ('valid', 'test')

    def model_dims(self) -> dict[str, Any]:
        out = super().model_dims()
        out.pop('atom_features', None)
        return out

    def _forward(self, model, batch) -> Tensor:
        batch = batch.to(self.device)
        inputs = self.graph_inputs(model, batch)
        if getattr(model, 'takes_batch', False):
            inputs['batch'] = batch.batch
        return model(batch.x.float(), batch.edge_index, **inputs)

    def _criterion(self, out: Tensor, y: Tensor) -> Tensor:
        y = y.view(-1)
        if not self.bundle.info.get('class_weighted'):
            return F.cross_entropy(out, y)
        counts = torch.bincount(y, minlength=out.size(1)).float()
        weight = (y.numel() - counts) / y.numel() * (counts > 0).float()
        return F.cross_entropy(out, y, weight=weight)

    def score(self, out: Tensor, y: Tensor) -> float:
        return M.compute(self.metric, pred=out, y=y.view(-1))



# ----------------------------------------------------------------------------
# Top-K recommendation
# ----------------------------------------------------------------------------


def _csr(index: Tensor, num_rows: int, num_cols: int
         ) -> tuple[Tensor, Tensor, Tensor]:
    r"""Row pointers, column ids (sorted within each row) and the sorted
    keys :math:`r \cdot C + c` of the unique pairs in ``index``."""
    key = (index[0] * num_cols + index[1]).unique()  # sorted
    row = torch.div(key, num_cols, rounding_mode='floor')
    count = torch.bincount(row, minlength=num_rows)
    ptr = torch.zeros(num_rows + 1, dtype=torch.long, device=index.device)
    ptr[1:] = count.cumsum(0)
    return ptr, key - row * num_cols, key


def _gather_rows(ptr: Tensor, col: Tensor, rows: Tensor
                 ) -> tuple[Tensor, Tensor]:
    r"""The entries of CSR rows ``rows``: (position of the row in ``rows``,
    column id), without a Python loop."""
    start, count = ptr[rows], ptr[rows + 1] - ptr[rows]
    pos = torch.repeat_interleave(torch.arange(rows.numel(),
                                               device=rows.device), count)
    first = torch.repeat_interleave(count.cumsum(0) - count, count)
    offset = torch.arange(pos.numel(), device=rows.device) - first
    return pos, col[start[pos] + offset]


def _contains(keys: Tensor, query: Tensor) -> Tensor:
    r"""Whether each entry of ``query`` occurs in the sorted ``keys``."""
    if keys.numel() == 0:
        return torch.zeros_like(query, dtype=torch.bool)
    pos = torch.searchsorted(keys, query).clamp(max=keys.numel() - 1)
    return keys[pos] == query


class RecommendationTask(Task):
    r"""Top-K recommendation from implicit feedback, trained with BPR on
    the bipartite user-item graph (LightGCN's and Sheaf4Rec's protocol).

    **Graph.** Users are nodes :math:`0..U-1` and items :math:`U..U+I-1`;
    the message-passing graph holds the *training* interactions in both
    directions, :obj:`[2, 2|\mathcal{T}|]`.

    **Model contract.** The model is built with ``num_users`` and
    ``num_items`` (from :meth:`model_dims`), has an attribute ``embedding``
    (a :class:`torch.nn.Embedding` of :math:`U+I` rows: the layer-0
    embeddings :math:`\mathbf{E}^{(0)}`), and ``model(edge_index)`` returns
    the final embeddings :math:`[U+I, D]`. The score of user :math:`u` and
    item :math:`i` is :math:`\hat{y}_{ui} = \mathbf{e}_u^\top \mathbf{e}_i`.
    See :mod:`graphkit.models.recommendation`.

    **Training.** Each epoch has :math:`\lfloor |\mathcal{T}| / B \rfloor`
    batches (at least one). A batch draws :math:`B` users uniformly among
    those with a training interaction (without replacement when there are
    at least :math:`B` of them), one of each user's training items
    uniformly as the positive :math:`p`, and one negative :math:`n` uniformly
    among the items seen in training that the user has not interacted with
    (vectorised rejection sampling). The loss is BPR plus an L2 penalty on
    the layer-0 embeddings of the batch:

    .. math::
        \mathcal{L} = \frac{1}{B}\sum_{b} \mathrm{softplus}(\hat{y}_{un} -
        \hat{y}_{up}) + \lambda \frac{1}{2B} \sum_b \left(
        \|\mathbf{e}^{(0)}_u\|^2 + \|\mathbf{e}^{(0)}_p\|^2 +
        \|\mathbf{e}^{(0)}_n\|^2 \right).

    :math:`\lambda` is ``reg`` (default :obj:`1e-4`, LightGCN's and the
    constant in Sheaf4Rec's code). Note that Sheaf4Rec's code defines that
    constant but never applies it, so its effective weight is 1.

    **Evaluation.** Each user with validation (test) interactions gets a
    full ranking of the items seen in training, with their training items
    removed (for test, their validation items too). Recall, Precision, F1
    and NDCG at K = 10 and 20 (and the K of the main metric) are computed by
    :func:`~graphkit.pipelines.metrics.ranking_metrics`; F1@K is the harmonic
    mean of the averaged precision and recall, as in Sheaf4Rec. Users are
    scored in blocks of :math:`\max(1, \lfloor\texttt{eval\_batch\_size} /
    I\rfloor)`, so at most about ``eval_batch_size`` scores are held at
    once. ``valid_loss`` is the BPR term on the validation pairs, each with
    one negative drawn once per split with a fixed generator (so it is
    comparable across epochs and does not touch the training RNG stream).

    With ``target_link_removal``, the batch's positive pairs are removed,
    in both directions, from the graph the model propagates over during
    that step, so that a training target is not an edge of the model's
    input, as a test target is not. Evaluation uses the whole training
    graph.

    Items without training interactions are never ranked or sampled, which
    is what Sheaf4Rec's re-indexing of the training users and items amounts
    to; their embedding rows stay unused.

    Args:
        bundle (DatasetBundle): a ``recommendation`` bundle with
            ``info['num_users']`` and ``info['num_items']`` whose splits are
            :class:`~graphkit.data.splits.RecommendationSplit`.
        batch_size (int, optional): users per BPR batch (default:
            :obj:`1024`).
        eval_batch_size (int): user-item scores per evaluation block
            (default: :obj:`65536`).
        metric (str, optional): the model-selection metric, ``recall@K``,
            ``precision@K``, ``f1@K`` or ``ndcg@K`` (default: the
            bundle's).
        reg (float): weight :math:`\lambda` of the L2 term (default:
            :obj:`1e-4`).
        ks (tuple): cut-offs reported besides the main metric's (default:
            :obj:`(10, 20)`).
    """
    kind = 'recommendation'
    default_batch_size = 1024
    # Seed of the fixed validation negatives behind ``valid_loss``.
    valid_negative_seed = 12345

    def __init__(self, bundle: DatasetBundle, *, reg: float = 1e-4,
                 ks: tuple[int, ...] = (10, 20),
                 target_link_removal: bool = False, **kwargs: Any) -> None:
        super().__init__(bundle, **kwargs)
        self.target_link_removal = target_link_removal
        _, k_main = M.parse_ranking_metric(self.metric)
        if reg < 0:
            raise ValueError(f"reg must be >= 0, got {reg}")
        missing = [k for k in ('num_users', 'num_items')
                   if k not in bundle.info]
        if missing:
            raise ValueError(f"Recommendation dataset '{bundle.name}' must "
                             f"give {', '.join(missing)} in bundle.info")
        self.num_users = int(bundle.info['num_users'])
        self.num_items = int(bundle.info['num_items'])
        self.reg = float(reg)
        self.ks = tuple(sorted(set(int(k) for k in ks) | {k_main}))
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got "
                             f"{self.batch_size}")

    @property
    def static_graph(self) -> bool:
        return not self.target_link_removal

    def model_dims(self) -> dict[str, Any]:
        out = super().model_dims()
        out.update(num_users=self.num_users, num_items=self.num_items)
        return out

    def _check_split(self, split) -> None:
        for which in ('train', 'valid', 'test'):
            idx = split.index(which)
            if idx.dim() != 2 or idx.size(0) != 2:
                raise ValueError(f"The {which} interactions must have shape "
                                 f"[2, n] (user id, item id), got "
                                 f"{tuple(idx.shape)}")
            if idx.numel() and (int(idx.min()) < 0
                                or int(idx[0].max()) >= self.num_users
                                or int(idx[1].max()) >= self.num_items):
                raise ValueError(
                    f"The {which} interactions hold ids outside "
                    f"0..{self.num_users - 1} (users) / "
                    f"0..{self.num_items - 1} (items, 0-based)")
        if split.train_index.size(1) == 0:
            raise ValueError("The recommendation split has no training "
                             "interactions")

    def setup(self, split) -> None:
        super().setup(split)
        self._check_split(split)
        dev, U, I = self.device, self.num_users, self.num_items
        train = split.train_index.to(dev).long()
        valid = split.valid_index.to(dev).long()
        test = split.test_index.to(dev).long()
        self.train_ptr, self.train_col, self.train_keys = _csr(train, U, I)
        self.num_train = self.train_keys.numel()
        deg = self.train_ptr[1:] - self.train_ptr[:-1]
        self.item_seen = torch.zeros(I, dtype=torch.bool, device=dev)
        self.item_seen[self.train_col] = True
        self.candidates = self.item_seen.nonzero().view(-1)
        for which, idx in (('valid', valid), ('test', test)):
            unseen = (deg[idx[0]] == 0) | ~self.item_seen[idx[1]]
            if bool(unseen.any()):
                raise ValueError(
                    f"{int(unseen.sum())} {which} interactions have a user "
                    f"or item without training interactions; recommendation "
                    f"splits must be filtered to users and items seen in "
                    f"training (graphkit.data.splits.filter_unseen)")
        # Users with a training item and at least one candidate negative.
        self.sample_users = ((deg > 0) & (deg < self.candidates.numel())
                             ).nonzero().view(-1)
        if self.sample_users.numel() == 0:
            raise ValueError("No user has both a training interaction and an "
                             "item left to sample as a negative")
        u, i = self.train_ptr, self.train_col
        rows = torch.repeat_interleave(torch.arange(U, device=dev),
                                       u[1:] - u[:-1])
        self.edge_index = torch.stack([torch.cat([rows, i + U]),
                                       torch.cat([i + U, rows])])
        # Ground truth and the items removed from each ranking.
        sv_ptr, sv_col, sv_keys = _csr(torch.cat([train, valid], dim=1), U,
                                       I)
        self._eval = {
            'valid': (_csr(valid, U, I), (self.train_ptr, self.train_col)),
            'test': (_csr(test, U, I), (sv_ptr, sv_col)),
        }
        # Fixed validation negatives for ``valid_loss``: not a training or
        # validation item of the user (users with no such item are left
        # out of the loss).
        left = self.candidates.numel() - (sv_ptr[1:] - sv_ptr[:-1])
        self.valid_pairs = valid[:, left[valid[0]] > 0]
        gen = torch.Generator()
        gen.manual_seed(self.valid_negative_seed)
        self.valid_neg = self._negatives(self.valid_pairs[0], sv_keys, gen)

    # -- sampling ------------------------------------------------------------
    def _negatives(self, users: Tensor, keys: Tensor,
                   generator: torch.Generator) -> Tensor:
        r"""One candidate item per user that is absent from ``keys`` (sorted
        user-item keys), by rejection sampling over all users at once."""
        I, cand = self.num_items, self.candidates
        neg = cand[torch.randint(cand.numel(), (users.numel(), ),
                                 generator=generator).to(cand.device)]
        todo = torch.arange(users.numel(), device=users.device)
        while todo.numel():
            bad = _contains(keys, users[todo] * I + neg[todo])
            todo = todo[bad]
            if todo.numel():
                neg[todo] = cand[torch.randint(
                    cand.numel(), (todo.numel(), ),
                    generator=generator).to(cand.device)]
        return neg

    def sample(self, batch_size: int, generator: torch.Generator
               ) -> tuple[Tensor, Tensor, Tensor]:
        r"""A BPR batch ``(users, positives, negatives)``; items 0-based."""
        pool = self.sample_users
        if pool.numel() >= batch_size:
            pick = torch.randperm(pool.numel(), generator=generator)[
                :batch_size]
        else:
            pick = torch.randint(pool.numel(), (batch_size, ),
                                 generator=generator)
        users = pool[pick.to(pool.device)]
        start = self.train_ptr[users]
        deg = self.train_ptr[users + 1] - start
        offset = (torch.rand(batch_size, generator=generator).to(deg.device)
                  * deg).long().clamp(max=deg - 1)
        pos = self.train_col[start + offset]
        neg = self._negatives(users, self.train_keys, generator)
        return users, pos, neg

    def train_batches(self, generator):
        bs = self.batch_size or self.default_batch_size
        for _ in range(max(1, self.num_train // bs)):
            yield self.sample(bs, generator)

    # -- loss ----------------------------------------------------------------
    @staticmethod
    def _embedding_table(model: Module) -> Tensor:
        emb = getattr(model, 'embedding', None)
        if not isinstance(emb, torch.nn.Embedding):
            raise TypeError(f"{type(model).__name__} does not follow the "
                            f"recommendation contract: it needs an attribute "
                            f"'embedding' (torch.nn.Embedding of num_users + "
                            f"num_items rows, the layer-0 embeddings)")
        return emb.weight

    def training_graph(self, users: Tensor, pos: Tensor) -> Tensor:
        r"""The graph the model sees while training on the pairs
        ``(users, pos)``: the training graph, without those interactions
        (both directions) under target-link removal."""
        if not self.target_link_removal:
            return self.edge_index
        # The first half of ``edge_index`` lists the user->item edges in the
        # order of ``train_keys``, the second half the reverse edges.
        hit = torch.searchsorted(self.train_keys,
                                 users * self.num_items + pos)
        keep = torch.ones(self.num_train, dtype=torch.bool,
                          device=self.edge_index.device)
        keep[hit] = False
        return self.edge_index[:, torch.cat([keep, keep])]

    def _embed(self, model: Module, edge_index: Tensor | None = None
               ) -> Tensor:
        out = model(self.edge_index if edge_index is None else edge_index)
        n = self.num_users + self.num_items
        if out.dim() != 2 or out.size(0) != n:
            raise ValueError(f"{type(model).__name__}(edge_index) must return "
                             f"[num_users + num_items, D] = [{n}, D] "
                             f"embeddings, got {tuple(out.shape)}")
        return out

    def loss(self, model, batch) -> Tensor:
        users, pos, neg = batch
        U = self.num_users
        emb = self._embed(model, self.training_graph(users, pos))
        e_u, e_p, e_n = emb[users], emb[U + pos], emb[U + neg]
        bpr = F.softplus((e_u * e_n).sum(-1) - (e_u * e_p).sum(-1)).mean()
        if not self.reg:
            return bpr
        e0 = self._embedding_table(model)
        l2 = 0.5 * (e0[users].pow(2).sum() + e0[U + pos].pow(2).sum()
                    + e0[U + neg].pow(2).sum()) / users.numel()
        return bpr + self.reg * l2

    # -- evaluation ----------------------------------------------------------
    def rank(self, emb: Tensor, which: str, k: int) -> tuple[Tensor, Tensor]:
        r"""Top-``k`` items of each user with ``which`` interactions.

        Returns the ranked items :obj:`[num_eval_users, k]` (fewer columns
        if fewer items are seen in training) and the ground-truth pairs
        :obj:`[2, n]` (row in the ranking, item id).
        """
        (t_ptr, t_col, _), (x_ptr, x_col) = self._eval[which]
        users = ((t_ptr[1:] - t_ptr[:-1]) > 0).nonzero().view(-1)
        U, I = self.num_users, self.num_items
        user_emb, item_emb = emb[:U], emb[U:]
        k = min(k, self.candidates.numel())
        block = max(1, self.eval_batch_size // I)
        tops = []
        for chunk in users.split(block):
            scores = user_emb[chunk] @ item_emb.t()
            scores[:, ~self.item_seen] = float('-inf')
            row, col = _gather_rows(x_ptr, x_col, chunk)
            scores[row, col] = float('-inf')
            tops.append(scores.topk(k, dim=1).indices)
        ranked = (torch.cat(tops) if tops else
                  torch.empty(0, k, dtype=torch.long, device=emb.device))
        row, col = _gather_rows(t_ptr, t_col, users)
        return ranked, torch.stack([row, col])

    @torch.no_grad()
    def evaluate(self, model) -> dict[str, float]:
        model.eval()
        emb = self._embed(model)
        U = self.num_users
        res: dict[str, float] = {}
        for which in ('valid', 'test'):
            ranked, truth = self.rank(emb, which, max(self.ks))
            scores = M.ranking_metrics(ranked, truth, self.ks)
            res[which] = scores[self.metric]
            res.update({f'{which}_{name}': v for name, v in scores.items()})
        u, p = self.valid_pairs
        if u.numel():
            e_u = emb[u]
            diff = ((e_u * emb[U + self.valid_neg]).sum(-1)
                    - (e_u * emb[U + p]).sum(-1))
            res['valid_loss'] = float(F.softplus(diff).mean())
        else:
            res['valid_loss'] = float('nan')
        return res


TASKS: dict[str, type[Task]] = {'node': NodeTask, 'link': LinkTask,
                                'graph': GraphTask,
                                'recommendation': RecommendationTask}


def make_task(bundle: DatasetBundle, **kwargs: Any) -> Task:
    r"""Builds the task for ``bundle.task``."""
    if bundle.task not in TASKS:
        raise ValueError(
            f"No training task is registered for '{bundle.task}' datasets "
            f"('{bundle.name}'). Registered tasks: {', '.join(TASKS)}")
    if bundle.task == 'node' and bundle.info.get('inductive'):
        return GraphNodeTask(bundle, **kwargs)
    return TASKS[bundle.task](bundle, **kwargs)
