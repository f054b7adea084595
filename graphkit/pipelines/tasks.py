r"""Tasks: each knows its loss, its batched prediction and its metric.

A task wraps a :class:`~graphkit.data.DatasetBundle`. Per run, the loop calls
:meth:`Task.setup` with that run's split, then iterates
:meth:`Task.train_batches`, hands each batch to a strategy (which calls
:meth:`Task.loss`), and calls :meth:`Task.evaluate`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Module

from graphkit.data import loaders
from graphkit.data.registry import DatasetBundle, lower_is_better
from graphkit.pipelines import metrics as M

__all__ = ['Task', 'NodeTask', 'LinkTask', 'GraphTask', 'make_task',
           'TASKS']


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
            self.data = data.to(self.device)
        self.masks = {k: split.mask(k).to(self.data.y.device)
                      for k in ('train', 'valid', 'test')}

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

    def loss(self, model, batch) -> Tensor:
        if batch is None:
            out = model(self.data.x, self.data.edge_index,
                        **self.graph_inputs(model, self.data))
            m = self.masks['train']
            return self._criterion(out[m], self.data.y[m])
        batch = batch.to(self.device)
        out = model(batch.x, batch.edge_index,
                    **self.graph_inputs(model, batch))[:batch.batch_size]
        return self._criterion(out, batch.y[:batch.batch_size])

    @torch.no_grad()
    def predict(self, model: Module) -> Tensor:
        r"""Logits of every node (full-batch, or layer-exact mini-batches
        over all neighbours)."""
        model.eval()
        if not self.batch_size:
            return model(self.data.x, self.data.edge_index,
                         **self.graph_inputs(model, self.data))
        loader = loaders.neighbor_loader(
            self.data, None, self.eval_batch_size,
            [-1] * len(self.num_neighbors), shuffle=False)
        outs = []
        for batch in loader:
            batch = batch.to(self.device)
            outs.append(model(batch.x, batch.edge_index,
                              **self.graph_inputs(model, batch))
                        [:batch.batch_size].cpu())
        return torch.cat(outs)

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
        return res


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
    """
    kind = 'link'
    sparse_threshold = 200_000
    dense_negatives_max_nodes = 20_000
    static_graph = True

    def model_dims(self) -> dict[str, Any]:
        out = super().model_dims()
        out['num_nodes'] = self.bundle.data.num_nodes
        return out

    def setup(self, split) -> None:
        super().setup(split)
        from torch_geometric.utils import to_torch_csr_tensor
        data = self.bundle.data
        self.num_nodes = data.num_nodes
        self.x = None if data.x is None else data.x.to(self.device)
        self.edge_index = split.edge_index.to(self.device)
        if self.edge_index.size(1) >= self.sparse_threshold:
            self.adj = to_torch_csr_tensor(self.edge_index,
                                           size=(self.num_nodes,
                                                 self.num_nodes))
        else:
            self.adj = self.edge_index
        self.train_pos = split.train_pos.to(self.device)
        self.data = data.to(self.device)

    def train_batches(self, generator):
        for idx in loaders.index_batches(self.train_pos.size(1),
                                         self.batch_size, True, generator):
            yield idx.to(self.device)

    def loss(self, model, idx: Tensor) -> Tensor:
        from torch_geometric.utils import negative_sampling
        pos_pairs = self.train_pos[:, idx]
        method = ('dense' if self.num_nodes <= self.dense_negatives_max_nodes
                  else 'sparse')
        neg_pairs = negative_sampling(self.edge_index,
                                      num_nodes=self.num_nodes,
                                      num_neg_samples=idx.numel(),
                                      method=method)
        h = model.encode(self.x, self.adj,
                         **self.graph_inputs(model, self.data))
        pos = model.decode(h, pos_pairs, self.adj)
        neg = model.decode(h, neg_pairs, self.adj)
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

    def model_dims(self) -> dict[str, Any]:
        out = super().model_dims()
        out['atom_features'] = bool(self.bundle.info.get('atom_features'))
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
        for which in ('train', 'valid', 'test'):
            out, y = self._predict(model, which)
            res[which] = self.score(out, y)
            if which == 'valid':
                res['valid_loss'] = float(self._criterion(out, y))
        return res


TASKS: dict[str, type[Task]] = {'node': NodeTask, 'link': LinkTask,
                                'graph': GraphTask}


def make_task(bundle: DatasetBundle, **kwargs: Any) -> Task:
    r"""Builds the task for ``bundle.task``."""
    if bundle.task not in TASKS:
        raise ValueError(
            f"No training task is registered for '{bundle.task}' datasets "
            f"('{bundle.name}'). Registered tasks: {', '.join(TASKS)}")
    return TASKS[bundle.task](bundle, **kwargs)
