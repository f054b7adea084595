r"""Naive dense references on small graphs."""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ['dense_adjacency', 'dense_gcn_layer']


def dense_adjacency(edge_index: Tensor, num_nodes: int) -> Tensor:
    r"""The dense :math:`N \times N` adjacency with
    :math:`A_{ij} = 1` for every edge :math:`j \to i`."""
    adj = torch.zeros(num_nodes, num_nodes)
    adj[edge_index[1], edge_index[0]] = 1.0
    return adj


def dense_gcn_layer(x: Tensor, edge_index: Tensor, weight: Tensor,
                    bias: Tensor | None = None) -> Tensor:
    r"""Kipf & Welling's propagation rule computed densely:

    .. math::
        \hat{D}^{-1/2} (A + I) \hat{D}^{-1/2} X W^\top + b
    """
    n = x.size(0)
    a = dense_adjacency(edge_index, n) + torch.eye(n)
    d = a.sum(1).pow(-0.5)
    out = d.view(-1, 1) * a * d.view(1, -1) @ (x @ weight.t())
    return out if bias is None else out + bias
