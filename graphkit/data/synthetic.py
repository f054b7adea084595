r"""Seeded synthetic graphs with a homophily setting, for tests and offline
demos.

Both generators draw an undirected graph from a degree-corrected-free
stochastic block model parameterised by its *edge homophily* :math:`h`: each
edge joins two nodes of the same class with probability :math:`h` and nodes
of different classes otherwise.

* :func:`csbm` (contextual SBM, Deshpande et al. 2018) adds Gaussian node
  features whose class means are separated by ``feature_separation``.
* :func:`sbm` gives uninformative standard-normal features, so only the
  structure carries the labels.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.utils import coalesce, remove_self_loops, to_undirected

__all__ = ['csbm', 'sbm', 'edge_homophily']


def edge_homophily(edge_index: Tensor, y: Tensor) -> float:
    r"""Fraction of edges whose endpoints share a label."""
    if edge_index.numel() == 0:
        return float('nan')
    return float((y[edge_index[0]] == y[edge_index[1]]).float().mean())


def _sbm_graph(num_nodes: int, num_classes: int, homophily: float,
               avg_degree: float, gen: torch.Generator) -> tuple[Tensor,
                                                                Tensor]:
    if not 0.0 <= homophily <= 1.0:
        raise ValueError(f"homophily must lie in [0, 1], got {homophily}")
    if num_classes < 2 or num_nodes < num_classes:
        raise ValueError(f"Need num_classes >= 2 and num_nodes >= "
                         f"num_classes, got {num_nodes=} {num_classes=}")
    y = torch.arange(num_nodes) % num_classes
    y = y[torch.randperm(num_nodes, generator=gen)]
    members = [(y == k).nonzero().view(-1) for k in range(num_classes)]
    sizes = torch.tensor([m.numel() for m in members])
    num_edges = int(round(avg_degree * num_nodes / 2))
    src = torch.randint(num_nodes, (num_edges, ), generator=gen)
    same = torch.rand(num_edges, generator=gen) < homophily
    offset = torch.randint(1, num_classes, (num_edges, ), generator=gen)
    dst_class = torch.where(same, y[src], (y[src] + offset) % num_classes)
    pick = (torch.rand(num_edges, generator=gen) *
            sizes[dst_class]).long()
    dst = torch.empty_like(src)
    for k in range(num_classes):
        sel = dst_class == k
        dst[sel] = members[k][pick[sel]]
    edge_index = torch.stack([src, dst])
    edge_index, _ = remove_self_loops(edge_index)
    edge_index = to_undirected(coalesce(edge_index, num_nodes=num_nodes),
                               num_nodes=num_nodes)
    return edge_index, y


def csbm(num_nodes: int = 500, num_classes: int = 3, homophily: float = 0.8,
         avg_degree: float = 8.0, num_features: int = 32,
         feature_separation: float = 1.0, seed: int = 0) -> Data:
    r"""Contextual stochastic block model.

    Node :math:`i` of class :math:`y_i` gets features
    :math:`\mathbf{x}_i = \mu\,\mathbf{m}_{y_i} + \boldsymbol{\epsilon}_i`
    with unit-norm random class means :math:`\mathbf{m}_k` and
    :math:`\boldsymbol{\epsilon}_i \sim \mathcal{N}(0, I/F)`.

    Args:
        num_nodes (int): number of nodes.
        num_classes (int): number of classes (balanced).
        homophily (float): expected edge homophily :math:`h \in [0, 1]`.
        avg_degree (float): expected average degree.
        num_features (int): feature dimension :math:`F`.
        feature_separation (float): :math:`\mu`, the distance scale of the
            class means.
        seed (int): random seed; equal seeds give identical graphs.
    """
    gen = torch.Generator()
    gen.manual_seed(int(seed))
    edge_index, y = _sbm_graph(num_nodes, num_classes, homophily, avg_degree,
                               gen)
    means = torch.randn(num_classes, num_features, generator=gen)
    means = means / means.norm(dim=1, keepdim=True)
    noise = torch.randn(num_nodes, num_features, generator=gen)
    x = feature_separation * means[y] + noise / num_features**0.5
    return Data(x=x, edge_index=edge_index, y=y, num_nodes=num_nodes)


def sbm(num_nodes: int = 500, num_classes: int = 3, homophily: float = 0.8,
        avg_degree: float = 8.0, num_features: int = 16,
        seed: int = 0) -> Data:
    r"""Stochastic block model with uninformative standard-normal features.

    Args are as in :func:`csbm`, without ``feature_separation``.
    """
    gen = torch.Generator()
    gen.manual_seed(int(seed))
    edge_index, y = _sbm_graph(num_nodes, num_classes, homophily, avg_degree,
                               gen)
    x = torch.randn(num_nodes, num_features, generator=gen)
    return Data(x=x, edge_index=edge_index, y=y, num_nodes=num_nodes)
