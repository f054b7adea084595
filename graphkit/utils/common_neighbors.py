r"""Common neighbours of node pairs without ``torch_sparse``: CSR row gathers
and a sorted-key intersection, vectorised over a batch of pairs and
chunked so that memory stays bounded.

For target pairs :math:`(i, j)` the functions return, as (pair, node) index
lists, the common neighbours :math:`N(i) \cap N(j)` and the one-sided sets
:math:`N(i) \setminus N(j)` and :math:`N(j) \setminus N(i)` of the given
adjacency (a self-loop makes a node its own neighbour, as in
:math:`A^2`). The count heuristics CN, Adamic-Adar and resource allocation
are built on them.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ['CSRAdjacency', 'csr_adjacency', 'as_csr_adjacency',
           'unpaired_entries', 'drop_entries', 'NeighborOverlap',
           'neighbor_overlap', 'pool_neighbors', 'cn_score', 'aa_score',
           'ra_score']


class CSRAdjacency(NamedTuple):
    r"""Row pointers and sorted column indices of an :math:`N \times N`
    adjacency (duplicates removed)."""
    rowptr: Tensor
    col: Tensor
    num_nodes: int

    @property
    def degree(self) -> Tensor:
        return self.rowptr.diff()

    def row(self) -> Tensor:
        r"""The row index of every stored entry (COO rows)."""
        return torch.repeat_interleave(
            torch.arange(self.num_nodes, device=self.col.device),
            self.degree, output_size=self.col.numel())


def csr_adjacency(edge_index: Tensor, num_nodes: int) -> CSRAdjacency:
    r"""The adjacency of ``edge_index`` (row :math:`i` lists the targets of
    edges :math:`i \to j`) in CSR form. Pass both directions for an
    undirected graph."""
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"edge_index must have shape [2, E], got "
                         f"{tuple(edge_index.shape)}")
    if edge_index.numel() and (int(edge_index.min()) < 0 or
                               int(edge_index.max()) >= num_nodes):
        raise ValueError(f"edge_index has node ids outside [0, "
                         f"{num_nodes})")
    key = torch.unique(edge_index[0] * num_nodes + edge_index[1])
    row, col = key // num_nodes, key % num_nodes
    rowptr = torch.zeros(num_nodes + 1, dtype=torch.long,
                         device=edge_index.device)
    rowptr[1:] = torch.bincount(row, minlength=num_nodes).cumsum(0)
    return CSRAdjacency(rowptr, col, num_nodes)


def as_csr_adjacency(graph, num_nodes: int) -> CSRAdjacency:
    r"""The :class:`CSRAdjacency` of a graph given as an ``edge_index``, a
    ``torch.sparse`` CSR / COO adjacency, or a :class:`CSRAdjacency`."""
    if isinstance(graph, CSRAdjacency):
        return graph
    if not isinstance(graph, Tensor):
        raise TypeError(f"Expected an edge_index, a torch.sparse adjacency "
                        f"or a CSRAdjacency, got {type(graph).__name__}")
    if graph.layout == torch.sparse_csr:
        if graph.size(0) != num_nodes:
            raise ValueError(f"The adjacency has {graph.size(0)} rows, "
                             f"expected {num_nodes}")
        rowptr, col = graph.crow_indices(), graph.col_indices()
        # CSR tensors built by PyG are sorted and duplicate-free; check.
        key = torch.repeat_interleave(
            torch.arange(num_nodes, device=col.device), rowptr.diff()) \
            * num_nodes + col
        if key.numel() > 1 and not bool((key.diff() > 0).all()):
            return csr_adjacency(torch.stack([key // num_nodes, col]),
                                 num_nodes)
        return CSRAdjacency(rowptr.long(), col.long(), num_nodes)
    if graph.layout == torch.sparse_coo:
        return csr_adjacency(graph.coalesce().indices(), num_nodes)
    return csr_adjacency(graph, num_nodes)


def unpaired_entries(adj: CSRAdjacency) -> int:
    r"""How many stored entries :math:`(i, j)` lack their reverse
    :math:`(j, i)`: 0 exactly when the adjacency is symmetric (an
    undirected graph stored in both directions)."""
    n = adj.num_nodes
    row = adj.row()
    key = row * n + adj.col                      # sorted, unique
    rev = torch.sort(adj.col * n + row).values
    if key.numel() == 0:
        return 0
    idx = torch.searchsorted(key, rev).clamp_max(key.numel() - 1)
    return int((key[idx] != rev).sum())


def drop_entries(adj: CSRAdjacency, p: float,
                 generator: torch.Generator | None = None) -> CSRAdjacency:
    r"""Keeps each stored entry with probability :math:`1 - p` (edge dropout
    on the directed entries)."""
    if p <= 0.0:
        return adj
    keep = torch.rand(adj.col.numel(), generator=generator,
                      device=adj.col.device) >= p
    row = adj.row()
    rowptr = torch.zeros_like(adj.rowptr)
    rowptr[1:] = torch.bincount(row[keep], minlength=adj.num_nodes).cumsum(0)
    return CSRAdjacency(rowptr, adj.col[keep], adj.num_nodes)


def _gather_rows(adj: CSRAdjacency, nodes: Tensor) -> tuple[Tensor, Tensor]:
    r"""(pair index, neighbour) of every entry of the rows ``nodes``, pair
    by pair, neighbours sorted within each pair."""
    start = adj.rowptr[nodes]
    deg = adj.rowptr[nodes + 1] - start
    total = int(deg.sum())
    pair = torch.repeat_interleave(torch.arange(nodes.numel(),
                                                device=nodes.device), deg,
                                   output_size=total)
    # position of entry k of row b: start[b] + (k - first[b])
    shift = torch.repeat_interleave(start - (torch.cumsum(deg, 0) - deg),
                                    deg, output_size=total)
    pos = shift.add_(torch.arange(total, device=nodes.device))
    return pair, adj.col[pos]


def _member(keys: Tensor, sorted_keys: Tensor) -> Tensor:
    if sorted_keys.numel() == 0:
        return torch.zeros_like(keys, dtype=torch.bool)
    idx = torch.searchsorted(sorted_keys, keys).clamp_max(
        sorted_keys.numel() - 1)
    return sorted_keys[idx] == keys


class NeighborOverlap(NamedTuple):
    r"""Index lists ``(pair, node)`` of :math:`N(i) \cap N(j)`,
    :math:`N(i) \setminus N(j)` and :math:`N(j) \setminus N(i)` for a
    batch of pairs."""
    common: tuple[Tensor, Tensor]
    only_src: tuple[Tensor, Tensor]
    only_dst: tuple[Tensor, Tensor]
    num_pairs: int


# Dense row bitmaps cost a few byte operations per cell (N per pair), a
# binary search tens of ns per gathered entry: the bitmaps pay when a pair
# gathers more than about N / 16 entries, and building the N x N bitmap pays
# when the batch gathers more than N^2 / 64 entries. On ogbl-ddi (N / entries
# ~ 4) they are 4-8x faster than the search; on Cora (~270) much slower.
_CELLS_PER_ENTRY = 16
_BUILD_CELLS_PER_ENTRY = 64


def neighbor_overlap(adj: CSRAdjacency, src: Tensor, dst: Tensor,
                     max_entries: int = 1 << 24, one_sided: bool = True,
                     bitmap_bytes: int = 1 << 26) -> NeighborOverlap:
    r"""Common and one-sided neighbour sets of the pairs
    ``(src[b], dst[b])``, as ``(pair, node)`` index lists ordered by pair,
    then node. Two ways to intersect the rows:

    * dense graphs (a pair has more than :math:`N / 16` neighbours in all,
      e.g. ogbl-ddi): the adjacency as an :math:`N \times N` bitmap; a chunk
      of :math:`B` pairs takes its rows :math:`A_{i:}`, :math:`A_{j:}`, and
      :math:`N(i) \cap N(j)` is the non-zero pattern of their AND
      (:math:`N(i) \setminus N(j)` of AND-NOT): :math:`O(N)` vectorised
      byte operations per pair. Used when the bitmap and two chunks of at
      least 64 rows fit in ``bitmap_bytes``;
    * otherwise (or with ``bitmap_bytes=0``): the rows are gathered from the
      CSR arrays as sorted keys :math:`b N + u`, and one row's keys are
      binary-searched in the other's, :math:`O(d \log d)` per pair, in
      chunks of at most ``max_entries`` gathered entries.

    Memory stays bounded either way.

    Args:
        one_sided (bool): also return :math:`N(i) \setminus N(j)` and
            :math:`N(j) \setminus N(i)` (empty lists otherwise).
    """
    if src.shape != dst.shape or src.dim() != 1:
        raise ValueError(f"src and dst must be 1-D of equal length, got "
                         f"{tuple(src.shape)} and {tuple(dst.shape)}")
    n = adj.num_nodes
    cost = adj.degree[src] + adj.degree[dst]
    total = int(cost.sum())
    rows_per_chunk = (bitmap_bytes - n * n) // max(2 * n, 1)
    if (rows_per_chunk >= 64 and n * src.numel() <= _CELLS_PER_ENTRY * total
            and n * n <= _BUILD_CELLS_PER_ENTRY * total):
        return _overlap_by_rows(adj, src, dst, one_sided, rows_per_chunk)
    parts: list[list[Tensor]] = [[] for _ in range(6)]
    start = 0
    bounds = torch.cumsum(cost, 0)
    while start < src.numel():
        # the largest chunk from `start` within the budget (at least 1 pair)
        base = int(bounds[start - 1]) if start else 0
        stop = int(torch.searchsorted(bounds, base + max_entries,
                                      right=True))
        stop = max(stop, start + 1)
        s, d = src[start:stop], dst[start:stop]
        ps, us = _gather_rows(adj, s)
        pd, ud = _gather_rows(adj, d)
        ks, kd = ps * n + us, pd * n + ud
        in_d = _member(ks, kd)
        parts[0].append(ps[in_d] + start)
        parts[1].append(us[in_d])
        if one_sided:
            in_s = _member(kd, ks)
            out_d, out_s = ~in_d, ~in_s
            parts[2].append(ps[out_d] + start)
            parts[3].append(us[out_d])
            parts[4].append(pd[out_s] + start)
            parts[5].append(ud[out_s])
        start = stop
    return _collect(parts, src)


def _overlap_by_rows(adj: CSRAdjacency, src: Tensor, dst: Tensor,
                     one_sided: bool, rows_per_chunk: int) -> NeighborOverlap:
    n = adj.num_nodes
    row = adj.row()
    bitmap = torch.zeros(n * n, dtype=torch.bool, device=src.device)
    bitmap[row * n + adj.col] = True
    bitmap = bitmap.view(n, n)
    parts: list[list[Tensor]] = [[] for _ in range(6)]
    for start in range(0, src.numel(), rows_per_chunk):
        a_i = bitmap.index_select(0, src[start:start + rows_per_chunk])
        a_j = bitmap.index_select(0, dst[start:start + rows_per_chunk])
        sides = [torch.logical_and(a_i, a_j)]
        if one_sided:   # (a > b) is a AND NOT b on booleans
            sides += [torch.gt(a_i, a_j), torch.gt(a_j, a_i)]
        for k, pattern in enumerate(sides):
            pair, node = pattern.nonzero().unbind(1)
            parts[2 * k].append(pair + start)
            parts[2 * k + 1].append(node)
    return _collect(parts, src)


def _collect(parts: list[list[Tensor]], src: Tensor) -> NeighborOverlap:
    empty = src.new_zeros(0)
    cat = [(p[0] if len(p) == 1 else torch.cat(p)) if p else empty
           for p in parts]
    return NeighborOverlap((cat[0], cat[1]), (cat[2], cat[3]),
                           (cat[4], cat[5]), src.numel())


def pool_neighbors(h: Tensor, pair: Tensor, node: Tensor, num_pairs: int,
                   weight: Tensor | None = None) -> Tensor:
    r""":math:`\sum_{u} w_{bu} \mathbf{h}_u` per pair :math:`b` over the
    ``(pair, node)`` list (weights 1 when ``weight`` is :obj:`None`);
    differentiable in ``h`` and ``weight``.

    Fixed weights go through one sparse-dense product
    :math:`S\mathbf{H}` with :math:`S \in \mathbb{R}^{B \times N}`, which
    never materialises the per-entry messages (memory :math:`O(BF)`
    instead of :math:`O(|S| F)`); learnable weights use a gather and an
    index-add."""
    if weight is not None and weight.requires_grad:
        msg = h.index_select(0, node) * weight.unsqueeze(-1)
        return h.new_zeros(num_pairs, h.size(-1)).index_add_(0, pair, msg)
    if pair.numel() == 0:
        return h.new_zeros(num_pairs, h.size(-1))
    values = (torch.ones(pair.numel(), dtype=h.dtype, device=h.device)
              if weight is None else weight.to(h.dtype))
    mat = torch.sparse_coo_tensor(torch.stack([pair, node]), values,
                                  (num_pairs, h.size(0)))
    return torch.sparse.mm(mat, h)


def cn_score(adj: CSRAdjacency, src: Tensor, dst: Tensor) -> Tensor:
    r"""Common-neighbour count :math:`|N(i) \cap N(j)|`."""
    ov = neighbor_overlap(adj, src, dst, one_sided=False)
    return torch.bincount(ov.common[0], minlength=ov.num_pairs).float()


def aa_score(adj: CSRAdjacency, src: Tensor, dst: Tensor) -> Tensor:
    r"""Adamic-Adar :math:`\sum_{u \in N(i) \cap N(j)} 1 / \log d_u`
    (nodes of degree 1 contribute 0, as their log is 0)."""
    ov = neighbor_overlap(adj, src, dst, one_sided=False)
    deg = adj.degree.float()[ov.common[1]]
    w = torch.where(deg > 1, 1.0 / torch.log(deg.clamp_min(2.0)),
                    torch.zeros_like(deg))
    return torch.zeros(ov.num_pairs).index_add_(0, ov.common[0], w)


def ra_score(adj: CSRAdjacency, src: Tensor, dst: Tensor) -> Tensor:
    r"""Resource allocation :math:`\sum_{u \in N(i) \cap N(j)} 1 / d_u`."""
    ov = neighbor_overlap(adj, src, dst, one_sided=False)
    deg = adj.degree.float()[ov.common[1]]
    return torch.zeros(ov.num_pairs).index_add_(0, ov.common[0], 1.0 / deg)

