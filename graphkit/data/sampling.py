r"""Uniform neighbour sampling in plain PyTorch.

PyG's :class:`~torch_geometric.loader.NeighborLoader` needs ``pyg-lib`` or
``torch-sparse`` (compiled extensions). :func:`graphkit.data.loaders.
neighbor_loader` uses it when one of them is installed and falls back to
:class:`UniformNeighborLoader` otherwise. The fallback yields batches in the
same format: a :class:`~torch_geometric.data.Data` subgraph whose first
``batch_size`` nodes are the seed nodes, with ``n_id`` (global ids) and
``batch_size`` attributes.

Sampling is vectorised: every candidate edge of the current frontier gets a
uniform random key, edges are ordered by (destination, key), and the first
``k`` of each destination are kept, which is sampling without replacement.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import torch
from torch import Tensor
from torch_geometric.data import Data

__all__ = ['UniformNeighborLoader', 'sample_neighbors']


def _csc(edge_index: Tensor, num_nodes: int) -> tuple[Tensor, Tensor]:
    r"""Incoming edges grouped by destination: ``ptr`` and sources."""
    dst = edge_index[1]
    order = torch.argsort(dst, stable=True)
    src_sorted = edge_index[0, order]
    counts = torch.bincount(dst, minlength=num_nodes)
    ptr = torch.zeros(num_nodes + 1, dtype=torch.long)
    ptr[1:] = counts.cumsum(0)
    return ptr, src_sorted


def sample_neighbors(ptr: Tensor, src: Tensor, nodes: Tensor, k: int,
                     generator: torch.Generator | None = None
                     ) -> tuple[Tensor, Tensor]:
    r"""Samples up to ``k`` incoming neighbours of each node in ``nodes``
    (all of them when ``k < 0``), without replacement.

    Returns:
        (Tensor, Tensor): the sampled sources and their destinations.
    """
    start, deg = ptr[nodes], ptr[nodes + 1] - ptr[nodes]
    total = int(deg.sum())
    if total == 0:
        empty = torch.empty(0, dtype=torch.long)
        return empty, empty
    owner = torch.repeat_interleave(torch.arange(nodes.numel()), deg)
    offset = torch.arange(total) - torch.repeat_interleave(
        deg.cumsum(0) - deg, deg)
    edge_pos = start[owner] + offset
    if k >= 0:
        key = torch.rand(total, generator=generator)
        order = torch.argsort(owner.double() + key)  # by owner, then key
        owner, edge_pos = owner[order], edge_pos[order]
        seg_start = torch.repeat_interleave(deg.cumsum(0) - deg, deg)
        rank = torch.arange(total) - seg_start
        keep = rank < k
        owner, edge_pos = owner[keep], edge_pos[keep]
    return src[edge_pos], nodes[owner]


class UniformNeighborLoader:
    r"""Mini-batches of seed nodes with their sampled ``L``-hop
    neighbourhoods (GraphSAGE-style uniform sampling).

    Args:
        data (Data): a homogeneous graph.
        num_neighbors (list[int]): fan-out per hop (``-1`` for all).
        input_nodes (Tensor, optional): seed nodes (default: all nodes).
        batch_size (int): seed nodes per batch.
        shuffle (bool): shuffle the seeds each epoch.
        generator (torch.Generator, optional): source of randomness.
    """
    def __init__(self, data: Data, num_neighbors: Sequence[int],
                 input_nodes: Tensor | None = None, batch_size: int = 1,
                 shuffle: bool = False,
                 generator: torch.Generator | None = None) -> None:
        if data.edge_index is None:
            raise ValueError("UniformNeighborLoader needs data.edge_index")
        self.data = data
        self.num_neighbors = list(num_neighbors)
        n = data.num_nodes
        if input_nodes is None:
            input_nodes = torch.arange(n)
        elif input_nodes.dtype == torch.bool:
            input_nodes = input_nodes.nonzero().view(-1)
        self.input_nodes = input_nodes
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.generator = generator
        self.ptr, self.src = _csc(data.edge_index, n)

    def __len__(self) -> int:
        return -(-self.input_nodes.numel() // self.batch_size)

    def __iter__(self) -> Iterator[Data]:
        seeds = self.input_nodes
        if self.shuffle:
            seeds = seeds[torch.randperm(seeds.numel(),
                                         generator=self.generator)]
        for i in range(0, seeds.numel(), self.batch_size):
            yield self._subgraph(seeds[i:i + self.batch_size])

    def _subgraph(self, seeds: Tensor) -> Data:
        n = self.data.num_nodes
        local = torch.full((n, ), -1, dtype=torch.long)
        local[seeds] = torch.arange(seeds.numel())
        n_id = [seeds]
        count = seeds.numel()
        frontier = seeds
        rows, cols = [], []
        for k in self.num_neighbors:
            src, dst = sample_neighbors(self.ptr, self.src, frontier, k,
                                        self.generator)
            new = src[local[src] < 0].unique()
            local[new] = torch.arange(count, count + new.numel())
            count += new.numel()
            n_id.append(new)
            rows.append(local[src])
            cols.append(local[dst])
            frontier = new
        n_id = torch.cat(n_id)
        out = Data(edge_index=torch.stack([torch.cat(rows), torch.cat(cols)]),
                   num_nodes=n_id.numel())
        for key in ('x', 'y'):
            if self.data[key] is not None:
                out[key] = self.data[key][n_id]
        out.n_id = n_id
        out.batch_size = seeds.numel()
        return out
