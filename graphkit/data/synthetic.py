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

:func:`sbm_pattern` and :func:`sbm_cluster` draw the many small graphs of
the PATTERN and CLUSTER node-level benchmarks (Dwivedi et al., 2020).
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.data import Data
from torch_geometric.utils import coalesce, remove_self_loops, to_undirected

__all__ = ['csbm', 'sbm', 'edge_homophily', 'sbm_pattern', 'sbm_cluster']


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


# ----------------------------------------------------------------------------
# PATTERN and CLUSTER (Dwivedi et al., "Benchmarking Graph Neural Networks")
# ----------------------------------------------------------------------------


def _block_graph(blocks: Tensor, p: float, q: float,
                 gen: torch.Generator) -> Tensor:
    r"""Undirected SBM edges (both directions) for nodes labelled by
    ``blocks``: each pair :math:`i<j` is joined with probability :math:`p`
    inside a block and :math:`q` across blocks."""
    n = blocks.numel()
    prob = torch.where(blocks.view(-1, 1) == blocks.view(1, -1),
                       torch.tensor(p), torch.tensor(q))
    draw = torch.rand(n, n, generator=gen) < prob
    upper = torch.triu(draw, diagonal=1)
    i, j = upper.nonzero(as_tuple=True)
    return torch.cat([torch.stack([i, j]), torch.stack([j, i])], 1)


def _community_labels(num_blocks: int, size_min: int, size_max: int,
                      gen: torch.Generator) -> Tensor:
    sizes = torch.randint(size_min, size_max, (num_blocks, ), generator=gen)
    return torch.repeat_interleave(torch.arange(num_blocks), sizes)


def _shuffled(edge_index: Tensor, n: int, gen: torch.Generator,
              *node_attrs: Tensor) -> tuple[Tensor, ...]:
    perm = torch.randperm(n, generator=gen)  # new id of old node i: inv
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(n)
    edge_index = coalesce(inv[edge_index], num_nodes=n)
    return (edge_index, ) + tuple(a[perm] for a in node_attrs)


def sbm_pattern(num_graphs: int = 14000, num_communities: int = 5,
                size_min: int = 5, size_max: int = 35, p: float = 0.5,
                q: float = 0.35, pattern_size: int = 20,
                p_pattern: float = 0.5, q_pattern: float = 0.5,
                num_patterns: int = 100, vocab_size: int = 3,
                seed: int = 0) -> list[Data]:
    r"""Graphs of the PATTERN node-classification task: find a fixed
    subgraph (a "pattern") planted in a random SBM graph.

    The procedure of Dwivedi et al. (2020), drawn with our own seeded
    generator (the published samples are not used):

    * :math:`G`: ``num_communities`` blocks, each of a size uniform in
      ``[size_min, size_max)``, edge probability :math:`p` inside and
      :math:`q` across blocks; node features uniform in
      :math:`\{0, \dots, \text{vocab\_size}-1\}`;
    * ``num_patterns`` patterns :math:`P` are drawn once: ``pattern_size``
      nodes with edge probability ``p_pattern`` and their own random
      features; each graph plants one of them, joining each pattern node to
      each node of :math:`G` with probability ``q_pattern``;
    * node ids are shuffled; the label is 1 for pattern nodes, else 0.

    Node features are one-hot over the vocabulary (``x``), so a linear map
    equals the reference's embedding table.

    Returns:
        list of :class:`~torch_geometric.data.Data` with ``x``,
        ``edge_index`` and ``y``.
    """
    gen = torch.Generator()
    gen.manual_seed(int(seed))
    patterns = []
    for _ in range(num_patterns):
        w = _block_graph(torch.zeros(pattern_size, dtype=torch.long),
                         p_pattern, p_pattern, gen)
        u = torch.randint(vocab_size, (pattern_size, ), generator=gen)
        patterns.append((w, u))
    graphs = []
    for _ in range(num_graphs):
        blocks = _community_labels(num_communities, size_min, size_max, gen)
        n0 = blocks.numel()
        ei = _block_graph(blocks, p, q, gen)
        feats = torch.randint(vocab_size, (n0, ), generator=gen)
        pw, pu = patterns[int(torch.randint(num_patterns, (1, ),
                                            generator=gen))]
        link = (torch.rand(pattern_size, n0, generator=gen) <
                q_pattern).nonzero().t()
        link = torch.stack([link[0] + n0, link[1]])
        ei = torch.cat([ei, pw + n0, link, link.flip(0)], 1)
        n = n0 + pattern_size
        y = torch.cat([torch.zeros(n0, dtype=torch.long),
                       torch.ones(pattern_size, dtype=torch.long)])
        feats = torch.cat([feats, pu])
        ei, feats, y = _shuffled(ei, n, gen, feats, y)
        x = torch.nn.functional.one_hot(feats, vocab_size).float()
        graphs.append(Data(x=x, edge_index=ei, y=y, num_nodes=n))
    return graphs


def sbm_cluster(num_graphs: int = 12000, num_clusters: int = 6,
                size_min: int = 5, size_max: int = 35, p: float = 0.55,
                q: float = 0.25, seed: int = 0) -> list[Data]:
    r"""Graphs of the CLUSTER semi-supervised clustering task (Dwivedi et
    al., 2020), drawn with our own seeded generator.

    Each graph is an SBM with ``num_clusters`` blocks of sizes uniform in
    ``[size_min, size_max)``, edge probability :math:`p` inside and
    :math:`q` across blocks. In each block one random node carries its
    block id :math:`c+1` as feature; all others carry 0. The label is the
    block id. Features are one-hot over :math:`\{0, \dots, C\}`.
    """
    gen = torch.Generator()
    gen.manual_seed(int(seed))
    graphs = []
    for _ in range(num_graphs):
        y = _community_labels(num_clusters, size_min, size_max, gen)
        n = y.numel()
        ei = _block_graph(y, p, q, gen)
        feats = torch.zeros(n, dtype=torch.long)
        starts = torch.cat([torch.zeros(1, dtype=torch.long),
                            torch.bincount(y, minlength=num_clusters)
                            .cumsum(0)[:-1]])
        sizes = torch.bincount(y, minlength=num_clusters)
        pick = starts + (torch.rand(num_clusters, generator=gen) *
                         sizes).long()
        feats[pick] = torch.arange(1, num_clusters + 1)
        ei, feats, y = _shuffled(ei, n, gen, feats, y)
        x = torch.nn.functional.one_hot(feats, num_clusters + 1).float()
        graphs.append(Data(x=x, edge_index=ei, y=y, num_nodes=n))
    return graphs
