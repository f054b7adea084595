r"""Full-batch, neighbour-sampled and link-batch iterators.

All shuffling uses an explicit :class:`torch.Generator`, so an epoch's batch
order depends only on the seed it was given and can be replayed on resume.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import torch
from torch import Tensor

__all__ = ['epoch_generator', 'index_batches', 'neighbor_loader',
           'graph_loader']


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    r"""A generator seeded from ``(seed, epoch)``: batch orders are
    reproducible per epoch, independently of what ran before."""
    gen = torch.Generator()
    gen.manual_seed(int(seed) * 1_000_003 + int(epoch))
    return gen


def index_batches(n: int, batch_size: int | None, shuffle: bool = True,
                  generator: torch.Generator | None = None
                  ) -> Iterator[Tensor]:
    r"""Yields index batches over ``range(n)`` (all of them at once when
    ``batch_size`` is :obj:`None`). Used for link batches: each batch indexes
    the positive training pairs."""
    perm = (torch.randperm(n, generator=generator) if shuffle else
            torch.arange(n))
    size = n if not batch_size or batch_size <= 0 else int(batch_size)
    for start in range(0, n, size):
        yield perm[start:start + size]


def neighbor_loader(data, input_nodes: Tensor | None, batch_size: int,
                    num_neighbors: Sequence[int], shuffle: bool = True,
                    generator: torch.Generator | None = None, **kwargs):
    r"""Neighbour-sampled mini-batches over ``input_nodes`` (seed nodes come
    first in every batch).

    Uses PyG's :class:`~torch_geometric.loader.NeighborLoader` when
    ``pyg-lib`` or ``torch-sparse`` is installed, and the pure-PyTorch
    :class:`~graphkit.data.sampling.UniformNeighborLoader` otherwise.
    """
    import torch_geometric.typing as pyg_typing
    if not (pyg_typing.WITH_PYG_LIB or pyg_typing.WITH_TORCH_SPARSE):
        from graphkit.data.sampling import UniformNeighborLoader
        return UniformNeighborLoader(data, num_neighbors, input_nodes,
                                     batch_size, shuffle, generator)
    from torch_geometric.loader import NeighborLoader
    return NeighborLoader(data, num_neighbors=list(num_neighbors),
                          input_nodes=input_nodes, batch_size=batch_size,
                          shuffle=shuffle, generator=generator, **kwargs)


def graph_loader(dataset, index: Tensor, batch_size: int,
                 shuffle: bool = False,
                 generator: torch.Generator | None = None):
    r"""PyG :class:`~torch_geometric.loader.DataLoader` over
    ``dataset[index]``."""
    from torch_geometric.loader import DataLoader
    return DataLoader(dataset[index], batch_size=batch_size, shuffle=shuffle,
                      generator=generator)
