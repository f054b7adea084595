r"""Positional encodings for graph transformers: Laplacian eigenvectors
(Dwivedi & Bresson, 2020) and random-walk landing probabilities (RWSE,
Dwivedi et al., 2022), on top of PyG's transforms.

The eigenvectors' signs are arbitrary. They are re-drawn per *training
batch* by :func:`random_sign_flip` inside the model (one sign per
eigenvector column, shared by the batch, as in the reference code); the
sign chosen while preprocessing therefore does not matter.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from torch_geometric.data import Data
from torch_geometric.transforms import (AddLaplacianEigenvectorPE,
                                        AddRandomWalkPE, BaseTransform)
from torch_geometric.utils import get_laplacian, to_scipy_sparse_matrix

__all__ = ['LaplacianPE', 'RandomWalkPE', 'random_sign_flip', 'PE_KEYS',
           'positional_encoding']

# Attribute name of each encoding on the data object.
PE_KEYS = {'lap': 'lap_pe', 'rw': 'rw_pe'}


class LaplacianPE(AddLaplacianEigenvectorPE):
    r"""The :math:`k` eigenvectors of smallest non-zero eigenvalue of the
    normalised Laplacian
    :math:`\Delta = I - D^{-1/2} A D^{-1/2} = U^\top \Lambda U`, as
    ``data.lap_pe`` of shape :math:`[N, k]` (float32).

    PyG's :class:`~torch_geometric.transforms.AddLaplacianEigenvectorPE`
    does the work; graphs with :math:`N \le k` nodes (which have fewer than
    :math:`k` non-trivial eigenvectors) are solved densely and padded with
    zero columns, so every graph of a dataset gets :math:`k` columns and
    batches collate.

    Args:
        k (int): number of eigenvectors.
    """
    def __init__(self, k: int) -> None:
        if k < 1:
            raise ValueError(f"LaplacianPE needs k >= 1, got {k}")
        super().__init__(k, attr_name=PE_KEYS['lap'], is_undirected=True)

    def forward(self, data: Data) -> Data:
        n = int(data.num_nodes)
        if n > self.k + 1:
            data = super().forward(data)
            pe = data[self.attr_name]
        else:
            edge_index, weight = get_laplacian(data.edge_index,
                                               normalization='sym',
                                               num_nodes=n)
            lap = to_scipy_sparse_matrix(edge_index, weight, n).todense()
            vals, vecs = np.linalg.eigh(lap)
            pe = torch.from_numpy(vecs[:, vals.argsort()][:, 1:self.k + 1])
            pe = torch.cat([pe, pe.new_zeros(n, self.k - pe.size(1))], 1)
        data[self.attr_name] = pe.float()
        return data

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(k={self.k})'


class RandomWalkPE(AddRandomWalkPE):
    r"""Random-walk structural encoding: the return probabilities
    :math:`[(D^{-1}A)^t]_{ii}`, :math:`t = 1, \dots, k`, as ``data.rw_pe``
    (PyG's :class:`~torch_geometric.transforms.AddRandomWalkPE`)."""
    def __init__(self, walk_length: int) -> None:
        if walk_length < 1:
            raise ValueError(f"RandomWalkPE needs walk_length >= 1, got "
                             f"{walk_length}")
        super().__init__(walk_length, attr_name=PE_KEYS['rw'])

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(walk_length={self.walk_length})'


def positional_encoding(pe: str | None, pe_dim: int) -> BaseTransform | None:
    r"""The transform of encoding ``pe`` (``lap``, ``rw`` or
    ``none``/:obj:`None`) with ``pe_dim`` columns."""
    if pe is None or str(pe).lower() == 'none':
        return None
    kind = str(pe).lower()
    if kind == 'lap':
        return LaplacianPE(pe_dim)
    if kind == 'rw':
        return RandomWalkPE(pe_dim)
    raise ValueError(f"Unknown positional encoding '{pe}'; expected 'lap', "
                     f"'rw' or 'none'")


def random_sign_flip(pe: Tensor, training: bool,
                     generator: torch.Generator | None = None) -> Tensor:
    r"""Multiplies each column of the Laplacian PE by a random sign in
    :math:`\{-1, +1\}`, shared by all nodes (and graphs) of the batch, in
    training mode only; returns ``pe`` unchanged otherwise. The signs are
    drawn on the CPU (from ``generator`` or the global generator), so a seed
    gives the same signs on every device."""
    if not training:
        return pe
    sign = torch.randint(0, 2, (pe.size(-1), ), generator=generator)
    return pe * (2 * sign - 1).to(pe.device, pe.dtype)
