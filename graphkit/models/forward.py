r"""A layer stack prepared for forward learning (`Park et al., ICLR 2024
<https://openreview.net/forum?id=Abr7dU98ME>`_).

:class:`ForwardLearner` takes the convolutions of any registered stack
(anything with a ``convs`` list, e.g. PyG's GCN, GraphSAGE and GAT) and
runs them as

.. math::
    \mathbf{H}^\ell = \mathrm{ReLU}\big(\mathrm{Conv}_\ell(
    \mathrm{norm}(\mathbf{H}^{\ell-1}), \mathcal{E}')\big)

on an input that carries a class assignment :math:`a_i` for some nodes
(the training labels, or a candidate class at inference):

* ``sf`` and ``ff-vn``: the graph gains one virtual node per class (fixed
  random features), linked in both directions to the nodes assigned to
  that class;
* ``ff-la``: each node's features get a label block, the one-hot of
  :math:`a_i`, or :math:`1/C` everywhere for unassigned nodes.

Predictions:

* ``sf``: :math:`\hat{\mathbf{y}}_i = \sum_\ell \mathrm{softmax}_k(
  \langle\mathbf{h}^\ell_i, \mathbf{c}^\ell_k\rangle / \tau)`, with the
  virtual nodes' states as class prototypes :math:`\mathbf{c}^\ell_k`;
* ``ff-*``: for every class :math:`c`, the unlabelled nodes are assigned
  :math:`c` and the score is the goodness summed over layers,
  :math:`s_{ic} = \sum_\ell (\mathrm{mean}_d (h^\ell_{i,d})^2 - \theta)`
  (:math:`C` passes of the stack).

:meth:`forward` returns log-probabilities (of :math:`\hat{\mathbf{y}} / L`,
or the softmax of the scores) for the real nodes, so the pipeline's
evaluation works unchanged. Training is the ``forward-*`` strategies'.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Module, ModuleList

from graphkit.layers.forward import (add_class_virtual_nodes,
                                     class_virtual_edges, prototype_logits,
                                     row_normalize)

__all__ = ['ForwardLearner', 'ForwardLinkLearner', 'TopDownLearner',
           'TopDownLinkLearner', 'VARIANTS']

VARIANTS = ('sf', 'ff-vn', 'ff-la')


class _ClassNodeStack(Module):
    r"""Shared state of the node-classification learners: the layers, the
    class virtual nodes' fixed random features and the labelled nodes."""
    def __init__(self, convs: ModuleList, in_channels: int,
                 num_classes: int, seed: int) -> None:
        super().__init__()
        if len(convs) < 1:
            raise ValueError(f"{type(self).__name__} needs at least one "
                             f"layer")
        if num_classes < 2:
            raise ValueError(f"{type(self).__name__} needs >= 2 classes, "
                             f"got {num_classes}")
        self.convs = convs
        self.in_channels = in_channels
        g = torch.Generator().manual_seed(seed)
        self.register_buffer('virtual_x',
                             torch.randn(num_classes, in_channels,
                                         generator=g))
        # the labelled (training) nodes and their classes
        self.register_buffer('label_nodes', torch.empty(0,
                                                        dtype=torch.long))
        self.register_buffer('label_classes',
                             torch.empty(0, dtype=torch.long))

    @property
    def num_layers(self) -> int:
        return len(self.convs)

    @property
    def num_classes(self) -> int:
        return self.virtual_x.size(0)

    def set_labels(self, nodes: Tensor, classes: Tensor) -> None:
        r"""The labelled (training) nodes and their classes."""
        self.label_nodes = nodes.to(self.virtual_x.device).long()
        self.label_classes = classes.to(self.virtual_x.device).long()

    def reset_parameters(self) -> None:
        for conv in self.convs:
            conv.reset_parameters()


