r"""Vectorised clique listing and flower-petal (FP) operator weights.

Cliques are listed on the *degree-ordered DAG*: every undirected edge is
oriented from the endpoint of lower (degree, id) rank to the higher one, so
each vertex has at most :math:`O(\sqrt{m})` out-neighbours and every clique
appears exactly once, as a rank-increasing vertex tuple. A clique of size
:math:`s` is extended to size :math:`s + 1` by the out-neighbours of its
last vertex that are adjacent to all its other vertices; adjacency is tested
by binary search over sorted edge keys. No Python loop runs over edges or
cliques, and candidates are processed in bounded chunks.
"""
from __future__ import annotations

import torch
from torch import Tensor

from graphkit.utils.tensor import check_index

__all__ = ['simple_undirected', 'iter_cliques', 'list_cliques',
           'flower_petal_weights']


def simple_undirected(edge_index: Tensor, num_nodes: int) -> Tensor:
    r"""Symmetrises ``edge_index``, drops self-loops and duplicate edges.
    Returns the coalesced edge list with both directions."""
    from torch_geometric.utils import coalesce, remove_self_loops
    from torch_geometric.utils import to_undirected
    check_index(edge_index)
    ei, _ = remove_self_loops(edge_index)
    return coalesce(to_undirected(ei, num_nodes=num_nodes),
                    num_nodes=num_nodes)


def _dag(edge_index: Tensor, num_nodes: int) -> tuple[Tensor, Tensor, Tensor]:
    r"""Orients a simple undirected graph by (degree, id) rank. Returns the
    CSR of the DAG (``ptr``, ``col``) and its sorted edge keys."""
    deg = torch.bincount(edge_index[0], minlength=num_nodes)
    rank = torch.empty(num_nodes, dtype=torch.long)
    order = torch.argsort(deg * num_nodes + torch.arange(num_nodes))
    rank[order] = torch.arange(num_nodes)
    src, dst = edge_index
    keep = rank[src] < rank[dst]
    src, dst = src[keep], dst[keep]
    key = src * num_nodes + dst
    perm = torch.argsort(key)
    src, dst, key = src[perm], dst[perm], key[perm]
    ptr = torch.zeros(num_nodes + 1, dtype=torch.long)
    ptr[1:] = torch.bincount(src, minlength=num_nodes).cumsum(0)
    return ptr, dst, key


def _has_edge(keys: Tensor, a: Tensor, b: Tensor, n: int) -> Tensor:
    q = a * n + b
    pos = torch.searchsorted(keys, q).clamp(max=max(keys.numel() - 1, 0))
    return keys[pos] == q if keys.numel() else torch.zeros_like(q,
                                                                dtype=bool)


def _extend_chunks(cur: Tensor, ptr: Tensor, col: Tensor, keys: Tensor,
                   num_nodes: int, chunk: int):
    r"""Yields, in chunks of at most about ``chunk`` candidates, the cliques
    one vertex larger than those in ``cur``."""
    out_deg = ptr[1:] - ptr[:-1]
    ext = out_deg[cur[:, -1]]
    bounds = torch.cumsum(ext, 0)
    start = 0
    while start < cur.size(0):
        base = int(bounds[start - 1]) if start else 0
        stop = max(int(torch.searchsorted(bounds, base + chunk, right=True)),
                   start + 1)
        part, e = cur[start:stop], ext[start:stop]
        owner = torch.repeat_interleave(torch.arange(part.size(0)), e)
        offs = torch.arange(int(e.sum())) - torch.repeat_interleave(
            e.cumsum(0) - e, e)
        cand = col[ptr[part[owner, -1]] + offs]
        ok = torch.ones_like(cand, dtype=torch.bool)
        for j in range(part.size(1) - 1):
            ok &= _has_edge(keys, part[owner, j], cand, num_nodes)
        yield torch.cat([part[owner[ok]], cand[ok].view(-1, 1)], dim=1)
        start = stop


