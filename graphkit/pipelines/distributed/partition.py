r"""Graph partitioning for graph-parallel training and GNNPipe chunks.

:func:`partition_graph` assigns every node one of ``num_parts`` parts of
near-equal size with few cut edges:

* ``metis`` (what ``auto`` picks): METIS through PyG (``pyg-lib`` or
  ``torch-sparse`` built with METIS), else ``pymetis`` (a dependency);
* ``rcm`` (the fallback of ``auto`` where neither is importable): the
  reverse Cuthill-McKee order of the symmetrised graph (SciPy), cut into
  ``num_parts`` contiguous pieces of equal size. RCM minimises the
  bandwidth of the reordered adjacency, so every edge joins nodes close in
  the order and the cut of contiguous pieces stays small;
* ``bfs``: breadth-first order from the lowest-id node of each component,
  cut the same way;
* ``contiguous``: node ids in order, cut the same way;
* ``random``: a seeded random order, cut the same way (the worst case).

Parts are deterministic for a given graph, method and seed, so every rank
computes the same partition without communicating.
"""
from __future__ import annotations

import logging

import numpy as np
import torch
from torch import Tensor

log = logging.getLogger(__name__)

__all__ = ['partition_graph', 'PARTITIONERS', 'edge_cut']

PARTITIONERS = ('auto', 'metis', 'rcm', 'bfs', 'contiguous', 'random')


def _metis_available() -> str | None:
    import torch_geometric.typing as pyg_typing
    if pyg_typing.WITH_METIS:
        return 'pyg'
    import importlib.util
    return 'pymetis' if importlib.util.find_spec('pymetis') else None


def _scipy_adj(edge_index: Tensor, num_nodes: int):
    import scipy.sparse as sp
    row, col = edge_index.numpy()
    a = sp.coo_matrix((np.ones(row.size, dtype=np.int8), (row, col)),
                      shape=(num_nodes, num_nodes)).tocsr()
    return (a + a.T).tocsr()


def _cut(order: Tensor, num_parts: int) -> Tensor:
    n = order.numel()
    part = torch.empty(n, dtype=torch.long)
    sizes = [len(c) for c in np.array_split(np.arange(n), num_parts)]
    part[order] = torch.repeat_interleave(torch.arange(num_parts),
                                          torch.tensor(sizes))
    return part


def _metis(edge_index: Tensor, num_nodes: int, num_parts: int,
           backend: str) -> Tensor:
    if backend == 'pyg':
        from torch_geometric.data import Data
        from torch_geometric.loader import ClusterData
        cd = ClusterData(Data(edge_index=edge_index, num_nodes=num_nodes),
                         num_parts, log=False)
        part = torch.empty(num_nodes, dtype=torch.long)
        ptr = cd.partition.partptr
        for p in range(num_parts):
            part[cd.partition.node_perm[ptr[p]:ptr[p + 1]]] = p
        return part
    import pymetis
    a = _scipy_adj(edge_index, num_nodes)
    a.setdiag(0)
    a.eliminate_zeros()
    _, membership = pymetis.part_graph(num_parts, xadj=a.indptr,
                                       adjncy=a.indices)
    return torch.as_tensor(np.asarray(membership), dtype=torch.long)


def partition_graph(edge_index: Tensor, num_nodes: int, num_parts: int,
                    method: str = 'auto', seed: int = 0) -> Tensor:
    r"""Assigns each node a part in ``[0, num_parts)``.

    Args:
        edge_index (Tensor): edges :math:`(2, E)` (direction is ignored).
        num_nodes (int): :math:`N`.
        num_parts (int): number of parts, :math:`1 \le P \le N`.
        method (str): see the module docstring (default: :obj:`'auto'`).
        seed (int): seed of the ``random`` method.

    Returns:
        Tensor: the part of every node, shape :math:`(N,)`; every part is
        non-empty.
    """
    key = method.lower()
    if key not in PARTITIONERS:
        raise ValueError(f"Unknown partition method '{method}'. Valid: "
                         f"{', '.join(PARTITIONERS)}")
    if not 1 <= num_parts <= num_nodes:
        raise ValueError(f"Cannot cut {num_nodes} nodes into {num_parts} "
                         f"non-empty parts")
    edge_index = edge_index.cpu()
    if num_parts == 1:
        return torch.zeros(num_nodes, dtype=torch.long)
    backend = _metis_available()
    if key == 'metis' and backend is None:
        raise ValueError("partition='metis' needs METIS: install pyg-lib or "
                         "torch-sparse built with METIS, or pymetis; or use "
                         "partition='rcm'")
    if key == 'auto':
        key = 'metis' if backend is not None else 'rcm'
    if key == 'metis':
        part = _metis(edge_index, num_nodes, num_parts, backend)
        if torch.bincount(part, minlength=num_parts).min() > 0:
            return part
        log.warning('METIS left a part empty; using the rcm partition')
        key = 'rcm'
    if key == 'contiguous':
        order = torch.arange(num_nodes)
    elif key == 'random':
        gen = torch.Generator().manual_seed(seed)
        order = torch.randperm(num_nodes, generator=gen)
    else:
        from scipy.sparse.csgraph import (breadth_first_order,
                                          reverse_cuthill_mckee)
        a = _scipy_adj(edge_index, num_nodes)
        if key == 'rcm':
            order = torch.as_tensor(reverse_cuthill_mckee(
                a, symmetric_mode=True).astype(np.int64))
        else:
            seen = np.zeros(num_nodes, dtype=bool)
            pieces = []
            for start in range(num_nodes):
                if seen[start]:
                    continue
                comp = breadth_first_order(a, start, directed=False,
                                           return_predecessors=False)
                seen[comp] = True
                pieces.append(comp)
            order = torch.as_tensor(np.concatenate(pieces).astype(np.int64))
    return _cut(order, num_parts)


def edge_cut(edge_index: Tensor, part: Tensor) -> int:
    r"""Number of edges whose endpoints lie in different parts."""
    return int((part[edge_index[0]] != part[edge_index[1]]).sum())