class ForwardLearner(_ClassNodeStack):
    r"""Convolutions trained layer by layer on local losses.

    Args:
        convs (ModuleList): the layers, each ``conv(x, edge_index)``; with
            ``ff-la`` the first takes ``in_channels + num_classes``.
        in_channels (int): node features.
        num_classes (int): classes.
        variant (str): ``sf``, ``ff-vn`` or ``ff-la``.
        tau (float): prototype temperature (``sf``).
        theta (float): goodness threshold (``ff-*``).
        seed (int): seed of the virtual nodes' random features.
    """
    def __init__(self, convs: ModuleList, in_channels: int,
                 num_classes: int, variant: str = 'sf', tau: float = 1.0,
                 theta: float = 2.0, seed: int = 0) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"Unknown forward-learning variant "
                             f"'{variant}'. Valid: {', '.join(VARIANTS)}")
        super().__init__(convs, in_channels, num_classes, seed)
        self.variant, self.tau, self.theta = variant, tau, theta
        # how many layers the prediction uses (the ones trained so far)
        self.register_buffer('active', torch.tensor(len(convs)))
        # (x, edge_index, fn): set by the forward-sf strategy while a layer
        # trains; fn() gives forward(x, edge_index) from cached states
        self.eval_cache: tuple[Tensor, Tensor, Any] | None = None

    def known(self, num_nodes: int) -> Tensor:
        r"""Per node, its known class, or -1."""
        a = torch.full((num_nodes, ), -1, dtype=torch.long,
                       device=self.virtual_x.device)
        a[self.label_nodes] = self.label_classes
        return a

    def _assignment(self, x: Tensor, assign: Tensor | None) -> Tensor:
        # checks the features; the known labels unless told otherwise
        if x.size(1) != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input features, "
                             f"got {x.size(1)}")
        return self.known(x.size(0)) if assign is None else assign

    def inputs(self, x: Tensor, edge_index: Tensor,
               assign: Tensor | None = None) -> tuple[Tensor, Tensor]:
        r"""Features and edges for a class assignment (per node, a class
        or -1; default: the known labels). ``sf`` / ``ff-vn`` append the
        virtual nodes after the real ones."""
        split = self.input_parts(x, edge_index, assign)
        if split is not None:
            parts, edges = split
            return torch.cat(parts, dim=0), edges
        assign = self._assignment(x, assign)       # ff-la: a label block
        block = x.new_full((x.size(0), self.num_classes),
                           1.0 / self.num_classes)
        on = assign >= 0
        block[on] = F.one_hot(assign[on], self.num_classes).to(x.dtype)
        return torch.cat([x, block], dim=1), edge_index

    def input_parts(self, x: Tensor, edge_index: Tensor,
                    assign: Tensor | None = None
                    ) -> tuple[list[Tensor], Tensor] | None:
        r"""The input of :meth:`inputs` as row blocks, without stacking
        them: ``([x, virtual_x], edges)`` for ``sf`` / ``ff-vn``, ``None``
        for ``ff-la`` (whose label block adds columns)."""
        if self.variant == 'ff-la':
            return None
        assign = self._assignment(x, assign)
        nodes = (assign >= 0).nonzero().view(-1)
        return ([x, self.virtual_x.to(x.dtype)],
                class_virtual_edges(edge_index, nodes, assign[nodes],
                                    x.size(0)))

    def augment(self, x: Tensor, edge_index: Tensor
                ) -> tuple[Tensor, Tensor]:
        r"""The training input: the known labels only."""
        return self.inputs(x, edge_index)

    def layer(self, index: int, h: Tensor, edge_index: Tensor) -> Tensor:
        r"""Layer ``index`` on the previous states ``h`` (normalised
        here): :math:`\mathrm{ReLU}(\mathrm{Conv}(\mathrm{norm}(h)))`."""
        return F.relu(self.convs[index](row_normalize(h), edge_index))

    def states(self, x: Tensor, edge_index: Tensor,
               layers: int | None = None,
               assign: Tensor | None = None) -> list[Tensor]:
        r"""The states after each of the first ``layers`` layers (each
        layer's input detached)."""
        h, ea = self.inputs(x, edge_index, assign)
        out = []
        for i in range(self.num_layers if layers is None else layers):
            h = self.layer(i, h.detach(), ea)
            out.append(h)
        return out

    def layer_probs(self, h: Tensor, n: int) -> Tensor:
        r"""Prototype class probabilities of the ``n`` real nodes."""
        return prototype_logits(h[:n], h[n:], self.tau).softmax(-1)

    def task_predict(self, task) -> Tensor:
        r"""Inference on a pipeline task's whole graph. While the
        ``forward-sf`` strategy trains a layer, the layers below it are
        frozen, so their summed prototype probabilities are fixed; the
        strategy then offers them, with the current layer's cached input, in
        :attr:`eval_cache`, and this uses them when ``task`` holds the very
        tensors they were computed from. Otherwise (another graph, another
        variant, a finished or restored model) it runs :meth:`forward`."""
        cache = self.eval_cache
        if (cache is not None and not task.batch_size
                and cache[0] is task.data.x
                and cache[1] is task.data.edge_index):
            return cache[2]()
        return task.predict(self, call=self)

    def forward(self, x: Tensor, edge_index: Tensor, **_: Any) -> Tensor:
        n = x.size(0)
        active = int(self.active)
        if self.variant == 'sf':
            probs = sum(self.layer_probs(h, n)
                        for h in self.states(x, edge_index, active))
            return (probs / active).clamp_min(1e-12).log()
        known = self.known(n)
        scores = []
        for c in range(self.num_classes):
            assign = torch.where(known >= 0, known, torch.full_like(known,
                                                                    c))
            scores.append(sum(h[:n].pow(2).mean(-1) - self.theta
                              for h in self.states(x, edge_index, active,
                                                   assign)))
        return torch.stack(scores, dim=1).log_softmax(-1)