def iter_cliques(edge_index: Tensor, num_nodes: int, max_size: int,
                 chunk: int = 1 << 19):
    r"""Yields ``(size, block)`` pairs: every clique with 2 to ``max_size``
    vertices, in blocks of bounded size (vertices in increasing DAG rank).

    Cliques of the largest size are never held all at once, so memory stays
    bounded by the cliques one size smaller plus one block.
    """
    if max_size < 2:
        raise ValueError(f"max_size must be >= 2, got {max_size}")
    ptr, col, keys = _dag(edge_index, num_nodes)
    src = torch.repeat_interleave(torch.arange(num_nodes),
                                  ptr[1:] - ptr[:-1])
    cur = torch.stack([src, col], dim=1)
    yield 2, cur
    for size in range(3, max_size + 1):
        if cur.numel() == 0:
            return
        blocks = _extend_chunks(cur, ptr, col, keys, num_nodes, chunk)
        if size == max_size:
            for block in blocks:
                yield size, block
            return
        cur = torch.cat(list(blocks))
        yield size, cur


def list_cliques(edge_index: Tensor, num_nodes: int, max_size: int,
                 chunk: int = 1 << 19) -> list[Tensor]:
    r"""Lists all cliques with 2 to ``max_size`` vertices.

    Args:
        edge_index (Tensor): a simple undirected graph (both directions, no
            self-loops, no duplicates; see :func:`simple_undirected`).
        num_nodes (int): number of nodes.
        max_size (int): largest clique size to list (:math:`\geq 2`).
        chunk (int): maximum candidate extensions held at once.

    Returns:
        list[Tensor]: element ``s - 2`` holds the cliques of size ``s`` as a
        :obj:`[count, s]` tensor (vertices in increasing DAG rank).
    """
    found: dict[int, list[Tensor]] = {s: [] for s in range(2, max_size + 1)}
    for size, block in iter_cliques(edge_index, num_nodes, max_size, chunk):
        found[size].append(block)
    return [torch.cat(found[s]) if found[s] else
            torch.empty(0, s, dtype=torch.long)
            for s in range(2, max_size + 1)]


def flower_petal_weights(edge_index: Tensor, num_nodes: int,
                         cliques, size: int | None = None
                         ) -> tuple[Tensor, Tensor]:
    r"""Weights of the order-:math:`p` flower-petal operator

    .. math::
        \mathrm{HL}_p = \tfrac{1}{p+1} D_p^{-1/2} H_p H_p^\top D_p^{-1/2}

    on the support ``edge_index`` (coalesced; it must contain every clique
    edge, both directions, and the self-loops), where ``cliques`` holds the
    :math:`p`-simplices as an :obj:`[n_p, p + 1]` tensor, or an iterable of
    such blocks (then ``size`` = :math:`p + 1` must be given).

    Entry :math:`(i, j)`, :math:`i \neq j`, is
    :math:`c_p(i,j) / ((p+1)\sqrt{D_p(i) D_p(j)})` with :math:`c_p(i, j)`
    the number of :math:`p`-simplices holding both; the diagonal is
    :math:`1/(p+1)` on nodes covered by a :math:`p`-simplex and 0 elsewhere.

    Returns:
        (Tensor, Tensor): the weights over ``edge_index`` and the simplex
        degree :math:`D_p` of every node.
    """
    if isinstance(cliques, Tensor):
        size = cliques.size(1)
        cliques = [cliques]
    if size is None:
        raise ValueError("flower_petal_weights needs size= for blocks")
    p = size - 1
    n = num_nodes
    keys = edge_index[0] * n + edge_index[1]
    if not bool((keys[1:] > keys[:-1]).all()):
        raise ValueError("edge_index must be coalesced (sorted, unique)")
    degree = torch.zeros(n, dtype=torch.double)
    counts = torch.zeros(edge_index.size(1), dtype=torch.double)
    a_idx, b_idx = torch.triu_indices(size, size, offset=1)
    for block in cliques:
        if block.numel() == 0:
            continue
        degree += torch.bincount(block.reshape(-1), minlength=n).double()
        a = block[:, a_idx].reshape(-1)
        b = block[:, b_idx].reshape(-1)
        pair_keys = torch.cat([a * n + b, b * n + a])
        pos = torch.searchsorted(keys, pair_keys)
        if bool((pos >= keys.numel()).any()) or bool(
                (keys[pos.clamp(max=keys.numel() - 1)] != pair_keys).any()):
            raise ValueError("edge_index does not contain every clique edge")
        counts.index_add_(0, pos, torch.ones(pos.numel(),
                                             dtype=torch.double))
    row, col = edge_index
    loop = row == col
    counts[loop] = degree[row[loop]]
    inv_sqrt = degree.pow(-0.5)
    inv_sqrt[degree == 0] = 0.0
    weight = counts * inv_sqrt[row] * inv_sqrt[col] / (p + 1)
    return weight.float(), degree
