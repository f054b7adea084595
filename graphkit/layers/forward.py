r"""Building blocks of forward learning for GNNs (`Park et al., ICLR 2024
<https://openreview.net/forum?id=Abr7dU98ME>`_): every layer is trained by a
loss of its own output, on a detached input, so no gradient crosses a layer.

* Row normalisation before every layer:
  :math:`\tilde{\mathbf{h}}_i = \mathbf{h}_i / (\lVert\mathbf{h}_i\rVert_2
  + 10^{-8})`.
* Class virtual nodes: :math:`C` extra nodes with fixed random features,
  and an edge in each direction between every training node :math:`i` and
  the virtual node of its class :math:`c_{y_i}`.
* Single-forward (SF) loss: the virtual nodes' outputs at layer
  :math:`\ell` are class prototypes :math:`\mathbf{c}^\ell_k`, and

  .. math::
      \mathcal{L}_\ell = -\frac{1}{|V_{tr}|}\sum_{i \in V_{tr}}
      \log\frac{\exp(\langle\mathbf{h}^\ell_i, \mathbf{c}^\ell_{y_i}\rangle
      / \tau)}{\sum_k \exp(\langle\mathbf{h}^\ell_i, \mathbf{c}^\ell_k
      \rangle / \tau)}.

* Forward-forward (FF) loss on the goodness :math:`g(\mathbf{h}) =
  \sum_d h_d^2`: :math:`\mathrm{BCE}(g(\mathbf{h}^+) - \theta, 1) +
  \mathrm{mean}_k\,\mathrm{BCE}(g(\mathbf{h}^-_k) - \theta, 0)`.
* Cached propagation: with a frozen input :math:`\mathbf{X}`, a GCN layer
  :math:`\hat{\mathbf{A}}\mathbf{X}\mathbf{W} + \mathbf{b}` and a mean
  SAGE layer :math:`\mathbf{W}_1\,\mathrm{mean}_{j \in N(i)}\mathbf{x}_j +
  \mathbf{W}_2\mathbf{x}_i` only need the aggregation
  :math:`\hat{\mathbf{A}}\mathbf{X}` once; training then recomputes the
  linear maps alone.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Module

__all__ = ['row_normalize', 'goodness', 'ff_loss', 'prototype_logits',
           'prototype_loss', 'add_class_virtual_nodes', 'class_virtual_edges',
           'cached_propagation', 'normalized_input_propagation']


def row_normalize(x: Tensor, eps: float = 1e-8) -> Tensor:
    r"""Each row divided by its L2 norm (plus ``eps``)."""
    return x / (x.norm(dim=-1, keepdim=True) + eps)


def goodness(h: Tensor) -> Tensor:
    r""":math:`g(\mathbf{h}_i) = \sum_d h_{i,d}^2`, shape :obj:`[N]`."""
    return h.pow(2).sum(-1)


def ff_loss(h_pos: Tensor, h_negs: list[Tensor], theta: float = 2.0
            ) -> Tensor:
    r"""The forward-forward loss: positive goodness above ``theta``, each
    negative copy's below it, as binary cross-entropy on
    :math:`g - \theta`."""
    if not h_negs:
        raise ValueError("ff_loss needs at least one negative copy")
    pos = goodness(h_pos) - theta
    loss = F.binary_cross_entropy_with_logits(pos, torch.ones_like(pos))
    neg = torch.stack([
        F.binary_cross_entropy_with_logits(
            goodness(h) - theta, torch.zeros_like(pos)) for h in h_negs])
    return loss + neg.mean()


def prototype_logits(h: Tensor, prototypes: Tensor, tau: float = 1.0
                     ) -> Tensor:
    r""":math:`\langle\mathbf{h}_i, \mathbf{c}_k\rangle / \tau`, shape
    :obj:`[N, C]`."""
    if h.size(-1) != prototypes.size(-1):
        raise ValueError(f"node states ({h.size(-1)} channels) and "
                         f"prototypes ({prototypes.size(-1)}) differ in "
                         f"width")
    return h @ prototypes.t() / tau


def prototype_loss(h: Tensor, prototypes: Tensor, y: Tensor,
                   tau: float = 1.0) -> Tensor:
    r"""SF's layer loss: cross-entropy of the prototype logits."""
    return F.cross_entropy(prototype_logits(h, prototypes, tau), y)


