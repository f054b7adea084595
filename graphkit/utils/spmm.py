r"""Sparse-dense products with a CSR adjacency whose transpose is built once.

Message passing with a ``torch.sparse_csr`` adjacency :math:`\mathbf{A}`
computes :math:`\mathbf{Y} = \mathbf{A}\mathbf{X}` in one sparse product.
Its backward needs :math:`\partial\mathcal{L}/\partial\mathbf{X} =
\mathbf{A}^\top\,\partial\mathcal{L}/\partial\mathbf{Y}`, and PyTorch's
own backward of :func:`torch.sparse.mm` converts :math:`\mathbf{A}^\top` to
CSR (a sort of all non-zeros) at every call. On a fixed graph that
conversion is the same every step. :func:`csr_spmm` keeps the transposed
CSR matrix beside :math:`\mathbf{A}` (weakly, for as long as
:math:`\mathbf{A}` lives), so it is built once per graph; the product and
its gradient are unchanged. On CPU, products with at least 96 feature
columns use PyTorch's row-wise reduction kernel, which is faster there than
the generic sparse product.
"""
from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.weak import WeakIdKeyDictionary

__all__ = ['csr_mm', 'csr_spmm', 'csr_transpose', 'kernel_indices']

_TRANSPOSES = WeakIdKeyDictionary()


def kernel_indices(*indices: Tensor, extent: int) -> tuple[Tensor, ...]:
    r"""CSR index tensors in 32 bits when every index and count fits
    (``extent``: the largest of the non-zeros and the matrix sides), else
    unchanged. PyTorch's CPU sparse kernels take 32-bit indices and convert
    64-bit ones (a copy of every non-zero's index) at every call, so a
    matrix used many times should be built from these once."""
    if extent < 2**31 - 1:
        return tuple(t.to(torch.int32) for t in indices)
    return indices


def csr_transpose(adj: Tensor) -> Tensor:
    r""":math:`\mathbf{A}^\top` of a ``torch.sparse_csr`` matrix, as CSR,
    built on the first call for ``adj`` and reused while ``adj`` lives. An
    in-place change of ``adj``'s values (which bumps their version counter)
    rebuilds it."""
    if not isinstance(adj, Tensor) or adj.layout != torch.sparse_csr:
        raise ValueError(f"csr_transpose expects a torch.sparse_csr tensor, "
                         f"got {getattr(adj, 'layout', type(adj).__name__)}")
    version = adj.values()._version
    hit = _TRANSPOSES.get(adj)
    if hit is None or hit[1] != version:
        hit = (adj.detach().t().to_sparse_csr(), version)
        _TRANSPOSES[adj] = hit
    return hit[0]


# On CPU, PyTorch's row-wise reduction kernel (``torch.sparse.mm(A, X,
# 'sum')``) beats the generic sparse ``addmm`` from about 128 feature columns
# on (1.2-1.5x at 128-256 columns on graphs of 0.2-2M edges) and loses below
# 64; the crossover lies in between.
_REDUCE_KERNEL_MIN_WIDTH = 96


def csr_mm(adj: Tensor, x: Tensor) -> Tensor:
    r""":math:`\mathbf{A}\mathbf{X}` for a ``torch.sparse_csr``
    :math:`\mathbf{A}` and a dense :math:`\mathbf{X}`, with no autograd
    of its own (for use inside :class:`torch.autograd.Function`): on CPU
    with at least 96 columns, PyTorch's row-wise reduction kernel; the
    generic sparse product otherwise."""
    x = x.contiguous()
    if (not adj.is_cuda and x.size(1) >= _REDUCE_KERNEL_MIN_WIDTH
            and x.dtype in (torch.float32, torch.float64)):
        return torch.sparse.mm(adj, x, 'sum')
    return torch.sparse.mm(adj, x)


class _CSRMatMul(torch.autograd.Function):
    @staticmethod
    def forward(ctx, adj: Tensor, x: Tensor, inv_deg: Tensor | None
                ) -> Tensor:
        ctx.adj, ctx.inv_deg = adj, inv_deg
        out = csr_mm(adj, x)
        return out if inv_deg is None else out.mul_(inv_deg)

    @staticmethod
    def backward(ctx, grad: Tensor):
        if not ctx.needs_input_grad[1]:
            return None, None, None
        if ctx.inv_deg is not None:
            grad = grad * ctx.inv_deg
        return None, csr_mm(csr_transpose(ctx.adj), grad), None


def csr_spmm(adj: Tensor, x: Tensor, reduce: str = 'sum') -> Tensor:
    r"""Row-wise aggregation :math:`\mathbf{Y}_i = \bigoplus_{j}
    \mathbf{A}_{ij}\mathbf{X}_j` over the non-zeros of row :math:`i`.

    For a ``torch.sparse_csr`` ``adj`` whose values need no gradient and
    ``reduce`` in ``sum`` / ``add`` / ``mean``, the product is
    :math:`\mathbf{A}\mathbf{X}` (times :math:`\mathbf{D}^{-1}`, the
    inverse number of non-zeros of each row, 1 for an empty row, for
    ``mean``), with the gradient :math:`\mathbf{A}^\top\mathbf{G}`
    (:math:`\mathbf{A}^\top\mathbf{D}^{-1}\mathbf{G}`) taken from
    :func:`csr_transpose`. Any other input (other sparse layouts, learned
    edge values, ``max`` / ``min``) goes to
    :func:`torch_geometric.utils.spmm`.

    Args:
        adj (Tensor): the :math:`(N_{\mathrm{out}}, N_{\mathrm{in}})`
            adjacency (e.g. the transposed graph ``adj_t`` of PyG's
            message passing).
        x (Tensor): node features :math:`(N_{\mathrm{in}}, F)`.
        reduce (str): ``sum`` (``add``), ``mean``, ``max`` or ``min``.
    """
    if (not isinstance(adj, Tensor) or adj.layout != torch.sparse_csr
            or adj.requires_grad or reduce not in ('sum', 'add', 'mean')
            or x.dim() != 2):
        from torch_geometric.utils import spmm
        return spmm(adj, x, reduce=reduce)
    if adj.size(1) != x.size(0):
        raise ValueError(f"csr_spmm: the adjacency has {adj.size(1)} "
                         f"columns but x has {x.size(0)} rows")
    inv_deg = None
    if reduce == 'mean':
        crow = adj.crow_indices()
        inv_deg = 1.0 / (crow[1:] - crow[:-1]).clamp(min=1).to(
            x.dtype).view(-1, 1)
    return _CSRMatMul.apply(adj, x, inv_deg)
