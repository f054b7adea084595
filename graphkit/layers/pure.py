r"""Weightless ("pure") message passing, as used by the NCN / NCNC encoders
(`Wang, Yang and Zhang, ICLR 2024 <https://arxiv.org/abs/2302.00890>`_):
one linear input map followed by parameter-free propagation, i.e. an
SGC-like encoder.

The graph may be an ``edge_index`` :obj:`[2, E]` or a ``torch.sparse``
adjacency (CSR or COO); aggregation goes through PyG's
:class:`~torch_geometric.nn.conv.SimpleConv`.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.nn import Identity, Linear, Module, Parameter

from torch_geometric.nn.conv import SimpleConv
from torch_geometric.utils import degree, dropout_edge

from graphkit.layers.sparse_input import IdentityCache, dropout_linear
from graphkit.utils.tensor import MaskDropout, mask_dropout

__all__ = ['PureConv', 'PureGNN', 'drop_graph_edges']

_AGGRS = ('gcn', 'sum', 'mean', 'max')


def _is_sparse(graph: Any) -> bool:
    return isinstance(graph, Tensor) and graph.layout != torch.strided


def drop_graph_edges(graph: Any, p: float, training: bool) -> Any:
    r"""Edge dropout on an ``edge_index`` or a ``torch.sparse`` adjacency:
    each stored (directed) entry is kept with probability :math:`1 - p`.
    Values are not rescaled (the pure convolutions ignore them)."""
    if not training or p <= 0.0:
        return graph
    if not _is_sparse(graph):
        return dropout_edge(graph, p=p, training=True)[0]
    coo = graph.to_sparse_coo().coalesce()
    keep = torch.rand(coo.values().numel(), device=coo.device) >= p
    out = torch.sparse_coo_tensor(coo.indices()[:, keep], coo.values()[keep],
                                  coo.shape).coalesce()
    return out.to_sparse_csr() if graph.layout == torch.sparse_csr else out


def in_degree(graph: Any, num_nodes: int, dtype: torch.dtype) -> Tensor:
    r"""Number of stored entries per aggregating node."""
    if _is_sparse(graph):
        if graph.layout == torch.sparse_csr:
            return graph.crow_indices().diff().to(dtype)
        idx = graph.to_sparse_coo().coalesce().indices()
        return degree(idx[0], num_nodes, dtype=dtype)
    return degree(graph[1], num_nodes, dtype=dtype)


class PureConv(Module):
    r"""Parameter-free propagation.

    .. math::
        \mathrm{gcn}: \; \mathbf{x}'_i = \frac{1}{\sqrt{1 + d_i}}\Big(
        \frac{\mathbf{x}_i}{\sqrt{1 + d_i}} + \sum_{j \in N(i)}
        \frac{\mathbf{x}_j}{\sqrt{1 + d_j}}\Big), \qquad
        \mathrm{sum / mean / max}: \; \mathbf{x}'_i =
        \bigoplus_{j \in N(i)} \mathbf{x}_j

    ``gcn`` is :math:`\hat D^{-1/2}(A + I)\hat D^{-1/2}\mathbf{x}` without
    a weight matrix.

    Args:
        aggr (str): ``gcn``, ``sum``, ``mean`` or ``max``.
    """
    def __init__(self, aggr: str = 'gcn') -> None:
        super().__init__()
        if aggr not in _AGGRS:
            raise ValueError(f"Unknown pure aggregation '{aggr}'. Valid: "
                             f"{', '.join(_AGGRS)}")
        self.aggr = aggr
        self.conv = SimpleConv(aggr='sum' if aggr == 'gcn' else aggr)

    def forward(self, x: Tensor, edge_index: Any) -> Tensor:
        if self.aggr != 'gcn':
            return self.conv(x, edge_index)
        norm = (in_degree(edge_index, x.size(0), x.dtype) + 1.0).rsqrt()
        x = x * norm.view(-1, 1)
        return (self.conv(x, edge_index) + x) * norm.view(-1, 1)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(aggr={self.aggr})'


class PureGNN(Module):
    r"""A linear input map followed by :math:`L` pure convolutions:

    .. math::
        \mathbf{X}^{(0)} = \mathrm{drop}_{d}\big(\mathrm{drop}_{in}(
        \mathbf{X})\,W\big), \qquad
        \mathbf{X}^{(l)} = P\,\mathbf{X}^{(l-1)}
        \;[+\, \mathbf{X}^{(l-1)}], \qquad
        \mathbf{H} = \mathrm{drop}_{t}(\mathbf{X}^{(L)}) \;\text{ or }\;
        \textstyle\sum_l w_l \mathbf{X}^{(l)}

    where :math:`P` is a :class:`PureConv` (the last layer's output goes
    through the tail dropout :math:`\mathrm{drop}_t`, the optional residual
    is added after it) and ``jk='sum'`` returns the weighted sum of the
    layer outputs with learnable weights :math:`w_l` (initialised from
    :math:`\mathcal{N}(0, 1)`).

    Args:
        in_channels (int): input features.
        out_channels (int): output width.
        num_layers (int): propagation steps :math:`L`.
        aggr (str): aggregation of :class:`PureConv`.
        dropout (float): dropout after the input map.
        input_dropout (float): dropout on the input features.
        tail_dropout (float): dropout on the last propagation output.
        edge_dropout (float): edge dropout at every layer (training only).
        jk (str, optional): :obj:`None`/``last`` or ``sum``.
        residual (bool): :math:`\mathbf{X}^{(l)} \mathrel{+}=
            \mathbf{X}^{(l-1)}`.
        input_linear (bool): apply :math:`W`; without it the input (e.g. a
            learned embedding table) must already have ``out_channels``
            columns.
    """
    def __init__(self, in_channels: int, out_channels: int,
                 num_layers: int = 1, aggr: str = 'gcn', dropout: float = 0.0,
                 input_dropout: float = 0.0, tail_dropout: float = 0.0,
                 edge_dropout: float = 0.0, jk: str | None = None,
                 residual: bool = False, input_linear: bool = True) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"PureGNN needs num_layers >= 1, got "
                             f"{num_layers}")
        if jk not in (None, 'last', 'sum'):
            raise ValueError(f"PureGNN supports jk=None, 'last' or 'sum', "
                             f"got '{jk}'")
        if not input_linear and in_channels != out_channels:
            raise ValueError(f"Without an input map in_channels "
                             f"({in_channels}) must equal out_channels "
                             f"({out_channels})")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.lin = Linear(in_channels, out_channels) if input_linear \
            else Identity()
        self.input_dropout = input_dropout
        self._input_cache = IdentityCache()
        self.dropout = MaskDropout(dropout)
        self.tail_dropout = MaskDropout(tail_dropout)
        self.edge_dropout = edge_dropout
        self.convs = torch.nn.ModuleList(PureConv(aggr)
                                         for _ in range(num_layers))
        self.residual = residual
        self.jk = jk if jk == 'sum' else None
        self.jk_weight = (Parameter(torch.empty(num_layers))
                          if self.jk else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        if isinstance(self.lin, Linear):
            self.lin.reset_parameters()
        if self.jk_weight is not None:
            torch.nn.init.normal_(self.jk_weight)

    def forward(self, x: Tensor, edge_index: Any, **kwargs: Any) -> Tensor:
        if x.dim() != 2 or x.size(1) != self.in_channels:
            raise ValueError(f"PureGNN expects x of shape [N, "
                             f"{self.in_channels}], got {tuple(x.shape)}")
        if isinstance(self.lin, Linear):
            # Bag-of-words inputs: dropout on the non-zeros and a sparse
            # product (same distribution as dense dropout, O(nnz) cost).
            xs = self._input_cache.row_sparse(x)
            x = dropout_linear(xs, self.lin, self.input_dropout,
                               self.training)
        else:
            x = mask_dropout(x, self.input_dropout, self.training)
        x = self.dropout(x)
        outs = []
        for i, conv in enumerate(self.convs):
            graph = drop_graph_edges(edge_index, self.edge_dropout,
                                     self.training)
            out = conv(x, graph)
            if i == len(self.convs) - 1:
                out = self.tail_dropout(out)
            x = out + x if self.residual else out
            outs.append(x)
        if self.jk_weight is None:
            return x
        return (torch.stack(outs) * self.jk_weight.view(-1, 1, 1)).sum(0)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.in_channels}, '
                f'{self.out_channels}, num_layers={len(self.convs)}, '
                f'aggr={self.convs[0].aggr})')
