r"""Linear maps of sparse inputs (e.g. bag-of-words features) with input
dropout, computed over the non-zero entries only."""
from __future__ import annotations

import weakref
from typing import Callable, NamedTuple

import torch
from torch import Tensor
from torch.nn import Linear
from torch.utils.weak import WeakIdKeyDictionary

from graphkit.utils.spmm import kernel_indices

__all__ = ['RowSparse', 'row_sparse', 'block_diagonal', 'dropout_linear',
           'stacked_dropout_linear', 'IdentityCache']

_BLOCK_ENTRIES = 1 << 24   # entries of x scanned at once by row_sparse


class RowSparse(NamedTuple):
    r"""A :math:`(N, F)` matrix in compressed-row form, with the
    permutation to its compressed-column form (for products with
    :math:`\mathbf{X}^\top` in the backward pass)."""
    crow: Tensor   # [N + 1]
    col: Tensor    # [nnz]
    val: Tensor    # [nnz]
    ccol: Tensor   # [F + 1], column pointers
    row_t: Tensor  # [nnz], row of each entry in column-major order
    perm: Tensor   # [nnz], row-major position of each column-major entry
    shape: tuple[int, int]


def row_sparse(x: Tensor, max_density: float = 0.3) -> RowSparse | None:
    r"""The compressed-row form of a 2-D ``x`` when at most ``max_density``
    of its entries are non-zero and it needs no gradient; otherwise
    :obj:`None` (use the dense path)."""
    if x.dim() != 2 or x.requires_grad or x.is_sparse or x.numel() == 0:
        return None
    n, f = x.shape
    # Blocks of rows bound the temporaries (a boolean mask and the indices
    # of one block) whatever the size of x.
    step = max(1, _BLOCK_ENTRIES // f)
    blocks = range(0, n, step)
    counts = torch.cat([(x[i:i + step] != 0).sum(1) for i in blocks])
    if int(counts.sum()) > max_density * x.numel():
        return None
    rows, cols = [], []
    for i in blocks:
        r, c = (x[i:i + step] != 0).nonzero(as_tuple=True)
        rows.append(r + i)
        cols.append(c)
    row, col = torch.cat(rows), torch.cat(cols)
    crow = torch.zeros(n + 1, dtype=torch.long, device=x.device)
    crow[1:] = counts.cumsum(0)
    ccol = torch.zeros(f + 1, dtype=torch.long, device=x.device)
    ccol[1:] = torch.bincount(col, minlength=f).cumsum(0)
    perm = torch.argsort(col * n + row)
    return RowSparse(crow, col, x[row, col], ccol, row[perm], perm, (n, f))


def block_diagonal(x: RowSparse, copies: int) -> RowSparse:
    r"""``copies`` copies of ``x`` on the diagonal of a
    :math:`(cN, cF)` matrix."""
    if copies == 1:
        return x
    (n, f), nnz = x.shape, x.col.numel()

    def tile(ptr: Tensor, step: int) -> Tensor:
        parts = [ptr[:-1] + c * step for c in range(copies)]
        return torch.cat(parts + [ptr[-1:] + (copies - 1) * step])

    def shift(idx: Tensor, step: int) -> Tensor:
        return torch.cat([idx + c * step for c in range(copies)])

    return RowSparse(tile(x.crow, nnz), shift(x.col, f), x.val.repeat(copies),
                     tile(x.ccol, nnz), shift(x.row_t, n), shift(x.perm, nnz),
                     (copies * n, copies * f))


def _drop_values(val: Tensor, p: float, training: bool) -> Tensor:
    r"""Inverted dropout on the stored non-zeros of a sparse input."""
    from graphkit.utils.tensor import mask_dropout
    return mask_dropout(val, p, training)


_KERNEL_INDEX = WeakIdKeyDictionary()


def _kernel_index(x: RowSparse) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    # (crow, col, ccol, row_t) in 32 bits where the sizes allow: the sparse
    # kernels take 32-bit indices and would otherwise convert the 64-bit
    # ones at every call. Built once per RowSparse (keyed on its crow).
    hit = _KERNEL_INDEX.get(x.crow)
    if hit is None:
        hit = kernel_indices(x.crow, x.col, x.ccol, x.row_t,
                             extent=max(x.col.numel(), *x.shape))
        _KERNEL_INDEX[x.crow] = hit
    return hit


_TRANSPOSED = WeakIdKeyDictionary()


def _transposed(weight: Tensor) -> Tensor:
    # A contiguous W^T (the sparse product copies a strided one at every
    # call), rebuilt only when W changes: an optimiser step bumps its
    # version, so a frozen expert's weights are transposed once.
    key = (weight._version, weight.data_ptr())
    hit = _TRANSPOSED.get(weight)
    if hit is None or hit[0] != key:
        hit = (key, weight.detach().t().contiguous())
        _TRANSPOSED[weight] = hit
    return hit[1]


class _SparseLinear(torch.autograd.Function):
    r""":math:`\mathbf{X}\mathbf{W}^\top` for a constant sparse
    :math:`\mathbf{X}` and ``weight`` :math:`\mathbf{W}`; the weight
    gradient is the CSR product :math:`(\mathbf{X}^\top
    \mathbf{G})^\top`."""
    @staticmethod
    def forward(ctx, x: RowSparse, val: Tensor, weight: Tensor) -> Tensor:
        ctx.x = x
        ctx.save_for_backward(val)
        crow, col, _, _ = _kernel_index(x)
        a = torch.sparse_csr_tensor(crow, col, val, size=x.shape)
        return a @ _transposed(weight)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[None, None, Tensor | None]:
        if not ctx.needs_input_grad[2]:
            return None, None, None
        x, (val, ) = ctx.x, ctx.saved_tensors
        _, _, ccol, row_t = _kernel_index(x)
        a_t = torch.sparse_csr_tensor(ccol, row_t, val[x.perm],
                                      size=(x.shape[1], x.shape[0]))
        return None, None, (a_t @ grad).t()


def dropout_linear(x: Tensor | RowSparse, lin: Linear, p: float,
                   training: bool) -> Tensor:
    r""":math:`\mathrm{drop}_p(\mathbf{X})\mathbf{W}^\top + \mathbf{b}`.

    For a :class:`RowSparse` input, the dropout mask is drawn over the
    non-zero entries only (dropping a zero changes nothing, so the
    distribution of the output is the same as dense dropout), and the
    product and its weight gradient are sparse CSR products,
    :math:`O(\mathrm{nnz}\cdot h)` instead of :math:`O(N F h)`.
    """
    if not isinstance(x, RowSparse):
        from graphkit.utils.tensor import mask_dropout
        return lin(mask_dropout(x, p, training))
    val = _drop_values(x.val, p, training)
    out = _SparseLinear.apply(x, val.to(lin.weight.dtype), lin.weight)
    return out if lin.bias is None else out + lin.bias


class IdentityCache:
    r"""Caches one value computed from some tensors, reused while the
    *same* tensor objects (by identity and in-place version) come back.

    Holds only weak references, so it never keeps a graph alive.
    """
    def __init__(self) -> None:
        self._refs: tuple = ()
        self._versions: tuple = ()
        self._value = None
        self._built = False

    def clear(self) -> None:
        self._refs, self._versions, self._value = (), (), None
        self._built = False

    def __getstate__(self) -> dict:
        return {'_refs': (), '_versions': (), '_value': None,
                '_built': False}

    def _same(self, tensors: tuple[Tensor, ...]) -> bool:
        return (len(self._refs) == len(tensors)
                and all(r() is t for r, t in zip(self._refs, tensors))
                and tuple(t._version for t in tensors) == self._versions)

    def _remember(self, tensors: tuple[Tensor, ...]) -> None:
        self._refs = tuple(weakref.ref(t) for t in tensors)
        self._versions = tuple(t._version for t in tensors)

    def get(self, tensors: tuple[Tensor, ...], build: Callable[[], object]):
        if self._same(tensors) and self._built:
            return self._value
        self._value, self._built = build(), True
        self._remember(tensors)
        return self._value

    def row_sparse(self, x: Tensor) -> Tensor | RowSparse:
        r"""The cached :func:`row_sparse` form of ``x``, built on its first
        sight and reused while the same tensor comes back; ``x`` itself when
        it is too dense (or needs a gradient)."""
        return self.get((x, ), lambda: row_sparse(x)) or x

    def get_repeated(self, tensors: tuple[Tensor, ...],
                     build: Callable[[], object]):
        r"""Like :meth:`get`, but builds only when the same tensors come
        back a second time in a row; on a first sight it returns
        :obj:`None`. For values that pay off only when reused (full-batch
        training), not when the input changes at every call
        (mini-batches)."""
        if self._same(tensors):
            if not self._built:
                self._value, self._built = build(), True
            return self._value
        self._value, self._built = None, False
        self._remember(tensors)
        return None


def stacked_dropout_linear(x: Tensor | RowSparse, lins: list[Linear],
                           p: float, training: bool,
                           tiled: RowSparse | None = None) -> Tensor:
    r"""The outputs of several linear maps of the same input, each with its
    own input-dropout mask, stacked along rows: :math:`(cN, h)` for
    :math:`c` maps.

    With a sparse input, pass ``tiled = block_diagonal(x, c)`` and all
    :math:`c` maps run as one sparse product with their weights stacked.
    """
    if tiled is None or len(lins) == 1:
        return torch.cat([dropout_linear(x, lin, p, training)
                          for lin in lins])
    val = _drop_values(tiled.val, p, training)
    weight = torch.cat([lin.weight for lin in lins], dim=1)
    out = _SparseLinear.apply(tiled, val.to(weight.dtype), weight)
    if lins[0].bias is not None:
        n = tiled.shape[0] // len(lins)
        bias = torch.stack([lin.bias for lin in lins])
        out = (out.view(len(lins), n, -1) + bias.unsqueeze(1)).view_as(out)
    return out
