r"""Tiny hand-written graphs and permutation helpers."""
from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.utils import to_undirected

__all__ = ['tiny_graph', 'permute_graph']


def tiny_graph(num_features: int = 3, seed: int = 0) -> Data:
    r"""A 6-node undirected graph: a triangle (0, 1, 2), a tail 2-3-4 and an
    isolated node 5, with seeded random features and two classes."""
    gen = torch.Generator().manual_seed(seed)
    edge_index = to_undirected(torch.tensor([[0, 0, 1, 2, 3],
                                             [1, 2, 2, 3, 4]]))
    x = torch.randn(6, num_features, generator=gen)
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    return Data(x=x, edge_index=edge_index, y=y, num_nodes=6)


def permute_graph(data: Data, perm: Tensor) -> Data:
    r"""Relabels node ``perm[i]`` of the original graph as node ``i``:
    features and labels are permuted, edges relabelled accordingly."""
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(perm.numel())
    out = data.clone()
    out.x = data.x[perm]
    if data.y is not None:
        out.y = data.y[perm]
    out.edge_index = inv[data.edge_index]
    return out
