r"""Forward learning (`Park et al., ICLR 2024
<https://openreview.net/forum?id=Abr7dU98ME>`_): single-forward (SF)
training of any layer stack, greedily, layer by layer.

Layer :math:`\ell` trains on its own prototype loss (see
:mod:`graphkit.layers.forward`) with its own optimiser; its input, the
output of the frozen layers below, is computed once and detached, so no
gradient crosses a layer. For GCN and SAGE layers the neighbour aggregation
of that fixed input is also computed once (``cache=True``), and each step
recomputes only the layer's linear maps. A layer trains until
``patience`` evaluations pass without a better validation score (or for
``layer_epochs`` epochs), its best weights are restored, and the next layer
starts. The run ends after the last layer; the selected model is the best
one seen while the last layer trained, i.e. the whole stack.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Module

from graphkit.layers.forward import (cached_propagation, prototype_loss,
                                     row_normalize)
from graphkit.models.forward import ForwardLearner
from graphkit.pipelines.strategies.backprop import NonFiniteLossError
from graphkit.pipelines.strategies.base import Strategy, build_optimizer

__all__ = ['ForwardSF']


class ForwardSF(Strategy):
    r"""Greedy single-forward training of a :class:`ForwardLearner`.

    Args:
        model (ForwardLearner): built by :meth:`build_model`.
        epochs (int): the run's epoch budget; ``layer_epochs`` defaults to
            an equal share per layer.
        layer_epochs (int, optional): most epochs per layer.
        patience (int): evaluations without improvement that end a layer
            (0: every layer trains ``layer_epochs`` epochs).
        cache (bool): reuse the aggregation of a layer's fixed input.
        **kwargs: optimiser settings (one optimiser per layer).
    """
    name = 'forward-sf'
    option_prefix = 'forward'
    needs_epochs = True

    def __init__(self, model: Module, *, optimizer: str = 'adam',
                 lr: float = 1e-3, weight_decay: float = 5e-4,
                 grad_clip: float | None = None, epochs: int = 1000,
                 layer_epochs: int | None = None, patience: int = 100,
                 cache: bool = True, tau: float = 1.0, **_: Any) -> None:
        if not isinstance(model, ForwardLearner):
            raise TypeError(f"'{self.name}' trains a ForwardLearner (built "
                            f"by {type(self).__name__}.build_model), got "
                            f"{type(model).__name__}")
        self.model = model
        self.grad_clip = grad_clip
        self.layer_epochs = (layer_epochs if layer_epochs is not None else
                             max(epochs // model.num_layers, 1))
        if self.layer_epochs < 1 or patience < 0:
            raise ValueError(f"Need layer_epochs >= 1 and patience >= 0, "
                             f"got {self.layer_epochs} and {patience}")
        self.patience, self.cache = patience, cache
        self.opts = [build_optimizer(conv.parameters(), optimizer, lr,
                                     weight_decay) for conv in model.convs]
        self.optimizer = self.opts[0]
        self.higher_is_better = True
        self.current = 0             # the layer being trained
        self.layer_len = 0
        self.bad = 0
        self.best: float | None = None
        self.best_state: dict[str, Tensor] | None = None
        self.layers_log: list[dict[str, Any]] = []
        self._input: tuple[Tensor, Tensor, int, Any] | None = None
        model.active.fill_(1)

    # -- building the model -------------------------------------------------
    @classmethod
    def build_model(cls, name: str, task, dims: dict[str, Any],
                    hparams: dict[str, Any], tau: float = 1.0,
                    **_: Any) -> ForwardLearner:
        r"""The registered stack ``name`` with every layer ``hidden``
        wide (the prototypes live in that space), wrapped for forward
        learning."""
        from graphkit import models
        if task.kind != 'node':
            raise ValueError(f"'{cls.name}' trains node classification "
                             f"(got a {task.kind} task)")
        hidden = hparams.get('hidden_channels') or 128
        dims = dict(dims, out_channels=hidden)
        hparams = dict(hparams, hidden_channels=hidden)
        stack = models.build(name, task=task.kind, **dims, **hparams)
        convs = getattr(stack, 'convs',
                        getattr(getattr(stack, 'encoder', None), 'convs',
                                None))
        if convs is None:
            raise ValueError(f"'{cls.name}' trains a stack of graph "
                             f"convolutions (a model with a 'convs' list, "
                             f"e.g. gcn, sage, gat); '{name}' has none")
        return ForwardLearner(convs, dims['in_channels'],
                              task.bundle.num_classes, tau=tau)

    # -- schedule -------------------------------------------------------------
    @property
    def selectable(self) -> bool:
        return self.current >= self.model.num_layers - 1

    def _prepare(self, task) -> None:
        m = self.model
        data = task.data
        train = task.masks['train'].nonzero().view(-1)
        m.set_labels(train, data.y.view(-1)[train])
        xa, ea = m.augment(data.x, data.edge_index)
        h = xa
        with torch.no_grad():
            for i in range(self.current):
                h = m.layer(i, h, ea)
        h = row_normalize(h).detach()
        fn = (cached_propagation(m.convs[self.current], h, ea)
              if self.cache else None)
        self._input = (h, ea, data.num_nodes, fn)

    def step(self, task, batch: Any) -> dict[str, float]:
        if batch is not None:
            raise ValueError(f"'{self.name}' trains full-batch; unset "
                             f"train.batch_size")
        self.higher_is_better = getattr(task, 'higher_is_better', True)
        if self._input is None:
            self._prepare(task)
        h, ea, n, fn = self._input
        m = self.model
        m.train()
        conv = m.convs[self.current]
        out = F.relu(fn() if fn is not None else conv(h, ea))
        loss = prototype_loss(out[m.label_nodes], out[n:], m.label_classes,
                              m.tau)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"non-finite loss ({float(loss)}) of "
                                     f"layer {self.current}")
        opt = self.opts[self.current]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(conv.parameters(), self.grad_clip)
        opt.step()
        return {'loss': float(loss.detach()), 'layer': self.current}

    def end_epoch(self, epoch: int,
                  scores: dict[str, float] | None) -> bool:
        self.layer_len += 1
        if scores is not None:
            v = scores['valid']
            if self.best is None or (v > self.best if self.higher_is_better
                                     else v < self.best):
                self.best, self.bad = v, 0
                self.best_state = {
                    k: t.detach().clone() for k, t in
                    self.model.convs[self.current].state_dict().items()}
            else:
                self.bad += 1
        if (self.layer_len < self.layer_epochs
                and not (self.patience and self.bad >= self.patience)):
            return False
        # the layer is done: keep its best weights, move up
        if self.best_state is not None:
            self.model.convs[self.current].load_state_dict(self.best_state)
        self.layers_log.append({'layer': self.current,
                                'epochs': self.layer_len,
                                'best_valid': self.best})
        self.layer_len, self.bad = 0, 0
        self.best, self.best_state, self._input = None, None, None
        if self.current == self.model.num_layers - 1:
            return True
        self.current += 1
        self.model.active.fill_(self.current + 1)
        return False

    # -- state --------------------------------------------------------------
    _SCHEDULE = ('current', 'layer_len', 'bad', 'best', 'best_state',
                 'layers_log', 'higher_is_better')

    def state_dict(self) -> dict[str, Any]:
        state = {'optimizers': [o.state_dict() for o in self.opts]}
        state.update({k: getattr(self, k) for k in self._SCHEDULE})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for opt, s in zip(self.opts, state['optimizers']):
            opt.load_state_dict(s)
        for k in self._SCHEDULE:
            setattr(self, k, state[k])
        self._input = None
        self.model.active.fill_(self.current + 1)
