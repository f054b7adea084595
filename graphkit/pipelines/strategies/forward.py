r"""Forward learning (`Park et al., ICLR 2024
<https://openreview.net/forum?id=Abr7dU98ME>`_): greedy, layer-by-layer
training of any layer stack on layer-local losses.

* ``forward-sf``: single forward; the prototype loss of the class virtual
  nodes (one pass per step, no negatives);
* ``forward-ff-vn``: forward-forward with virtual nodes; the positive copy
  links training nodes to their class's virtual node, each negative copy to
  a wrong class's;
* ``forward-ff-la``: forward-forward with label appending; training nodes
  carry the one-hot of their class (positive) or of a wrong class
  (negatives) as extra features.

The FF losses use the goodness :math:`\sum_d h_d^2` against
:math:`\theta` (see :mod:`graphkit.layers.forward`); by default every one
of the :math:`C - 1` wrong classes gives a negative copy, drawn per node in
random order when a layer starts.

Layer :math:`\ell` trains with its own optimiser on inputs computed once
by the frozen layers below and detached, so no gradient crosses a layer.
For GCN and SAGE layers the neighbour aggregation of those fixed inputs is
also computed once (``cache=True``), and each step recomputes only the
layer's linear maps. A first GCN layer that narrows wide features instead
keeps no copy of its input: it multiplies the raw features by its weights
and rescales the rows (row normalisation commutes with the linear map).
While a layer trains, SF's evaluation reuses the frozen layers' summed
prototype probabilities and the current layer's cached input, rather than
running the whole stack again. A layer trains until ``patience`` evaluations pass
without a better validation score (or for ``layer_epochs`` epochs), its
best weights are restored, and the next layer starts. The run ends after
the last layer; the selected model is the best one seen while the last
layer trained, i.e. the whole stack.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Module

from graphkit.layers.forward import (cached_propagation, ff_loss,
                                     normalized_input_propagation,
                                     prototype_loss)
from graphkit.models.forward import (ForwardLearner, ForwardLinkLearner,
                                     TopDownLearner, TopDownLinkLearner)
from graphkit.pipelines.strategies.backprop import NonFiniteLossError
from graphkit.pipelines.strategies.base import Strategy, build_optimizer

__all__ = ['ForwardLearning', 'ForwardSF', 'ForwardFFVN', 'ForwardFFLA',
           'ForwardTopDown', 'ForwardTopDownLoss']


def _local_step(loss: Tensor, opt: torch.optim.Optimizer, layer: Module,
                grad_clip: float | None, index: int) -> None:
    # one layer's update from its own loss (nothing else has a gradient)
    if not torch.isfinite(loss):
        raise NonFiniteLossError(f"non-finite loss ({float(loss)}) of "
                                 f"layer {index}")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(layer.parameters(), grad_clip)
    opt.step()


def _normalize_(h: Tensor) -> Tensor:
    # row_normalize, in place (for tensors no one else holds)
    return h.div_(h.norm(dim=-1, keepdim=True).add_(1e-8))


class ForwardLearning(Strategy):
    r"""Greedy layer-local training of a :class:`ForwardLearner`; the
    subclasses fix the variant.

    Args:
        model (ForwardLearner): built by :meth:`build_model`.
        epochs (int): the run's ``train.epochs``, read per layer: the
            default ``layer_epochs``.
        layer_epochs (int, optional): most epochs per layer (the run's
            budget is ``layer_epochs`` times the number of layers).
        patience (int): evaluations without improvement that end a layer
            (0: every layer trains ``layer_epochs`` epochs).
        cache (bool): reuse the aggregation of a layer's fixed input.
        num_negatives (int, optional): FF negative copies (default: all
            :math:`C - 1` wrong classes).
        **kwargs: optimiser settings (one optimiser per layer).
    """
    name = ''
    variant = ''
    option_prefix = 'forward'
    protocol = 'forward-sf'     # the CLI's preset family (64/16/20 splits)
    needs_epochs = True
    compare_backprop = True     # the CLI also trains the model end to end

    def __init__(self, model: Module, *, optimizer: str = 'adam',
                 lr: float = 1e-3, weight_decay: float = 5e-4,
                 grad_clip: float | None = None, epochs: int = 1000,
                 layer_epochs: int | None = None, patience: int = 100,
                 cache: bool = True, num_negatives: int | None = None,
                 **_: Any) -> None:
        if not isinstance(model, (ForwardLearner, ForwardLinkLearner)):
            raise TypeError(f"'{self.name}' trains a ForwardLearner or "
                            f"ForwardLinkLearner (built by "
                            f"{type(self).__name__}.build_model), got "
                            f"{type(model).__name__}")
        self.model = model
        self.grad_clip = grad_clip
        self.layer_epochs = (layer_epochs if layer_epochs is not None else
                             epochs)
        if self.layer_epochs < 1 or patience < 0:
            raise ValueError(f"Need layer_epochs >= 1 and patience >= 0, "
                             f"got {self.layer_epochs} and {patience}")
        self.patience, self.cache = patience, cache
        c = getattr(model, 'num_classes', 2)
        self.num_negatives = (c - 1 if num_negatives is None
                              else min(num_negatives, c - 1))
        if self.num_negatives < 1:
            raise ValueError(f"num_negatives must be >= 1, got "
                             f"{num_negatives}")
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
        self._frozen_probs: Tensor | None = None
        model.active.fill_(1)

    # -- building the model -------------------------------------------------
    @classmethod
    def build_model(cls, name: str, task, dims: dict[str, Any],
                    hparams: dict[str, Any], tau: float = 1.0,
                    theta: float = 2.0, **_: Any) -> ForwardLearner:
        r"""The registered stack ``name`` with every layer ``hidden``
        wide (the prototypes and goodness live in that space), wrapped for
        forward learning (``ff-la``: the first layer also reads the label
        block)."""
        from graphkit import models
        if task.kind not in ('node', 'link'):
            raise ValueError(f"'{cls.name}' trains node classification or "
                             f"link prediction (got a {task.kind} task)")
        hidden = hparams.get('hidden_channels') or 128
        in_channels = dims['in_channels']
        dims = dict(dims, out_channels=hidden)
        if cls.variant == 'ff-vn' and 'cached' in dims:
            # the copies and the candidates differ in their edges: a layer
            # must not reuse the normalisation of the first graph it saw
            dims['cached'] = False
        if cls.variant == 'ff-la' and task.kind == 'node':
            dims['in_channels'] = in_channels + task.bundle.num_classes
        hparams = dict(hparams, hidden_channels=hidden)
        stack = models.build(name, task=task.kind, **dims, **hparams)
        convs = getattr(stack, 'convs',
                        getattr(getattr(stack, 'encoder', None), 'convs',
                                None))
        if convs is None:
            raise ValueError(f"'{cls.name}' trains a stack of graph "
                             f"convolutions (a model with a 'convs' list, "
                             f"e.g. gcn, sage, gat); '{name}' has none")
        if task.kind == 'link':     # SF's link form is ForwardGNN-CE
            return ForwardLinkLearner(
                convs, 'ce' if cls.variant == 'sf' else 'ff', theta=theta)
        return ForwardLearner(convs, in_channels, task.bundle.num_classes,
                              variant=cls.variant, tau=tau, theta=theta)

    # -- schedule -------------------------------------------------------------
    def total_epochs(self, epochs: int) -> int:
        return self.layer_epochs * self.model.num_layers

    @property
    def selectable(self) -> bool:
        return self.current >= self.model.num_layers - 1

    def _assignments(self, known: Tensor) -> list[Tensor]:
        r"""The class assignment of each input copy: the known labels
        (positive), then for FF one wrong class per training node and
        copy, the wrong classes in random order per node."""
        if self.variant == 'sf':
            return [known]
        m = self.model
        nodes, y = m.label_nodes, m.label_classes
        c = m.num_classes
        shifts = torch.rand(nodes.numel(), c - 1).argsort(dim=1) + 1
        copies = [known]
        for k in range(self.num_negatives):
            neg = known.clone()
            neg[nodes] = (y + shifts[:, k].to(y.device)) % c
            copies.append(neg)
        return copies

    def _prepare(self, task) -> None:
        m = self.model
        data = task.data
        n = data.num_nodes
        train = task.masks['train'].nonzero().view(-1)
        m.set_labels(train, data.y.view(-1)[train])
        copies = []
        # SF (one input copy): the frozen layers' summed probabilities
        self._frozen_probs = (data.x.new_zeros(n, m.num_classes)
                              if self.variant == 'sf' else None)
        for assign in self._assignments(m.known(n)):
            lazy = self._lazy_first_layer(data, assign)
            if lazy is not None:
                copies.append(lazy)
                continue
            xa, ea = m.inputs(data.x, data.edge_index, assign)
            with torch.no_grad():   # the frozen layers below, once
                h = xa               # (fresh tensors: normalised in place)
                for i in range(self.current):
                    h = F.relu(m.convs[i](_normalize_(h), ea))
                    if self._frozen_probs is not None:
                        self._frozen_probs += m.layer_probs(h, n)
                h = _normalize_(h)
            copies.append(self._cached_copy(h, ea))
        self._input = (copies, n)
        if self.variant == 'sf':
            m.eval_cache = (data.x, data.edge_index, self._cached_eval)

    def _lazy_first_layer(self, data, assign: Tensor) -> tuple | None:
        r"""The first layer's input copy without the stacked, normalised
        ``[N + C, F]`` input, where the layer is a GCN that narrows the
        features (see :func:`normalized_input_propagation`); else None."""
        m = self.model
        conv = m.convs[0]
        if (not self.cache or self.current != 0
                or getattr(conv, 'in_channels', 0)
                <= getattr(conv, 'out_channels', 0)):
            return None
        split = m.input_parts(data.x, data.edge_index, assign)
        if split is None:
            return None
        parts, ea = split
        fn = normalized_input_propagation(conv, parts, ea)
        return None if fn is None else (None, ea, fn)

    @torch.no_grad()
    def _cached_eval(self) -> Tensor:
        r"""SF's prediction (``ForwardLearner.forward``) from the frozen
        layers' summed probabilities and one pass of the current layer over
        its cached input."""
        m = self.model
        m.eval()
        (h, graph, fn), = self._input[0]
        n = self._input[1]
        z = F.relu(fn() if fn is not None else m.convs[self.current](h,
                                                                     graph))
        probs = self._frozen_probs + m.layer_probs(z, n)
        return (probs / (self.current + 1)).clamp_min(1e-12).log()

    def _prepare_link(self, task) -> None:
        m = self.model
        graph = task.adj
        with torch.no_grad():
            h = task.x.clone()
            for i in range(self.current):
                h = F.relu(m.convs[i](_normalize_(h), graph))
            h = _normalize_(h)
        self._input = ([self._cached_copy(h, graph)], task.num_nodes)

    def _link_step(self, task, idx: Tensor) -> dict[str, float]:
        from torch_geometric.utils import negative_sampling
        if self._input is None:
            self._prepare_link(task)
        (h, graph, fn), = self._input[0]
        m = self.model
        m.train()
        conv = m.convs[self.current]
        z = F.relu(fn() if fn is not None else conv(h, graph))
        pos = task.train_pos[:, idx]
        neg = negative_sampling(task.edge_index, num_nodes=task.num_nodes,
                                num_neg_samples=pos.size(1))
        sp, sn = m.pair_scores(z, pos), m.pair_scores(z, neg)
        loss = (F.binary_cross_entropy_with_logits(sp, torch.ones_like(sp))
                + F.binary_cross_entropy_with_logits(sn,
                                                     torch.zeros_like(sn)))
        return self._update(loss, conv)

    def _update(self, loss: Tensor, conv: Module) -> dict[str, float]:
        _local_step(loss, self.opts[self.current], conv, self.grad_clip,
                    self.current)
        return {'loss': float(loss.detach()), 'layer': self.current}

    def step(self, task, batch: Any) -> dict[str, float]:
        self.higher_is_better = getattr(task, 'higher_is_better', True)
        if task.kind == 'link':
            return self._link_step(task, batch)
        if batch is not None:
            raise ValueError(f"'{self.name}' trains node classification "
                             f"full-batch; unset train.batch_size")
        if self._input is None:
            self._prepare(task)
        copies, n = self._input
        m = self.model
        m.train()
        conv = m.convs[self.current]
        outs = [F.relu(fn() if fn is not None else conv(h, ea))
                for h, ea, fn in copies]
        nodes = m.label_nodes
        if self.variant == 'sf':
            loss = prototype_loss(outs[0][nodes], outs[0][n:],
                                  m.label_classes, m.tau)
        else:
            loss = ff_loss(outs[0][nodes], [o[nodes] for o in outs[1:]],
                           m.theta)
        return self._update(loss, conv)

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
        conv = self.model.convs[self.current]
        if self.best_state is not None:
            conv.load_state_dict(self.best_state)
        # a frozen layer never steps again: drop its gradients and its
        # optimiser's moments, so memory does not grow with depth
        conv.zero_grad(set_to_none=True)
        self.opts[self.current].state.clear()
        self.layers_log.append({'layer': self.current,
                                'epochs': self.layer_len,
                                'best_valid': self.best})
        self.layer_len, self.bad = 0, 0
        self.best, self.best_state = None, None
        if self.current == self.model.num_layers - 1:
            self._input = None
            self.model.eval_cache = None
            return True
        # the next layer's inputs: one pass of the finished layer over its
        # own (cached) inputs, instead of the whole frozen stack again
        nxt = self._next_inputs()
        self.current += 1
        self.model.active.fill_(self.current + 1)
        self._input = (None if nxt is None else
                       ([self._cached_copy(h, g) for h, g in nxt[0]],
                        nxt[1]))
        if self._input is None:
            self.model.eval_cache = None
        return False

    def _cached_copy(self, h: Tensor, graph: Any) -> tuple:
        r"""One input copy of the current layer: (the input, or None when
        the cached propagation holds all it needs; the graph; the cached
        propagation, or None)."""
        # h is always a fresh tensor here: a GCN layer's aggregation may
        # overwrite it
        fn = (cached_propagation(self.model.convs[self.current], h, graph,
                                 inplace=True)
              if self.cache and isinstance(graph, Tensor)
              and graph.layout == torch.strided else None)
        return (None if fn is not None else h, graph, fn)

    @torch.no_grad()
    def _next_inputs(self) -> tuple[list, int] | None:
        if self._input is None:
            return None
        copies, n = self._input
        conv = self.model.convs[self.current]
        out = []
        for k, (h, graph, fn) in enumerate(copies):
            z = F.relu(fn() if fn is not None else conv(h, graph))
            if k == 0 and self._frozen_probs is not None:
                # the finished layer joins the frozen part of the prediction
                self._frozen_probs = (self._frozen_probs
                                      + self.model.layer_probs(z, n))
            out.append((_normalize_(z), graph))
        return out, n

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
        self.model.eval_cache = None    # rebuilt by the next step
        self.model.active.fill_(self.current + 1)


class ForwardSF(ForwardLearning):
    r"""Single forward: the prototype loss, no negatives."""
    name, variant = 'forward-sf', 'sf'


class ForwardFFVN(ForwardLearning):
    r"""Forward-forward with class virtual nodes."""
    name, variant = 'forward-ff-vn', 'ff-vn'


class ForwardFFLA(ForwardLearning):
    r"""Forward-forward with label appending."""
    name, variant = 'forward-ff-la', 'ff-la'


class ForwardTopDown(Strategy):
    r"""SF-TopDown: every layer takes one local step per epoch (a time
    step), in the order of :meth:`TopDownLearner.order`, on the prototype
    loss; the recurrent states carry over between epochs (and
    checkpoints). On a link task ``forward-topdown`` trains a
    :class:`TopDownLinkLearner` the same way, each layer on its own BCE
    loss of dot-product pair scores, without weight decay (the paper's
    setting). ``forward-topdown`` is the Top-To-Input form,
    ``forward-topdown-loss`` the Top-To-Loss form (gradient norms clipped
    at 1 unless ``optim.grad_clip`` says otherwise). Inputs change every
    step, so no aggregation is cached.
    """
    name = 'forward-topdown'
    form = 'input'
    option_prefix = 'forward'
    protocol = 'forward-sf'
    compare_backprop = True

    def __init__(self, model: Module, *, optimizer: str = 'adam',
                 lr: float = 1e-3, weight_decay: float = 5e-4,
                 grad_clip: float | None = None, **_: Any) -> None:
        if not isinstance(model, (TopDownLearner, TopDownLinkLearner)):
            raise TypeError(f"'{self.name}' trains a TopDownLearner or "
                            f"TopDownLinkLearner (built by "
                            f"{type(self).__name__}.build_model), got "
                            f"{type(model).__name__}")
        if isinstance(model, TopDownLinkLearner):
            # the paper's link-prediction TopDown trains without decay
            weight_decay = 0.0
        self.model = model
        self.grad_clip = (grad_clip if grad_clip is not None else
                          1.0 if self.form == 'loss' else None)
        self.opts = [build_optimizer(conv.parameters(), optimizer, lr,
                                     weight_decay) for conv in model.convs]
        self.optimizer = self.opts[0]
        self.states: list[Tensor] | None = None

    @classmethod
    def build_model(cls, name: str, task, dims: dict[str, Any],
                    hparams: dict[str, Any], tau: float = 1.0,
                    test_steps: int = 10, **_: Any) -> TopDownLearner:
        r"""One layer of the registered stack ``name`` per level, each
        ``hidden`` wide, with the top-down input widths."""
        from torch.nn import ModuleList

        from graphkit import models
        if task.kind not in ('node', 'link') or (task.kind == 'link'
                                                 and cls.form != 'input'):
            raise ValueError(
                f"'{cls.name}' trains node classification"
                f"{' or link prediction' if cls.form == 'input' else ''} "
                f"(got a {task.kind} task)")
        hidden = hparams.get('hidden_channels') or 128
        layers = hparams.get('num_layers') or 2
        link = task.kind == 'link'
        classes = 0 if link else task.bundle.num_classes
        widths = (TopDownLinkLearner.input_widths(dims['in_channels'],
                                                  hidden, layers) if link
                  else TopDownLearner.input_widths(
                      dims['in_channels'], hidden, classes, layers,
                      cls.form))
        convs = ModuleList()
        for width in widths:
            one = models.build(name, task=task.kind,
                               **dict(dims, in_channels=width,
                                      out_channels=hidden),
                               **dict(hparams, hidden_channels=hidden,
                                      num_layers=1))
            stack = getattr(one, 'encoder', one)
            if not hasattr(stack, 'convs'):
                raise ValueError(f"'{cls.name}' trains a stack of graph "
                                 f"convolutions (a model with a 'convs' "
                                 f"list); '{name}' has none")
            convs.append(stack.convs[0])
        if link:
            return TopDownLinkLearner(convs, hidden, test_steps=test_steps)
        return TopDownLearner(convs, dims['in_channels'], classes, hidden,
                              form=cls.form, tau=tau, test_steps=test_steps)

    def _link_step(self, task, idx: Tensor) -> dict[str, float]:
        r"""One time step for links: every layer, in :meth:`order`, takes
        one step on its own BCE loss over the batch's positive pairs and
        as many uniform negatives."""
        from torch_geometric.utils import negative_sampling
        m = self.model
        x, graph = task.x, task.adj
        if x is None:
            raise ValueError("forward learning for links needs node "
                             "features (the dataset has none)")
        if self.states is None:
            with torch.no_grad():
                self.states = [s.detach() for s in m.bottom_up(x, graph)]
        m.train()
        pos = task.train_pos[:, idx]
        neg = negative_sampling(task.edge_index, num_nodes=task.num_nodes,
                                num_neg_samples=pos.size(1))
        losses = []
        for i in m.order():
            conv = m.convs[i]
            h = F.relu(conv(m.layer_input(i, self.states, x), graph))
            sp, sn = m.pair_scores(h, pos), m.pair_scores(h, neg)
            loss = (F.binary_cross_entropy_with_logits(
                sp, torch.ones_like(sp))
                + F.binary_cross_entropy_with_logits(
                    sn, torch.zeros_like(sn)))
            _local_step(loss, self.opts[i], conv, self.grad_clip, i)
            self.states[i] = h.detach()
            losses.append(float(loss.detach()))
        return {'loss': sum(losses) / len(losses)}

    def step(self, task, batch: Any) -> dict[str, float]:
        if task.kind == 'link':
            return self._link_step(task, batch)
        if batch is not None:
            raise ValueError(f"'{self.name}' trains full-batch; unset "
                             f"train.batch_size")
        m = self.model
        data = task.data
        n = data.num_nodes
        train = task.masks['train'].nonzero().view(-1)
        m.set_labels(train, data.y.view(-1)[train])
        xa, ea, y = m.inputs(data.x, data.edge_index)
        if self.states is None:
            with torch.no_grad():
                self.states = [s.detach() for s in m.bottom_up(xa, ea, y)]
        m.train()
        prev = list(self.states)            # step t - 1
        order = m.order() if m.form == 'input' else range(m.num_layers)
        losses = []
        for i in order:
            conv = m.convs[i]
            h = F.relu(conv(m.layer_input(i, self.states, xa, y), ea))
            z = m.loss_states(i, h, prev)
            loss = prototype_loss(z[m.label_nodes], z[n:], m.label_classes,
                                  m.tau)
            _local_step(loss, self.opts[i], conv, self.grad_clip, i)
            self.states[i] = h.detach()
            losses.append(float(loss.detach()))
        return {'loss': sum(losses) / len(losses)}

    def state_dict(self) -> dict[str, Any]:
        return {'optimizers': [o.state_dict() for o in self.opts],
                'states': self.states}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for opt, s in zip(self.opts, state['optimizers']):
            opt.load_state_dict(s)
        self.states = state['states']


class ForwardTopDownLoss(ForwardTopDown):
    r"""SF-TopDown, Top-To-Loss form."""
    name, form = 'forward-topdown-loss', 'loss'