def add_class_virtual_nodes(x: Tensor, edge_index: Tensor,
                            virtual_x: Tensor, nodes: Tensor,
                            classes: Tensor) -> tuple[Tensor, Tensor]:
    r"""Appends one virtual node per class (features ``virtual_x``, shape
    :obj:`[C, F]`) after the :math:`N` real nodes, and an edge in each
    direction between ``nodes[i]`` and virtual node ``N + classes[i]``.

    Returns the features :obj:`[N + C, F]` and the edges
    :obj:`[2, E + 2 |nodes|]` (the original edges first)."""
    if virtual_x.dim() != 2 or virtual_x.size(1) != x.size(1):
        raise ValueError(f"virtual node features must have shape [C, "
                         f"{x.size(1)}], got {tuple(virtual_x.shape)}")
    if nodes.shape != classes.shape:
        raise ValueError(f"nodes {tuple(nodes.shape)} and classes "
                         f"{tuple(classes.shape)} must match")
    n, c = x.size(0), virtual_x.size(0)
    if classes.numel() and (int(classes.min()) < 0
                            or int(classes.max()) >= c):
        raise ValueError(f"classes must lie in [0, {c}), got "
                         f"[{int(classes.min())}, {int(classes.max())}]")
    return (torch.cat([x, virtual_x.to(x.dtype)], dim=0),
            class_virtual_edges(edge_index, nodes, classes, n))


def class_virtual_edges(edge_index: Tensor, nodes: Tensor, classes: Tensor,
                        num_nodes: int) -> Tensor:
    r"""The edges of :func:`add_class_virtual_nodes` alone: ``edge_index``
    followed by an edge in each direction between ``nodes[i]`` and virtual
    node ``num_nodes + classes[i]``."""
    virt = classes.to(edge_index.device) + num_nodes
    nodes = nodes.to(edge_index.device)
    extra = torch.cat([torch.stack([nodes, virt]),
                       torch.stack([virt, nodes])], dim=1)
    return torch.cat([edge_index, extra], dim=1)


def normalized_input_propagation(conv: Module, parts: list[Tensor],
                                 edge_index: Tensor, eps: float = 1e-8
                                 ) -> Callable[[], Tensor] | None:
    r"""For a GCN layer whose input is the row-normalised stack of
    ``parts`` (e.g. the node features and the class virtual nodes'
    features): a function computing ``conv(row_normalize(cat(parts)),
    edge_index)`` that never builds that :math:`N \times F_{in}` input.
    Row normalisation is a diagonal scaling :math:`\mathbf{S}`, so

    .. math::
        \hat{\mathbf{A}}(\mathbf{S}\mathbf{X})\mathbf{W} + \mathbf{b}
        = \hat{\mathbf{A}}\,\mathbf{S}(\mathbf{X}\mathbf{W}) + \mathbf{b},

    and each call multiplies the parts by :math:`\mathbf{W}`, rescales the
    :math:`N \times F_{out}` rows and aggregates them. Where
    :math:`F_{in} > F_{out}` this costs the same product per step as a
    cached aggregation (:func:`cached_propagation`) without holding its
    :math:`N \times F_{in}` array. ``None`` for layers other than
    :class:`~torch_geometric.nn.conv.GCNConv`."""
    from torch_geometric.nn.conv import GCNConv
    from torch_geometric.nn.conv.gcn_conv import gcn_norm
    if not isinstance(conv, GCNConv):
        return None
    parts = [p.detach() for p in parts]
    n = sum(p.size(0) for p in parts)
    dtype = parts[0].dtype
    scale = torch.cat([1.0 / (p.norm(dim=-1) + eps) for p in parts])
    if conv.normalize:
        ei, w = gcn_norm(edge_index, None, n, conv.improved,
                         conv.add_self_loops, conv.flow, dtype)
    else:
        ei, w = edge_index, scale.new_ones(edge_index.size(1))
    # fold S into the adjacency's columns: A S z = (A S) z
    adj = _sparse_adjacency(ei, w * scale[ei[0]], n)

    def gcn() -> Tensor:
        z = torch.cat([conv.lin(p.to(dtype)) for p in parts])
        out = torch.sparse.mm(adj, z)
        return out if conv.bias is None else out + conv.bias
    return gcn