class ForwardLinkLearner(Module):
    r"""The link-prediction form of forward learning: each layer
    :math:`\mathbf{z}^\ell = \mathrm{ReLU}(\mathrm{Conv}_\ell(
    \mathrm{norm}(\mathbf{z}^{\ell-1})))` scores a pair by

    * ``ce`` (ForwardGNN-CE): :math:`s^\ell_{ij} = \langle\mathbf{z}^\ell_i,
      \mathbf{z}^\ell_j\rangle`, trained with binary cross-entropy;
    * ``ff``: the pair goodness :math:`s^\ell_{ij} = \sum_d (z^\ell_{i,d}
      z^\ell_{j,d})^2 - \theta`, trained with the FF loss;

    and a pair's probability is :math:`\frac{1}{L}\sum_\ell
    \sigma(s^\ell_{ij})` over the trained layers. :meth:`encode` returns
    the stacked layer states :obj:`[L, N, H]` and :meth:`decode` the logit
    of that probability, the pipeline's link interface.

    Args:
        convs (ModuleList): the layers.
        variant (str): ``ce`` or ``ff``.
        theta (float): goodness threshold (``ff``).
    """
    def __init__(self, convs: ModuleList, variant: str = 'ce',
                 theta: float = 2.0) -> None:
        super().__init__()
        if variant not in ('ce', 'ff'):
            raise ValueError(f"Unknown link forward-learning variant "
                             f"'{variant}'. Valid: ce, ff")
        if len(convs) < 1:
            raise ValueError("ForwardLinkLearner needs at least one layer")
        self.convs = convs
        self.variant, self.theta = variant, theta
        self.register_buffer('active', torch.tensor(len(convs)))

    @property
    def num_layers(self) -> int:
        return len(self.convs)

    def layer(self, index: int, h: Tensor, edge_index: Any) -> Tensor:
        return F.relu(self.convs[index](row_normalize(h), edge_index))

    def pair_scores(self, z: Tensor, pairs: Tensor) -> Tensor:
        r""":math:`s_{ij}` of one layer's states ``z`` for ``pairs``
        :obj:`[2, B]`."""
        prod = z[pairs[0]] * z[pairs[1]]
        if self.variant == 'ce':
            return prod.sum(-1)
        return prod.pow(2).sum(-1) - self.theta

    def encode(self, x: Tensor, edge_index: Any, **_: Any) -> Tensor:
        if x is None:
            raise ValueError("forward learning for links needs node "
                             "features (the dataset has none)")
        out, h = [], x
        for i in range(int(self.active)):
            h = self.layer(i, h.detach(), edge_index)
            out.append(h)
        return torch.stack(out)

    def decode(self, h: Tensor, pairs: Tensor, graph: Any = None) -> Tensor:
        p = torch.stack([torch.sigmoid(self.pair_scores(z, pairs))
                         for z in h]).mean(0)
        p = p.clamp(1e-7, 1 - 1e-7)
        return p.log() - (-p).log1p()

    def forward(self, x: Tensor, edge_index: Any, **_: Any) -> Tensor:
        return self.encode(x, edge_index)

    def reset_parameters(self) -> None:
        for conv in self.convs:
            conv.reset_parameters()


