r"""HiGCN: higher-order GCN with flower-petal Laplacians
(`Huang et al., AAAI 2024 <https://arxiv.org/abs/2309.12971>`_)."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.nn import (BatchNorm1d, Linear, Module, ModuleList, ReLU,
                      Sequential)

from graphkit.layers.higcn import (HiGCNProp, block_diagonal_operator,
                                   polynomial_filter)
from graphkit.layers.sparse_input import (IdentityCache, block_diagonal,
                                          row_sparse, stacked_dropout_linear)
from graphkit.models.registry import register
from graphkit.utils.tensor import mask_dropout
from graphkit.transforms import FlowerPetalLift

__all__ = ['HiGCN', 'HiGCNBlock', 'HiGCNGraphEncoder']


def _check_operators(x: Tensor, hl_edge_index: Tensor | None,
                     hl_weight: Tensor | None, orders: int,
                     owner: str) -> None:
    if hl_edge_index is None or hl_weight is None:
        raise ValueError(f"{owner} needs the flower-petal operators "
                         f"(hl_edge_index, hl_weight); apply "
                         f"graphkit.transforms.FlowerPetalLift(max_order="
                         f"{orders}) to the data first")
    if hl_weight.dim() != 2 or hl_weight.size(1) < orders:
        raise ValueError(f"{owner} uses orders 1..{orders}, but hl_weight "
                         f"has shape {tuple(hl_weight.shape)}; lift with "
                         f"max_order >= {orders}")
    if hl_weight.size(0) != hl_edge_index.size(1):
        raise ValueError(f"hl_weight has {hl_weight.size(0)} rows but "
                         f"hl_edge_index has {hl_edge_index.size(1)} edges")


class HiGCNBlock(Module):
    r"""One HiGCN block: a separate input linear map and a learnable
    polynomial filter per order, then concatenation.

    .. math::
        \mathbf{Z} = \big\Vert_{p=1}^{P} \sum_{k=0}^{K} \gamma_{p,k}\,
        \mathrm{HL}_p^{\,k}\,
        \mathrm{drop}_{d}\big(\mathrm{drop}_{x}(\mathbf{X})
        \mathbf{W}_p + \mathbf{b}_p\big)

    (a fresh input-dropout mask per order).

    Sparse inputs (at most 30% non-zero, e.g. bag-of-words features) take
    the input maps over their non-zero entries only
    (:func:`~graphkit.layers.sparse_input.dropout_linear`); the compressed
    input and the per-order CSR operators are cached while the same
    tensors come back, so full-graph training builds them once.

    Args:
        in_channels (int): input features :math:`F`.
        hidden_channels (int): width :math:`h` of each order's branch.
        max_order (int): :math:`P`, the orders :math:`1..P` used.
        K (int): polynomial degree.
        alpha (float): PPR initialisation of the filters.
        dropout (float): dropout on the block input.
        dprate (float): dropout before propagation.

    Shapes:
        - **input:** :math:`(N, F)`, ``hl_edge_index`` :math:`(2, E')`,
          ``hl_weight`` :math:`(E', \geq P)`
        - **output:** :math:`(N, P h)`
    """
    def __init__(self, in_channels: int, hidden_channels: int,
                 max_order: int = 2, K: int = 10, alpha: float = 0.5,
                 dropout: float = 0.5, dprate: float = 0.5) -> None:
        super().__init__()
        if max_order < 1:
            raise ValueError(f"HiGCN: max_order must be >= 1, got "
                             f"{max_order}")
        self.max_order = max_order
        self.dropout, self.dprate = dropout, dprate
        self.lins = ModuleList(Linear(in_channels, hidden_channels)
                               for _ in range(max_order))
        self.props = ModuleList(HiGCNProp(K, alpha)
                                for _ in range(max_order))
        self._input_cache, self._op_cache = IdentityCache(), IdentityCache()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for lin, prop in zip(self.lins, self.props):
            lin.reset_parameters()
            prop.reset_parameters()

    @property
    def gammas(self) -> Tensor:
        r"""The learned filter coefficients, :obj:`[P, K + 1]` (row
        :math:`p - 1` for order :math:`p`)."""
        return torch.stack([p.gamma.detach() for p in self.props])

    def _sparse(self, x: Tensor) -> tuple:
        sparse = row_sparse(x)
        if sparse is None:
            return x, None
        return sparse, block_diagonal(sparse, self.max_order)

    def forward(self, x: Tensor, hl_edge_index: Tensor,
                hl_weight: Tensor) -> Tensor:
        _check_operators(x, hl_edge_index, hl_weight, self.max_order,
                         'HiGCN')
        n, orders = x.size(0), self.max_order
        xs, tiled = self._input_cache.get((x, ), lambda: self._sparse(x))
        # All orders share edge_index ∪ self-loops: one block-diagonal
        # operator propagates them together, K products instead of K * P.
        op = self._op_cache.get((hl_edge_index, hl_weight), lambda:
                                block_diagonal_operator(
                                    hl_edge_index, hl_weight[:, :orders], n))
        # Each order draws its own input dropout, as in the reference.
        h = stacked_dropout_linear(xs, list(self.lins), self.dropout,
                                   self.training, tiled)  # [P * N, h]
        h = mask_dropout(h, self.dprate, self.training)
        gamma = torch.stack([prop.gamma for prop in self.props])
        z = polynomial_filter(h, op, gamma)  # [P, N, h]
        return z.permute(1, 0, 2).reshape(n, -1)


class HiGCN(Module):
    r"""The HiGCN node model, following the reference forward pass exactly:
    a :class:`HiGCNBlock`, dropout, then one output linear layer. It has
    **no nonlinearity**: it is linear in :math:`\mathbf{X}` up to the
    softmax of the loss.

    .. math::
        \mathbf{Y} = \mathrm{drop}(\mathbf{Z})\mathbf{W}_{out} + \mathbf{b}

    The flower-petal operators are graph inputs (``hl_edge_index``,
    ``hl_weight`` from :class:`~graphkit.transforms.FlowerPetalLift`), so
    the same model runs on any lifted graph.

    Args:
        in_channels (int): input features.
        out_channels (int): output classes.
        hidden_channels (int): width per order (default: :obj:`32`).
        max_order (int): :math:`P` (default: :obj:`2`).
        K (int): polynomial degree (default: :obj:`10`).
        alpha (float): PPR initialisation (default: :obj:`0.5`).
        dropout (float): dropout on input and concatenation.
        dprate (float): dropout before propagation.
    """
    data_keys = ('hl_edge_index', 'hl_weight')

    def __init__(self, in_channels: int, out_channels: int,
                 hidden_channels: int = 32, max_order: int = 2, K: int = 10,
                 alpha: float = 0.5, dropout: float = 0.5,
                 dprate: float = 0.5) -> None:
        super().__init__()
        self.block = HiGCNBlock(in_channels, hidden_channels, max_order, K,
                                alpha, dropout, dprate)
        self.dropout = dropout
        self.lin = Linear(max_order * hidden_channels, out_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.block.reset_parameters()
        self.lin.reset_parameters()

    @property
    def gammas(self) -> Tensor:
        r"""Learned filter coefficients :obj:`[P, K + 1]`."""
        return self.block.gammas

    def forward(self, x: Tensor, edge_index: Any = None,
                hl_edge_index: Tensor | None = None,
                hl_weight: Tensor | None = None) -> Tensor:
        z = self.block(x, hl_edge_index, hl_weight)
        z = mask_dropout(z, self.dropout, self.training)
        return self.lin(z)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.block.lins[0].in_features}'
                f', {self.lin.out_features}, max_order='
                f'{self.block.max_order}, K={self.block.props[0].K})')


class HiGCNGraphEncoder(Module):
    r"""HiGCN for graph classification: ``num_layers`` blocks, each a
    :class:`HiGCNBlock` (``K = 10``, ``alpha = 0.5``), a linear map back to
    the hidden width, and a GIN-style MLP
    (Linear, BatchNorm, ReLU, Linear, BatchNorm, ReLU). Pair it with sum
    readout (:class:`~graphkit.models.GraphModel`).

    Args:
        in_channels (int): node features.
        out_channels (int): output width of the last block.
        hidden_channels (int): branch and hidden width.
        max_order (int): :math:`P`.
        num_layers (int): number of blocks.
        K (int), alpha (float): filter settings.
        dropout (float): dropout inside the blocks.
    """
    data_keys = ('hl_edge_index', 'hl_weight')

    def __init__(self, in_channels: int, out_channels: int,
                 hidden_channels: int = 32, max_order: int = 2,
                 num_layers: int = 1, K: int = 10, alpha: float = 0.5,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.blocks, self.mixers, self.mlps = (ModuleList(), ModuleList(),
                                               ModuleList())
        dim = in_channels
        for i in range(num_layers):
            out = out_channels if i == num_layers - 1 else hidden_channels
            self.blocks.append(HiGCNBlock(dim, hidden_channels, max_order, K,
                                          alpha, dropout, dropout))
            self.mixers.append(Linear(max_order * hidden_channels,
                                      hidden_channels))
            self.mlps.append(Sequential(
                Linear(hidden_channels, hidden_channels),
                BatchNorm1d(hidden_channels), ReLU(),
                Linear(hidden_channels, out), BatchNorm1d(out), ReLU()))
            dim = out
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for mod in self.modules():
            if mod is not self and hasattr(mod, 'reset_parameters'):
                mod.reset_parameters()

    def forward(self, x: Tensor, edge_index: Any = None,
                hl_edge_index: Tensor | None = None,
                hl_weight: Tensor | None = None) -> Tensor:
        for block, mixer, mlp in zip(self.blocks, self.mixers, self.mlps):
            x = mlp(mixer(block(x, hl_edge_index, hl_weight)))
        return x


def _lift(max_order: int = 2) -> FlowerPetalLift:
    return FlowerPetalLift(max_order)


@register('higcn', tasks=('node', ), pre_transform=_lift,
          description='HiGCN, flower-petal Laplacians (Huang et al., 2024)')
def higcn(in_channels: int, out_channels: int, hidden_channels: int = 32,
          max_order: int = 2, K: int = 10, alpha: float = 0.5,
          dropout: float = 0.5, dprate: float = 0.5) -> HiGCN:
    return HiGCN(in_channels, out_channels, hidden_channels, max_order, K,
                 alpha, dropout, dprate)


@register('higcn-gin', tasks=('graph', ), pre_transform=_lift,
          description='HiGCN blocks with GIN-style MLPs, for graphs')
def higcn_gin(in_channels: int, out_channels: int, hidden_channels: int = 32,
              max_order: int = 2, num_layers: int = 1, K: int = 10,
              alpha: float = 0.5, dropout: float = 0.0) -> HiGCNGraphEncoder:
    return HiGCNGraphEncoder(in_channels, out_channels, hidden_channels,
                             max_order, num_layers, K, alpha, dropout)