def _sparse_adjacency(edge_index: Tensor, weight: Tensor, n: int) -> Tensor:
    # rows = targets (messages flow source -> target, PyG's default)
    return torch.sparse_coo_tensor(edge_index.flip(0), weight,
                                   (n, n)).coalesce()


def _propagate_by_columns(adj: Tensor, x: Tensor, out: Tensor | None = None,
                          width: int = 256) -> Tensor:
    # adj @ x one block of columns at a time: torch.sparse.mm builds a
    # temporary as large as its result, so whole-width products would hold
    # three [N, F] arrays at once. Column block j of the product reads only
    # column block j of x, so ``out`` may be ``x`` itself.
    if out is None:
        out = x.new_empty(adj.size(0), x.size(1))
    for start in range(0, x.size(1), width):
        cols = slice(start, start + width)
        out[:, cols] = torch.sparse.mm(adj, x[:, cols])
    return out


def cached_propagation(conv: Module, x: Tensor, edge_index: Tensor,
                       inplace: bool = False
                       ) -> Callable[[], Tensor] | None:
    r"""For a frozen input ``x``: a function computing ``conv(x,
    edge_index)`` from an aggregation done once here, or ``None`` when the
    layer cannot be split that way (then call the layer itself).

    Supported: :class:`~torch_geometric.nn.conv.GCNConv` (any
    normalisation settings) and :class:`~torch_geometric.nn.conv.SAGEConv`
    with ``mean`` or ``sum`` aggregation and no projection.

    The aggregation runs a block of feature columns at a time, so it needs
    one :math:`N \times F` array beside ``x``. With ``inplace=True`` a GCN
    layer's aggregation overwrites ``x`` instead (for an input no one else
    holds), and no second array is allocated."""
    from torch_geometric.nn.conv import GCNConv, SAGEConv
    from torch_geometric.nn.conv.gcn_conv import gcn_norm
    n = x.size(0)
    x = x.detach()
    if isinstance(conv, GCNConv):
        if conv.normalize:
            ei, w = gcn_norm(edge_index, None, n, conv.improved,
                             conv.add_self_loops, conv.flow, x.dtype)
        else:
            ei, w = edge_index, x.new_ones(edge_index.size(1))
        agg = _propagate_by_columns(_sparse_adjacency(ei, w, n), x,
                                    out=x if inplace else None)
        del x

        def gcn() -> Tensor:
            out = conv.lin(agg)
            return out if conv.bias is None else out + conv.bias
        return gcn
    if (isinstance(conv, SAGEConv) and not conv.project
            and str(conv.aggr) in ('mean', 'sum')):
        adj = _sparse_adjacency(edge_index, x.new_ones(edge_index.size(1)),
                                n)
        agg = _propagate_by_columns(adj, x)
        if str(conv.aggr) == 'mean':
            deg = torch.sparse.sum(adj, dim=1).to_dense().clamp(min=1)
            agg = agg / deg.unsqueeze(-1)

        def sage() -> Tensor:
            out = conv.lin_l(agg)
            if conv.root_weight:
                out = out + conv.lin_r(x)
            return F.normalize(out, p=2., dim=-1) if conv.normalize else out
        return sage
    return None
