r"""HiGCN's learnable polynomial filter over a flower-petal operator."""
from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import Module, Parameter

__all__ = ['HiGCNProp', 'ppr_coefficients', 'sparse_operator',
           'block_diagonal_operator', 'polynomial_filter']


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


def block_diagonal_operator(edge_index: Tensor, edge_weight: Tensor,
                            num_nodes: int) -> Tensor:
    r"""One :math:`PN \times PN` sparse CSR matrix holding the :math:`P`
    operators that share ``edge_index`` (weights ``edge_weight[:, p]``) on
    its diagonal blocks, so that one product applies all of them to
    features stacked order by order."""
    if edge_weight.dim() == 1:
        edge_weight = edge_weight.view(-1, 1)
    orders = edge_weight.size(1)
    offsets = (torch.arange(orders, device=edge_index.device) *
               num_nodes).repeat_interleave(edge_index.size(1))
    stacked = edge_index.repeat(1, orders) + offsets
    return sparse_operator(stacked, edge_weight.t().reshape(-1),
                           orders * num_nodes)


class _PolynomialFilter(torch.autograd.Function):
    r"""Forward :math:`\sum_k \gamma_{p,k} A^k X_p`, saving the powers.
    Backward by Horner's rule, :math:`\partial X = \sum_k \gamma_{p,k}
    A^k G_p` (:math:`K` products with the symmetric :math:`A`), and
    :math:`\partial \gamma_{p,k} = \langle G_p, A^k X_p \rangle`: one
    autograd node for the whole filter."""
    @staticmethod
    def forward(ctx, x: Tensor, operator: Tensor, gamma: Tensor) -> Tensor:
        orders, steps = gamma.size(0), gamma.size(1)
        shape = (orders, x.size(0) // orders, x.size(1))
        powers = [x]
        for _ in range(1, steps):
            powers.append(operator @ powers[-1])
        stacked = torch.stack([z.view(shape) for z in powers], 1)
        # stacked: [P, K + 1, N, F]
        out = torch.einsum('pk,pknf->pnf', gamma, stacked)
        ctx.operator = operator
        ctx.save_for_backward(stacked, gamma)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor):
        stacked, gamma = ctx.saved_tensors
        grad_x = grad_gamma = None
        if ctx.needs_input_grad[2]:
            grad_gamma = torch.einsum('pnf,pknf->pk', grad, stacked)
        if ctx.needs_input_grad[0]:
            orders, steps = gamma.shape
            flat = grad.reshape(-1, grad.size(-1))
            g = flat * gamma[:, -1].repeat_interleave(grad.size(1))[:, None]
            for k in range(steps - 2, -1, -1):
                scale = gamma[:, k].repeat_interleave(grad.size(1))[:, None]
                g = ctx.operator @ g + flat * scale
            grad_x = g
        return grad_x, None, grad_gamma


def polynomial_filter(x: Tensor, operator: Tensor, gamma: Tensor) -> Tensor:
    r""":math:`\sum_{k=0}^{K} \gamma_{p,k} A_p^k X_p` for :math:`P` stacked
    blocks at once.

    Args:
        x (Tensor): features of the :math:`P` blocks stacked along rows,
            :math:`(P N, F)`.
        operator (Tensor): *symmetric* sparse :math:`(P N, P N)` with fixed
            values, e.g. from :func:`block_diagonal_operator` (or
            :math:`(N, N)` for :math:`P = 1`).
        gamma (Tensor): coefficients :math:`(P, K + 1)`.

    Returns:
        :math:`(P, N, F)`.
    """
    orders = gamma.size(0)
    if x.dim() != 2 or x.size(0) % orders:
        raise ValueError(f"polynomial_filter: expected features [P * N, F] "
                         f"with P = {orders}, got {tuple(x.shape)}")
    return _PolynomialFilter.apply(x, operator, gamma)


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
        return polynomial_filter(x, operator, self.gamma.view(1, -1))[0]

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(K={self.K}, alpha={self.alpha})'