class TopDownLearner(_ClassNodeStack):
    r"""SF with top-down signals (Park et al., Sec. 4.3): all layers train
    together over time steps on the prototype loss of the class virtual
    nodes.

    * ``form='input'`` (Top-To-Input, the paper's SF-TopDown): layer
      :math:`\ell` reads :math:`[\mathrm{norm}(\mathbf{h}^{\ell-1}_t)
      \,\Vert\, \mathrm{norm}(\mathbf{h}^{\ell+1}_{t-1})]`; above the top
      layer is the label matrix :math:`\mathbf{Y}` (training nodes one-hot,
      other real nodes uniform, virtual nodes their own class). The first
      states come from a bottom-up pass with the top-down inputs zero.
      Prediction runs ``test_steps`` recurrent steps and sums the
      prototype probabilities of every layer over steps ``2 ..
      test_steps - 1``.
    * ``form='loss'`` (Top-To-Loss): bottom-up inputs; layer :math:`\ell`'s
      loss reads the mean of its state and the (stop-gradient) states of
      the layers above. Prediction sums those means' prototype
      probabilities over layers.

    Args:
        convs (ModuleList): the layers, with input widths
            :meth:`input_widths` (``form='input'``) or a plain stack.
        in_channels (int), num_classes (int), hidden (int): widths.
        form (str): ``input`` or ``loss``.
        tau (float): prototype temperature.
        test_steps (int): recurrent steps at inference (``input``).
        seed (int): seed of the virtual nodes' features.
    """
    def __init__(self, convs: ModuleList, in_channels: int,
                 num_classes: int, hidden: int, form: str = 'input',
                 tau: float = 1.0, test_steps: int = 10,
                 seed: int = 0) -> None:
        if form not in ('input', 'loss'):
            raise ValueError(f"form must be 'input' or 'loss', got "
                             f"'{form}'")
        if test_steps < 3:
            raise ValueError(f"test_steps must be >= 3, got {test_steps}")
        super().__init__(convs, in_channels, num_classes, seed)
        self.form, self.tau, self.test_steps = form, tau, test_steps
        self.hidden = hidden

    @staticmethod
    def input_widths(in_channels: int, hidden: int, num_classes: int,
                     num_layers: int, form: str = 'input') -> list[int]:
        r"""Each layer's input width: :math:`d_{\ell-1} + d_{\ell+1}`
        (``input``), else :math:`d_{\ell-1}`."""
        below = [in_channels] + [hidden] * (num_layers - 1)
        if form != 'input':
            return below
        above = [hidden] * (num_layers - 1) + [num_classes]
        return [b + a for b, a in zip(below, above)]

    def inputs(self, x: Tensor, edge_index: Tensor
               ) -> tuple[Tensor, Tensor, Tensor]:
        r"""Augmented features and edges, and the label matrix
        :math:`\mathbf{Y}` :obj:`[N + C, C]`."""
        n, c = x.size(0), self.num_classes
        xa, ea = add_class_virtual_nodes(x, edge_index, self.virtual_x,
                                         self.label_nodes,
                                         self.label_classes)
        y = x.new_full((n + c, c), 1.0 / c)
        y[self.label_nodes] = F.one_hot(self.label_classes, c).to(x.dtype)
        y[n:] = torch.eye(c, dtype=x.dtype, device=x.device)
        return xa, ea, y

    def layer_input(self, index: int, states: list[Tensor], xa: Tensor,
                    y: Tensor, zero_top: bool = False) -> Tensor:
        r"""Layer ``index``'s (detached) input from the current states."""
        below = row_normalize(xa if index == 0 else states[index - 1])
        if self.form != 'input':
            return below.detach()
        last = index == self.num_layers - 1
        if zero_top:
            top = below.new_zeros(below.size(0),
                                  y.size(1) if last else self.hidden)
        else:
            top = row_normalize(y if last else states[index + 1])
        return torch.cat([below, top], dim=1).detach()

    def bottom_up(self, xa: Tensor, ea: Tensor, y: Tensor) -> list[Tensor]:
        r"""The initial states: one pass with the top-down inputs zero."""
        states: list[Tensor] = []
        for i in range(self.num_layers):
            inp = self.layer_input(i, states, xa, y, zero_top=True)
            states.append(F.relu(self.convs[i](inp, ea)))
        return states

    def order(self) -> list[int]:
        r"""Update order within a step: even layers, then odd ones."""
        return (list(range(0, self.num_layers, 2))
                + list(range(1, self.num_layers, 2)))

    def loss_states(self, index: int, h: Tensor,
                    states: list[Tensor]) -> Tensor:
        r"""What layer ``index``'s loss reads: its state (``input``), or
        its mean with the detached states above (``loss``)."""
        if self.form == 'input' or index == self.num_layers - 1:
            return h
        above = [s.detach() for s in states[index + 1:]]
        return torch.stack([h] + above).mean(0)

    def forward(self, x: Tensor, edge_index: Tensor, **_: Any) -> Tensor:
        n = x.size(0)
        xa, ea, y = self.inputs(x, edge_index)
        states = self.bottom_up(xa, ea, y)
        probs = 0.0
        if self.form == 'loss':
            for i in range(self.num_layers):
                z = self.loss_states(i, states[i], states)
                probs = probs + prototype_logits(z[:n], z[n:],
                                                 self.tau).softmax(-1)
            return (probs / self.num_layers).clamp_min(1e-12).log()
        count = 0
        for t in range(1, self.test_steps):
            for i in self.order():
                states[i] = F.relu(self.convs[i](
                    self.layer_input(i, states, xa, y), ea))
            if t >= 2:
                for h in states:
                    probs = probs + prototype_logits(h[:n], h[n:],
                                                     self.tau).softmax(-1)
                    count += 1
        return (probs / count).clamp_min(1e-12).log()


