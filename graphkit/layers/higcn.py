r"""HiGCN's learnable polynomial filter over a flower-petal operator."""
from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import Module, Parameter

__all__ = ['HiGCNProp', 'ppr_coefficients', 'sparse_operator',
           'symmetric_spmm']


class _SymmetricSpMM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, operator: Tensor, x: Tensor) -> Tensor:
        ctx.operator = operator
        return operator @ x

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[None, Tensor]:
        # d(A x)/dx^T g = A^T g = A g for a symmetric A: no sparse transpose.
        return None, ctx.operator @ grad


def symmetric_spmm(operator: Tensor, x: Tensor) -> Tensor:
    r""":math:`A X` for a *symmetric* sparse :math:`A` with a fixed
    (non-trainable) value array. The backward pass reuses :math:`A` instead
    of transposing it, which is several times faster than autograd through
    a sparse CSR product on CPU."""
    return _SymmetricSpMM.apply(operator, x)


def ppr_coefficients(K: int, alpha: float) -> Tensor:
    r"""Personalised-PageRank initial coefficients,
    :math:`\gamma_k = \alpha (1-\alpha)^k` for :math:`k < K` and
    :math:`\gamma_K = (1-\alpha)^K`."""
    if K < 0:
        raise ValueError(f"K must be >= 0, got {K}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    k = torch.arange(K + 1, dtype=torch.float)
    gamma = alpha * (1 - alpha)**k
    gamma[-1] = (1 - alpha)**K
    return gamma


def sparse_operator(edge_index: Tensor, edge_weight: Tensor,
                    num_nodes: int) -> Tensor:
    r"""The :math:`N \times N` sparse CSR matrix with entry
    :math:`(i, j) = w` for each edge :math:`j \to i` of weight :math:`w`
    (rows aggregate incoming messages)."""
    from torch_geometric.utils import to_torch_csr_tensor
    return to_torch_csr_tensor(edge_index.flip(0), edge_weight,
                               size=(num_nodes, num_nodes))


class HiGCNProp(Module):
    r"""The per-order filter of HiGCN
    (`Huang et al., AAAI 2024 <https://arxiv.org/abs/2309.12971>`_):

    .. math::
        \mathbf{Z}_p = \sum_{k=0}^{K} \gamma_{p,k}\,
        \mathrm{HL}_p^{\,k}\, \mathbf{H}_p

    with learnable :math:`\gamma_p \in \mathbb{R}^{K+1}` initialised as
    personalised PageRank. Node-wise,
    :math:`\mathbf{z}_i^{(k+1)} = \sum_{j} (\mathrm{HL}_p)_{ij}
    \mathbf{z}_j^{(k)}`. The learned :math:`|\gamma_{p,k}|` are the paper's
    higher-order interaction strengths (:attr:`gamma`).

    Args:
        K (int): polynomial degree (default: :obj:`10`).
        alpha (float): PPR teleport probability of the initialisation
            (default: :obj:`0.5`).

    Shapes:
        - **input:** features :math:`(N, F)`, a symmetric operator
          :math:`(N, N)`, sparse (see :func:`sparse_operator`)
        - **output:** :math:`(N, F)`
    """
    def __init__(self, K: int = 10, alpha: float = 0.5) -> None:
        super().__init__()
        self.K, self.alpha = K, alpha
        self.gamma = Parameter(ppr_coefficients(K, alpha))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.gamma.copy_(ppr_coefficients(self.K, self.alpha))

    def forward(self, x: Tensor, operator: Tensor) -> Tensor:
        out = self.gamma[0] * x
        z = x
        for k in range(1, self.K + 1):
            z = symmetric_spmm(operator, z)
            out = out + self.gamma[k] * z
        return out

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(K={self.K}, alpha={self.alpha})'
