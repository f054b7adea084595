r"""Lift a graph to its clique complex and compute HiGCN's flower-petal
operators."""
from __future__ import annotations

import logging

import torch
from torch_geometric.data import Data
from torch_geometric.transforms import BaseTransform
from torch_geometric.utils import add_self_loops, coalesce

from graphkit.utils.cliques import (flower_petal_weights, iter_cliques,
                                    simple_undirected)

log = logging.getLogger(__name__)

__all__ = ['FlowerPetalLift']


class FlowerPetalLift(BaseTransform):
    r"""Lifts a graph to its clique complex up to order :math:`P` and stores
    the flower-petal operators of
    `Huang et al. (AAAI 2024) <https://arxiv.org/abs/2309.12971>`_,

    .. math::
        \mathrm{HL}_p = \tfrac{1}{p+1}\, D_p^{-1/2} H_p H_p^\top D_p^{-1/2},
        \qquad p = 1, \dots, P,

    where :math:`H_p \in \{0,1\}^{N \times n_p}` is the node / p-simplex
    incidence matrix and :math:`D_p = \mathrm{diag}(H_p \mathbf{1})`. Every
    :math:`p`-simplex is a :math:`(p+1)`-clique, so each operator is
    supported on the edges plus self-loops; it is stored as one weight
    column per order over a shared support, in :math:`O(E)` memory:

    * ``data.hl_edge_index``: :obj:`[2, E + N]`, the edges and self-loops;
    * ``data.hl_weight``: :obj:`[E + N, P]`, column :math:`p - 1` holding
      :math:`\mathrm{HL}_p`;
    * ``data.simplex_count``: :obj:`[P]`, the number of :math:`p`-simplices.

    Nodes on no :math:`p`-simplex get an all-zero row of
    :math:`\mathrm{HL}_p` (e.g. the order-2 row of a node on no triangle).
    The input graph is treated as undirected and simple: edges are
    symmetrised, and self-loops and duplicates are dropped. An order above
    the largest clique gives an all-zero operator (with a logged warning).
    The input is never modified in place.

    Args:
        max_order (int): :math:`P \geq 1`, the highest simplex order.
    """
    def __init__(self, max_order: int = 2) -> None:
        if not isinstance(max_order, int) or max_order < 1:
            raise ValueError(f"FlowerPetalLift: max_order must be an int "
                             f">= 1, got {max_order!r}")
        self.max_order = max_order

    def forward(self, data: Data) -> Data:
        n = data.num_nodes
        if data.edge_index is None:
            raise ValueError("FlowerPetalLift needs data.edge_index")
        edge_index = simple_undirected(data.edge_index, n)
        support, _ = add_self_loops(edge_index, num_nodes=n)
        support = coalesce(support, num_nodes=n)
        # Cliques below the top size are held (they seed the next size);
        # top-size cliques are consumed block by block while the weights of
        # order P accumulate, so memory does not grow with their number.
        top = self.max_order + 1
        held: dict[int, torch.Tensor] = {}

        def top_blocks():
            for size, block in iter_cliques(edge_index, n, top):
                if size < top:
                    held[size] = block
                else:
                    yield block

        results = {self.max_order: flower_petal_weights(
            support, n, top_blocks(), size=top)}
        for p in range(1, self.max_order):
            simplices = held.get(p + 1, torch.empty(0, p + 1,
                                                    dtype=torch.long))
            results[p] = flower_petal_weights(support, n, simplices)
        weights, counts = [], []
        for p in range(1, self.max_order + 1):
            w, degree = results[p]
            num = int(degree.sum()) // (p + 1)
            if num == 0:
                log.warning('FlowerPetalLift: the graph has no %d-simplex '
                            '(%d-clique); HL_%d is zero', p, p + 1, p)
            weights.append(w)
            counts.append(num)
        data.hl_edge_index = support
        data.hl_weight = torch.stack(weights, dim=1)
        data.simplex_count = torch.tensor(counts).view(1, -1)
        return data

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(max_order={self.max_order})'