class TopDownLinkLearner(ForwardLinkLearner):
    r"""SF-TopDown for link prediction (Top-To-Input form): layer
    :math:`\ell` reads :math:`[\mathrm{norm}(\mathbf{z}^{\ell-1}_t)
    \,\Vert\, \mathrm{norm}(\mathbf{z}^{\ell+1}_{t-1})]`, and the top
    layer, with nothing above it, reads the layer below alone. Every layer
    scores pairs by :math:`\langle\mathbf{z}^\ell_i,
    \mathbf{z}^\ell_j\rangle` with its own BCE loss (ForwardGNN-CE). The
    first states come from a bottom-up pass with the top-down inputs zero.
    :meth:`encode` runs ``test_steps`` recurrent steps and returns the
    states of every layer at steps :math:`2 .. \text{test\_steps} - 1`,
    so :meth:`decode` averages :math:`\sigma(s_{ij})` over layers and
    steps.

    Args:
        convs (ModuleList): the layers, with input widths
            :meth:`input_widths`.
        hidden (int): the layers' width.
        test_steps (int): recurrent steps at inference.
    """
    def __init__(self, convs: ModuleList, hidden: int,
                 test_steps: int = 10) -> None:
        super().__init__(convs, 'ce')
        if test_steps < 3:
            raise ValueError(f"test_steps must be >= 3, got {test_steps}")
        self.hidden, self.test_steps = hidden, test_steps

    @staticmethod
    def input_widths(in_channels: int, hidden: int,
                     num_layers: int) -> list[int]:
        r""":math:`d_{\ell-1} + d_{\ell+1}` below the top layer,
        :math:`d_{L-1}` at the top."""
        below = [in_channels] + [hidden] * (num_layers - 1)
        return [b + (hidden if i < num_layers - 1 else 0)
                for i, b in enumerate(below)]

    def layer_input(self, index: int, states: list[Tensor], x: Tensor,
                    zero_top: bool = False) -> Tensor:
        r"""Layer ``index``'s (detached) input from the current states."""
        below = row_normalize(x if index == 0 else states[index - 1])
        if index == self.num_layers - 1:
            return below.detach()
        top = (below.new_zeros(below.size(0), self.hidden) if zero_top
               else row_normalize(states[index + 1]))
        return torch.cat([below, top], dim=1).detach()

    def bottom_up(self, x: Tensor, edge_index: Any) -> list[Tensor]:
        r"""The initial states: one pass with the top-down inputs zero."""
        states: list[Tensor] = []
        for i in range(self.num_layers):
            states.append(F.relu(self.convs[i](
                self.layer_input(i, states, x, zero_top=True), edge_index)))
        return states

    def order(self) -> list[int]:
        r"""Update order within a step: even layers, then odd ones."""
        return (list(range(0, self.num_layers, 2))
                + list(range(1, self.num_layers, 2)))

    def encode(self, x: Tensor, edge_index: Any, **_: Any) -> Tensor:
        if x is None:
            raise ValueError("forward learning for links needs node "
                             "features (the dataset has none)")
        states = self.bottom_up(x, edge_index)
        out = []
        for t in range(1, self.test_steps):
            for i in self.order():
                states[i] = F.relu(self.convs[i](
                    self.layer_input(i, states, x), edge_index))
            if t >= 2:
                out.extend(states)
        return torch.stack(out)
