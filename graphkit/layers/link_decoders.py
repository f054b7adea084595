r"""Pairwise link decoders: score node pairs from node embeddings.

Both return **logits** (use :func:`torch.nn.functional.
binary_cross_entropy_with_logits`).
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import Module, ModuleList

from torch_geometric.nn import Linear

from graphkit.utils.tensor import check_index, mask_dropout

__all__ = ['DotDecoder', 'HadamardMLPDecoder']


def _check_pairs(h: Tensor, edge_label_index: Tensor) -> None:
    check_index(edge_label_index, 'edge_label_index', 'B')


class DotDecoder(Module):
    r"""Inner-product decoder of the graph auto-encoder
    (`Kipf & Welling, 2016 <https://arxiv.org/abs/1611.07308>`_).

    .. math::
        s_{ij} = \mathbf{h}_i^\top \mathbf{h}_j

    Shapes:
        - **input:** node embeddings :math:`(N, F)`, pairs :math:`(2, B)`
        - **output:** logits :math:`(B)`
    """
    def reset_parameters(self) -> None:
        r"""No parameters."""

    def forward(self, h: Tensor, edge_label_index: Tensor) -> Tensor:
        _check_pairs(h, edge_label_index)
        return (h[edge_label_index[0]] * h[edge_label_index[1]]).sum(-1)


class HadamardMLPDecoder(Module):
    r"""MLP over the Hadamard product of the two endpoint embeddings, as in
    OGB's link-prediction baselines.

    .. math::
        s_{ij} = \mathrm{MLP}(\mathbf{h}_i \odot \mathbf{h}_j)

    Args:
        in_channels (int): embedding size :math:`F`.
        hidden_channels (int): hidden size of the MLP.
        num_layers (int): number of linear layers (default: :obj:`3`).
        dropout (float): dropout between layers (default: :obj:`0.0`).

    Shapes:
        - **input:** node embeddings :math:`(N, F)`, pairs :math:`(2, B)`
        - **output:** logits :math:`(B)`
    """
    def __init__(self, in_channels: int, hidden_channels: int,
                 num_layers: int = 3, dropout: float = 0.0) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"HadamardMLPDecoder needs num_layers >= 1, "
                             f"got {num_layers}")
        dims = [in_channels] + [hidden_channels] * (num_layers - 1) + [1]
        self.lins = ModuleList(Linear(a, b) for a, b in zip(dims, dims[1:]))
        self.dropout = dropout
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for lin in self.lins:
            lin.reset_parameters()

    def forward(self, h: Tensor, edge_label_index: Tensor) -> Tensor:
        _check_pairs(h, edge_label_index)
        z = h[edge_label_index[0]] * h[edge_label_index[1]]
        for lin in self.lins[:-1]:
            z = torch.relu(lin(z))
            z = mask_dropout(z, self.dropout, self.training)
        return self.lins[-1](z).view(-1)

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}({self.lins[0].in_channels}, '
                f'num_layers={len(self.lins)})')
