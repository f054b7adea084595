r"""A layer stack prepared for single-forward (SF) learning (`Park et al.,
ICLR 2024 <https://openreview.net/forum?id=Abr7dU98ME>`_).

:class:`ForwardLearner` takes the convolutions of any registered stack
(anything with a ``convs`` list, e.g. PyG's GCN, GraphSAGE and GAT) and
runs them as

.. math::
    \mathbf{H}^\ell = \mathrm{ReLU}\big(\mathrm{Conv}_\ell(
    \mathrm{norm}(\mathbf{H}^{\ell-1}), \mathcal{E}')\big)

on the graph augmented with one virtual node per class (fixed random
features), linked in both directions to the training nodes of that class
(:math:`\mathcal{E}'`). A node's prediction sums, over the trained layers,
the softmax of its similarity to the class prototypes (the virtual nodes'
states):

.. math::
    \hat{\mathbf{y}}_i = \sum_\ell \mathrm{softmax}_k\big(
    \langle\mathbf{h}^\ell_i, \mathbf{c}^\ell_k\rangle / \tau\big).

:meth:`forward` returns :math:`\log(\hat{\mathbf{y}}_i / L)` for the real
nodes, so the pipeline's evaluation works unchanged. Training is the
``forward-sf`` strategy's.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Module, ModuleList

from graphkit.layers.forward import (add_class_virtual_nodes,
                                     prototype_logits, row_normalize)

__all__ = ['ForwardLearner']


class ForwardLearner(Module):
    r"""Convolutions trained layer by layer with class prototypes.

    Args:
        convs (ModuleList): the layers, each ``conv(x, edge_index)``.
        in_channels (int): input features (of the virtual nodes too).
        num_classes (int): classes, hence virtual nodes.
        tau (float): prototype temperature.
        seed (int): seed of the virtual nodes' random features.
    """
    def __init__(self, convs: ModuleList, in_channels: int,
                 num_classes: int, tau: float = 1.0, seed: int = 0) -> None:
        super().__init__()
        if len(convs) < 1:
            raise ValueError("ForwardLearner needs at least one layer")
        if num_classes < 2:
            raise ValueError(f"ForwardLearner needs >= 2 classes, got "
                             f"{num_classes}")
        self.convs = convs
        self.tau = tau
        g = torch.Generator().manual_seed(seed)
        self.register_buffer('virtual_x',
                             torch.randn(num_classes, in_channels,
                                         generator=g))
        # training nodes and labels that the virtual nodes link to
        self.register_buffer('label_nodes', torch.empty(0,
                                                        dtype=torch.long))
        self.register_buffer('label_classes',
                             torch.empty(0, dtype=torch.long))
        # how many layers the prediction uses (the ones trained so far)
        self.register_buffer('active', torch.tensor(len(convs)))

    @property
    def num_layers(self) -> int:
        return len(self.convs)

    @property
    def num_classes(self) -> int:
        return self.virtual_x.size(0)

    def set_labels(self, nodes: Tensor, classes: Tensor) -> None:
        r"""The (training) nodes linked to their class's virtual node."""
        self.label_nodes = nodes.to(self.virtual_x.device).long()
        self.label_classes = classes.to(self.virtual_x.device).long()

    def augment(self, x: Tensor, edge_index: Tensor
                ) -> tuple[Tensor, Tensor]:
        r"""The graph with the class virtual nodes (after the real ones)."""
        if x.size(1) != self.virtual_x.size(1):
            raise ValueError(f"expected {self.virtual_x.size(1)} input "
                             f"features, got {x.size(1)}")
        return add_class_virtual_nodes(x, edge_index, self.virtual_x,
                                       self.label_nodes, self.label_classes)

    def layer(self, index: int, h: Tensor, edge_index: Tensor) -> Tensor:
        r"""Layer ``index`` on the previous states ``h`` (normalised
        here): :math:`\mathrm{ReLU}(\mathrm{Conv}(\mathrm{norm}(h)))`."""
        return F.relu(self.convs[index](row_normalize(h), edge_index))

    def states(self, x: Tensor, edge_index: Tensor,
               layers: int | None = None) -> list[Tensor]:
        r"""The augmented graph's states after each of the first
        ``layers`` layers (each layer's input detached)."""
        xa, ea = self.augment(x, edge_index)
        out, h = [], xa
        for i in range(self.num_layers if layers is None else layers):
            h = self.layer(i, h.detach(), ea)
            out.append(h)
        return out

    def layer_probs(self, h: Tensor, n: int) -> Tensor:
        r"""Prototype class probabilities of the ``n`` real nodes."""
        return prototype_logits(h[:n], h[n:], self.tau).softmax(-1)

    def forward(self, x: Tensor, edge_index: Tensor, **_: Any) -> Tensor:
        n = x.size(0)
        active = int(self.active)
        probs = sum(self.layer_probs(h, n)
                    for h in self.states(x, edge_index, active))
        return (probs / active).clamp_min(1e-12).log()

    def reset_parameters(self) -> None:
        for conv in self.convs:
            conv.reset_parameters()
