r"""Cellular sheaves on graphs: restriction maps, sheaf Laplacians and the
Neural Sheaf Diffusion step
(`Bodnar et al., NeurIPS 2022 <https://arxiv.org/abs/2202.04579>`_).

A sheaf gives every node and edge a stalk :math:`\mathbb{R}^d` and every
incidence :math:`v \trianglelefteq e` a restriction map
:math:`\mathcal{F}_{v \trianglelefteq e} \in \mathbb{R}^{d \times d}`. With
the coboundary :math:`(\delta x)_e = \mathcal{F}_{v \trianglelefteq e} x_v -
\mathcal{F}_{u \trianglelefteq e} x_u`, the sheaf Laplacian
:math:`L_\mathcal{F} = \delta^\top \delta` has blocks

.. math::
    L_{vv} = \sum_{e \ni v} \mathcal{F}_{v \trianglelefteq e}^\top
    \mathcal{F}_{v \trianglelefteq e}, \qquad
    L_{vu} = -\mathcal{F}_{v \trianglelefteq e}^\top
    \mathcal{F}_{u \trianglelefteq e},

and the (augmented) normalised Laplacian is
:math:`\Delta_\mathcal{F} = \tilde D^{-1/2} L_\mathcal{F} \tilde D^{-1/2}`
with :math:`\tilde D = \mathrm{blockdiag}(L_{vv}) + I`.

Maps are stored one per *directed* edge ``k = (v, u)`` of ``edge_index``
(``edge_index[0, k] = v``): map ``k`` is
:math:`\mathcal{F}_{v \trianglelefteq e}`, and the reverse edge holds
:math:`\mathcal{F}_{u \trianglelefteq e}`. Laplacians are sparse
:math:`Nd \times Nd` operators (:class:`SheafLaplacian`); a dense matrix is
only built by :meth:`SheafLaplacian.to_dense`, for tests.
"""
from __future__ import annotations

from abc import ABCMeta, abstractmethod

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable
from torch.nn import Linear, Module, Parameter

from graphkit.layers.sparse_input import IdentityCache
from graphkit.utils.spmm import csr_mm, kernel_indices

__all__ = ['SheafStructure', 'SheafLaplacian', 'StackedLaplacian',
           'diag_sheaf_laplacian', 'learned_diag_sheaf_laplacian',
           'block_sheaf_laplacian', 'orthogonal_sheaf_laplacian',
           'general_sheaf_laplacian', 'learned_general_sheaf_laplacian',
           'sym_matrix_pow', 'orthogonal_maps',
           'fixed_stalks', 'SheafLearner', 'EdgeWeightLearner', 'SheafConv',
           'DiagSheafConv', 'BundleSheafConv', 'GeneralSheafConv']


# ----------------------------------------------------------------------------
# Index bookkeeping
# ----------------------------------------------------------------------------

class SheafStructure:
    r"""The index bookkeeping of a sheaf Laplacian on one graph, computed
    once per ``edge_index`` and stalk dimension.

    The diagonal blocks are kept apart (a dense :obj:`[N, d]` or
    :obj:`[N, d, d]` tensor). The off-diagonal entries are stored

    - for diagonal maps, stalk-major (:obj:`[d, E]`, the operator indexed
      :math:`i N + v`), sorted into CSR order by ``perm`` (skipped when it
      is the identity, as for a coalesced graph);
    - for block maps, as :obj:`[d, d, E]` with entry :math:`[j, i, k] =
      (\Delta_k)_{ij}` and the edges in the CSR order of the graph
      (``edge_perm``, :obj:`None` for a coalesced graph). Row :math:`j`,
      an :obj:`[d, E]` block, is then exactly the CSR value array of the
      :math:`dN \times N` matrix :math:`S_j` whose row :math:`iN + v`
      holds :math:`(\Delta_{vu})_{ij}`, and :math:`\Delta x` is
      :math:`\sum_j S_j x_{\cdot j}`: :math:`d` sparse products that need
      no permutation of the :math:`d^2 E` values (``crow`` / ``csr_col``
      describe the :math:`S_j`, which share one pattern).

    Args:
        edge_index (Tensor): :obj:`[2, E]`, both directions of every edge, no
            self-loops, no duplicates.
        num_nodes (int): :math:`N`.
        d (int): stalk dimension.
        blocks (bool): full :math:`d \times d` blocks (bundle / general
            maps) rather than diagonal ones (diagonal maps).
    """
    def __init__(self, edge_index: Tensor, num_nodes: int, d: int,
                 blocks: bool) -> None:
        if edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError(f"edge_index must have shape [2, E], got "
                             f"{tuple(edge_index.shape)}")
        if d < 1:
            raise ValueError(f"stalk dimension d must be >= 1, got {d}")
        row, col = edge_index
        device = edge_index.device
        if bool((row == col).any()):
            raise ValueError("sheaf Laplacian: edge_index has self-loops; "
                             "remove them first "
                             "(torch_geometric.utils.remove_self_loops)")
        key = row * num_nodes + col
        sorted_key, order = torch.sort(key)
        if sorted_key.numel() > 1 and bool(
                (sorted_key[1:] == sorted_key[:-1]).any()):
            raise ValueError("sheaf Laplacian: edge_index has duplicate "
                             "edges; coalesce it first "
                             "(torch_geometric.utils.coalesce)")
        rkey = col * num_nodes + row
        pos = torch.searchsorted(sorted_key, rkey).clamp_max(
            max(key.numel() - 1, 0))
        if key.numel() and not bool((sorted_key[pos] == rkey).all()):
            raise ValueError("sheaf Laplacian: edge_index must hold both "
                             "directions of every edge (make it undirected "
                             "with torch_geometric.utils.to_undirected)")
        self.row, self.col, self.rev = row, col, order[pos]
        self.num_nodes, self.d, self.blocks = num_nodes, d, blocks
        self.num_edges = row.numel()

        size = num_nodes * d
        self.size = size
        self._index32: tuple[Tensor, Tensor] | None = None
        self._sum_ops: dict[tuple, Tensor] = {}
        self._scratch: dict[tuple, Tensor] = {}
        self._sampled: dict[tuple, Tensor] = {}
        self.edge_perm = self.edge_perm_inv = None
        if blocks:
            e = self.num_edges
            if not bool((order == torch.arange(e, device=device)).all()):
                self.edge_perm = order
                self.edge_perm_inv = torch.empty_like(order)
                self.edge_perm_inv[order] = torch.arange(e, device=device)
            g_crow = torch.zeros(num_nodes + 1, dtype=torch.long,
                                 device=device)
            g_crow[1:] = torch.bincount(row, minlength=num_nodes).cumsum(0)
            stalk = torch.arange(d, device=device)
            self.crow = torch.cat([(g_crow[:-1][None, :] +
                                    stalk[:, None] * e).reshape(-1),
                                   g_crow.new_full((1, ), d * e)])
            self.csr_col = col[order].repeat(d)
            self.csr_row = (stalk[:, None] * num_nodes +
                            row[order][None, :]).reshape(-1)
            self.perm = None
        else:
            # Diagonal maps: d independent scalar graphs. Index the operator
            # stalk-major (i * N + v), so the values of a coalesced graph are
            # already in CSR order (maps.t()), with no permutation.
            i = torch.arange(d, device=device)[:, None] * num_nodes
            rows = (i + row[None, :]).reshape(-1)
            cols = (i + col[None, :]).reshape(-1)
            perm = torch.argsort(rows * size + cols)
            self.perm = (None if bool((perm == torch.arange(
                perm.numel(), device=device)).all()) else perm)
            self.csr_col = cols if self.perm is None else cols[perm]
            self.csr_row = rows if self.perm is None else rows[perm]
            self.crow = torch.zeros(size + 1, dtype=torch.long,
                                    device=device)
            self.crow[1:] = torch.bincount(rows, minlength=size).cumsum(0)

    def _side(self, by: str) -> Tensor:
        _check_side(by)
        return self.row if by == 'row' else self.col

    def take(self, x: Tensor, by: str = 'row',
             out: Tensor | None = None) -> Tensor:
        r""":obj:`x[:, row]` (or ``col``) for node arrays :obj:`[r, N]`,
        not differentiable (see :meth:`gather`): ``torch.gather`` with the
        index broadcast over the :math:`r` rows, 1.3 to 2.5 times faster
        on CPU than ``index_select`` along dimension 1 for :math:`r > 1`."""
        return _take_columns(x, self._side(by), out)

    def reverse(self, x: Tensor, out: Tensor | None = None) -> Tensor:
        r""":obj:`x[:, rev]` for edge arrays :obj:`[r, E]`: each edge's
        value moved to its reverse edge (not differentiable), with
        ``torch.gather`` as :meth:`take`."""
        return _take_columns(x, self.rev, out)

    def edge_sum(self, x: Tensor, by: str = 'row') -> Tensor:
        r""":math:`y_{:, v} = \sum_{k:\, \mathrm{row}_k = v} x_{:, k}`
        (or over ``col``) for edge arrays :obj:`[r, E]`, returning
        :obj:`[r, N]`. Differentiable (its backward pass is :meth:`take`).

        The edges are in row order, so the row sums read ``x`` in order:
        one sparse matrix-vector product per row with the :math:`N \times
        E` incidence matrix (built once per dtype), several times faster
        on CPU than ``index_add``. The column sums read it in random
        order; there ``index_add`` along dimension 1, which writes to a
        small :obj:`[r, N]` array, is three to four times faster on CPU
        than the product (on other devices the product is used for
        both)."""
        if x.dim() != 2 or x.size(1) != self.num_edges:
            raise ValueError(f"edge_sum expects [r, E] = [r, "
                             f"{self.num_edges}], got {tuple(x.shape)}")
        index = self._side(by)
        if by == 'col' and x.is_cpu:
            return _EdgeSum.apply(x, self, None, by)
        key = (by, x.dtype, x.device)
        op = self._sum_ops.get(key)
        if op is None:
            crow = index.new_zeros(self.num_nodes + 1)
            crow[1:] = torch.bincount(index,
                                      minlength=self.num_nodes).cumsum(0)
            op = torch.sparse_csr_tensor(
                *kernel_indices(crow, torch.argsort(index, stable=True),
                                extent=self.num_edges),
                torch.ones(self.num_edges, dtype=x.dtype, device=x.device),
                size=(self.num_nodes, self.num_edges))
            self._sum_ops[key] = op
        return _EdgeSum.apply(x, self, op, by)

    def scratch(self, slot: int, like: Tensor,
                rows: int | None = None) -> Tensor:
        r"""A reusable :obj:`[rows, E]` work array (:math:`d` rows by
        default) of ``like``'s dtype and device, kept with the structure.
        For temporaries that never leave a single forward or backward pass:
        a fresh array of this size costs more in first-touch page faults
        on CPU than the arithmetic done in it."""
        rows = self.d if rows is None else rows
        key = (slot, rows, like.dtype, like.device)
        buf = self._scratch.get(key)
        if buf is None:
            buf = like.new_empty(rows, self.num_edges)
            self._scratch[key] = buf
        return buf

    def gather(self, x: Tensor, by: str = 'row') -> Tensor:
        r""":meth:`take`, differentiable, with :meth:`edge_sum` as its
        backward pass."""
        _check_side(by)
        return _EdgeGather.apply(x, self, by)

    @property
    def nnz(self) -> int:
        r"""Off-diagonal non-zeros (:math:`d^2 E` for blocks, else
        :math:`d E`)."""
        return self.csr_col.numel() * (self.d if self.blocks else 1)

    @property
    def shape(self) -> tuple[int, int]:
        r"""The shape of the CSR matrix that ``crow`` / ``csr_col``
        describe: :math:`(Nd, Nd)`, or :math:`(dN, N)` for the block
        matrices :math:`S_j`."""
        return (self.size, self.num_nodes if self.blocks else self.size)

    def _kernel_index(self) -> tuple[Tensor, Tensor]:
        if self._index32 is None:     # built once (see kernel_indices)
            self._index32 = kernel_indices(
                self.crow, self.csr_col,
                extent=max(self.csr_col.numel(), self.size))
        return self._index32

    def csr(self, values: Tensor) -> Tensor:
        r"""The CSR matrix of the pattern (``crow`` / ``csr_col``, shape
        :attr:`shape`) with ``values``."""
        crow, col = self._kernel_index()
        return torch.sparse_csr_tensor(crow, col, values, size=self.shape)

    def sampled_product(self, a: Tensor, b: Tensor,
                        out: Tensor | None = None) -> Tensor:
        r"""The values of :math:`A B^\top` on the pattern, for
        :obj:`a` :obj:`[rows, f]` and :obj:`b` :obj:`[cols, f]`: the
        gradient of a sparse product with respect to its values. The
        sampled product writes into a work matrix kept with the structure
        (PyTorch's out-of-place form copies the whole pattern first) and
        reads ``b`` row by row, untransposed; the values are then copied to
        ``out`` (or a new array)."""
        key = (a.dtype, a.device)
        work = self._sampled.get(key)
        if work is None:
            work = self.csr(a.new_zeros(self.csr_col.numel()))
            self._sampled[key] = work
        if not a.is_cpu:    # the in-place form is a CPU measure
            values = torch.sparse.sampled_addmm(
                work, a.contiguous(), b.t().contiguous(), beta=0.0).values()
            return values if out is None else out.copy_(values)
        values = work.values()
        # beta = 0 still propagates NaN from the old values: clear them
        values.zero_()
        torch.sparse.sampled_addmm(work, a.contiguous(), b.t(), beta=0.0,
                                   out=work)
        if out is None:
            return values.clone()
        return out.copy_(values)


def _take_columns(x: Tensor, index: Tensor,
                  out: Tensor | None = None) -> Tensor:
    # x[:, index] for [r, n] arrays: torch.gather with the index broadcast
    # over the rows is 1.3-2.5x faster on CPU than index_select along
    # dimension 1 for r > 1; for one row index_select is the faster
    if x.size(0) == 1:
        return torch.index_select(x, 1, index, out=out)
    return torch.gather(x, 1, index.expand(x.size(0), -1), out=out)


def _check_side(by: str) -> None:
    if by not in ('row', 'col'):
        raise ValueError(f"edges are grouped by 'row' or 'col', got '{by}'")


class _EdgeSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, structure: SheafStructure, op: Tensor,
                by: str) -> Tensor:
        ctx.structure, ctx.by = structure, by
        if x.size(0) == 0 or structure.num_edges == 0:
            return x.new_zeros(x.size(0), structure.num_nodes)
        if op is None:
            return x.new_zeros(x.size(0), structure.num_nodes).index_add_(
                1, structure._side(by), x)
        x = x.contiguous()
        return torch.stack([op @ x[i] for i in range(x.size(0))])

    @staticmethod
    def backward(ctx, grad: Tensor):
        return ctx.structure.take(grad, ctx.by), None, None, None


class _EdgeGather(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, structure: SheafStructure,
                by: str) -> Tensor:
        ctx.structure, ctx.by = structure, by
        return structure.take(x, by)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return ctx.structure.edge_sum(grad, ctx.by), None, None


class _SymmetricSheafMatmul(torch.autograd.Function):
    r""":math:`\Delta X` for a symmetric sparse :math:`\Delta` whose values
    need gradients: :math:`\partial X = \Delta G` and
    :math:`\partial \Delta_{ij} = (G X^\top)_{ij}` on the pattern only
    (a sampled dense product, never an :math:`Nd \times Nd` matrix)."""
    @staticmethod
    def forward(ctx, structure: SheafStructure, values: Tensor,
                x: Tensor) -> Tensor:
        op = structure.csr(values)
        ctx.structure, ctx.op = structure, op
        ctx.save_for_backward(x)
        return csr_mm(op, x)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (x, ) = ctx.saved_tensors
        grad = grad.contiguous()
        grad_values = grad_x = None
        if ctx.needs_input_grad[1]:
            grad_values = ctx.structure.sampled_product(grad, x)
        if ctx.needs_input_grad[2]:
            grad_x = csr_mm(ctx.op, grad)
        return None, grad_values, grad_x


class _BlockSheafMatmul(torch.autograd.Function):
    r""":math:`\Delta X` for the off-diagonal blocks of a symmetric block
    operator stored as :obj:`[d, d, E]` (see :class:`SheafStructure`):
    with :math:`X_j` the :obj:`[N, f]` slice of stalk dimension :math:`j`,
    :math:`\Delta X = \sum_j S_j X_j` (rows :math:`iN + v`), one sparse
    product per :math:`j`. Backward: :math:`\partial X = \Delta G` (the
    operator is symmetric) and :math:`\partial S_j = G X_j^\top` sampled
    on the pattern."""
    @staticmethod
    def forward(ctx, structure: SheafStructure, values: Tensor,
                x: Tensor) -> Tensor:
        s = structure
        n, d = s.num_nodes, s.d
        xs = x.view(n, d, -1).transpose(0, 1).contiguous()      # [d, N, f]
        ops = [s.csr(values[j].reshape(-1)) for j in range(d)]
        ctx.structure, ctx.ops = s, ops
        ctx.save_for_backward(xs)
        return _BlockSheafMatmul.apply_ops(ops, xs, n)

    @staticmethod
    def apply_ops(ops: list[Tensor], xs: Tensor, n: int) -> Tensor:
        d = len(ops)
        out = csr_mm(ops[0], xs[0])
        for j in range(1, d):
            out.add_(csr_mm(ops[j], xs[j]))
        # stalk-major [d N, f] back to node-major [N d, f]
        return out.view(d, n, -1).transpose(0, 1).reshape(n * d, -1)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (xs, ) = ctx.saved_tensors
        s = ctx.structure
        n, d = s.num_nodes, s.d
        gs = grad.reshape(n, d, -1).transpose(0, 1).contiguous()  # [d, N, f]
        grad_values = grad_x = None
        if ctx.needs_input_grad[1]:
            flat = gs.view(d * n, -1)
            grad_values = flat.new_empty(d, s.csr_col.numel())
            for j in range(d):
                s.sampled_product(flat, xs[j], out=grad_values[j])
            grad_values = grad_values.view(d, d, s.num_edges)
        if ctx.needs_input_grad[2]:
            grad_x = _BlockSheafMatmul.apply_ops(ctx.ops, gs, n)
        return None, grad_values, grad_x


class SheafLaplacian:
    r"""A (normalised) sheaf Laplacian: a :class:`SheafStructure`, its
    diagonal blocks (:obj:`[N, d]` diagonals or :obj:`[N, d, d]` blocks) and
    its off-diagonal values in the structure's layout (stalk-major
    :obj:`[dE]` in CSR order for diagonal maps, :obj:`[d, d, E]` for
    blocks). ``laplacian @ x`` applies it to
    :math:`(Nd, f)` features, differentiably in all of them.

    With ``scale`` (:obj:`[N, d, d]`, symmetric, blocks only) the
    off-diagonal part is :math:`S L S` with :math:`S =
    \mathrm{blockdiag}(\mathrm{scale})` and :math:`L` given by ``values``:
    a normalisation applied to the :math:`N d f` features on both sides of
    the sparse product instead of to the :math:`d^2 E` values
    (:func:`general_sheaf_laplacian`); :meth:`off_diagonal` returns the
    normalised values."""
    def __init__(self, structure: SheafStructure, diag: Tensor,
                 values: Tensor, scale: Tensor | None = None) -> None:
        if scale is not None and (not structure.blocks or scale.shape != (
                structure.num_nodes, structure.d, structure.d)):
            raise ValueError(f"SheafLaplacian scale must be [N, d, d] = "
                             f"[{structure.num_nodes}, {structure.d}, "
                             f"{structure.d}] on a block structure, got "
                             f"{tuple(scale.shape)}")
        self.structure, self.diag, self.values = structure, diag, values
        self.scale = scale

    def __matmul__(self, x: Tensor) -> Tensor:
        s = self.structure
        if x.dim() != 2 or x.size(0) != s.size:
            raise ValueError(f"SheafLaplacian of size {s.size} cannot "
                             f"multiply features of shape {tuple(x.shape)}: "
                             f"expected [{s.size}, f]")
        blocks = x.view(s.num_nodes, s.d, -1)
        if not s.blocks:
            # node-major features to the operator's stalk-major order and
            # back (copies of N d f numbers, not of the E d values)
            out = self.stalk_major_matmul(
                blocks.transpose(0, 1).reshape(s.size, -1))
            return out.view(s.d, s.num_nodes, -1).transpose(0, 1) \
                .reshape_as(x)
        diag = self.diag.to(x.dtype)
        values = self.values.to(x.dtype)
        if self.scale is None:
            out = _BlockSheafMatmul.apply(s, values, x)
            return out + (diag @ blocks).view_as(x)
        scale = self.scale.to(x.dtype)
        out = _BlockSheafMatmul.apply(s, values, (scale @ blocks).view_as(x))
        return (scale @ out.view_as(blocks) + diag @ blocks).view_as(x)

    @property
    def stalk_major(self) -> bool:
        r"""Whether :meth:`stalk_major_matmul` is available (diagonal
        maps, whose operator is indexed stalk-major)."""
        return not self.structure.blocks

    def stalk_major_matmul(self, x: Tensor) -> Tensor:
        r""":math:`\Delta x` for features given stalk-major, :obj:`[dN, f]`
        with row :math:`iN + v` holding stalk dimension :math:`i` of node
        :math:`v` (the operator's own order), returned in the same layout:
        no transposition of the features on either side of the sparse
        product. Diagonal maps only."""
        s = self.structure
        if s.blocks:
            raise ValueError("stalk_major_matmul needs diagonal maps; block "
                             "Laplacians take node-major features (@)")
        if x.dim() != 2 or x.size(0) != s.size:
            raise ValueError(f"SheafLaplacian of size {s.size} cannot "
                             f"multiply features of shape {tuple(x.shape)}: "
                             f"expected [{s.size}, f]")
        diag = self.diag.to(x.dtype).t().reshape(-1, 1)
        out = _SymmetricSheafMatmul.apply(s, self.values.to(x.dtype), x)
        return out + diag * x

    def off_diagonal(self) -> Tensor:
        r"""The off-diagonal values of the operator in the structure's
        layout, with ``scale`` applied (for inspecting a learned sheaf)."""
        if self.scale is None:
            return self.values
        s = self.structure
        row = s.csr_row[:s.num_edges] % s.num_nodes
        col = s.csr_col[:s.num_edges]
        # [j, i, k] = (S_row L_k S_col)_{ij} = (S_col L_k^T S_row)_{ji}
        vals_t = self.values.permute(2, 0, 1)
        out = self.scale[col] @ vals_t @ self.scale[row]
        return out.permute(1, 2, 0).contiguous()

    def to_dense(self) -> Tensor:
        r"""The dense :math:`Nd \times Nd` matrix, node-major (row
        :math:`v d + i` is stalk dimension :math:`i` of node :math:`v`)."""
        s = self.structure
        out = self.values.new_zeros(s.size, s.size)
        if s.blocks:  # values [j, i, k] at (row_k d + i, col_k d + j)
            d = s.d
            row = s.csr_row[:s.num_edges]
            col = s.csr_col[:s.num_edges]
            i = torch.arange(d, device=row.device)
            rows = row[None, None, :] * d + i[None, :, None]
            cols = col[None, None, :] * d + i[:, None, None]
            out[rows.expand(d, d, -1), cols.expand(d, d, -1)] = self.values
            if self.scale is not None:
                scale = torch.block_diag(*self.scale)
                out = scale @ out @ scale
        else:  # stalk-major storage to node-major rows
            rows = (s.csr_row % s.num_nodes) * s.d + s.csr_row // s.num_nodes
            cols = (s.csr_col % s.num_nodes) * s.d + s.csr_col // s.num_nodes
            out[rows, cols] = self.values
        diag = self.diag if s.blocks else torch.diag_embed(self.diag)
        return out + torch.block_diag(*diag)


class StackedLaplacian:
    r"""A Laplacian that is block-diagonal across groups of stalk
    dimensions, e.g. the learned :math:`d` dimensions and the fixed low- /
    high-pass ones: :math:`\Delta = \Delta_1 \oplus \Delta_2` on each
    node's stalk :math:`[x_{1} \Vert x_{2}]`. Each part is a
    :class:`SheafLaplacian`; the fixed parts are constants, built once."""
    def __init__(self, parts: list[SheafLaplacian]) -> None:
        self.parts = parts
        self.num_nodes = parts[0].structure.num_nodes
        self.dims = [p.structure.d for p in parts]
        self.size = self.num_nodes * sum(self.dims)

    def __matmul__(self, x: Tensor) -> Tensor:
        if x.dim() != 2 or x.size(0) != self.size:
            raise ValueError(f"Laplacian of size {self.size} cannot "
                             f"multiply features of shape {tuple(x.shape)}")
        n = self.num_nodes
        blocks = x.view(n, sum(self.dims), -1).split(self.dims, dim=1)
        outs = [(p @ b.reshape(n * b.size(1), -1)).view_as(b)
                for p, b in zip(self.parts, blocks)]
        return torch.cat(outs, dim=1).reshape_as(x)

    @property
    def stalk_major(self) -> bool:
        r"""Whether every part takes stalk-major features."""
        return all(p.stalk_major for p in self.parts)

    def stalk_major_matmul(self, x: Tensor) -> Tensor:
        r""":math:`\Delta x` for stalk-major features :obj:`[\hat d N, f]`
        (see :meth:`SheafLaplacian.stalk_major_matmul`): each part's
        stalk dimensions are a contiguous block of rows."""
        if x.dim() != 2 or x.size(0) != self.size:
            raise ValueError(f"Laplacian of size {self.size} cannot "
                             f"multiply features of shape {tuple(x.shape)}")
        rows = [d * self.num_nodes for d in self.dims]
        return torch.cat([p.stalk_major_matmul(b) for p, b in
                          zip(self.parts, x.split(rows, dim=0))], dim=0)

    def to_dense(self) -> Tensor:
        r"""The dense matrix, node-major (for tests)."""
        eye = torch.eye(self.size, dtype=self.parts[0].values.dtype)
        return self @ eye


def _take(x: Tensor, index: Tensor) -> Tensor:
    # index_select's backward is an index_add, several times faster on CPU
    # than the sorting scatter of advanced indexing.
    return x.index_select(0, index)


def _finish(structure: SheafStructure, diag: Tensor,
            off: Tensor) -> SheafLaplacian:
    if structure.blocks:    # [E, d, d] (k, i, j) to [d, d, E] (j, i, k)
        off = off.permute(2, 1, 0)
        if structure.edge_perm is not None:
            off = off.index_select(2, structure.edge_perm)
        return SheafLaplacian(structure, diag, off.contiguous())
    off = off.t().reshape(-1)
    if structure.perm is not None:
        off = off.index_select(0, structure.perm)
    return SheafLaplacian(structure, diag, off)


# ----------------------------------------------------------------------------
# Laplacian builders (pure functions of the maps)
# ----------------------------------------------------------------------------

class _NormalisedDiagLaplacian(torch.autograd.Function):
    r"""The augmented normalised Laplacian of diagonal maps, with a
    hand-written backward pass (about half the passes over the
    :math:`E \times d` edge arrays of the autograd graph).

    With :math:`n_v = (D_v + 1)^{-1/2}` and :math:`a_k = n_{v} n_{u}` for
    edge :math:`k = (v, u)` (reverse :math:`\bar k`):
    :math:`\Delta_{vv} = 1 - n_v^2`, :math:`\Delta_k = -f_k f_{\bar k}
    a_k = \Delta_{\bar k}`, so with :math:`s_k = g_k + g_{\bar k}`,

    .. math::
        \partial f_k = -f_{\bar k} a_k s_k + 2 f_k\,
        \partial D_v, \quad
        \partial D_v = -\tfrac12 n_v^3 \Big(\tfrac{1}{n_v}
        \sum_{k: v} \Delta_k s_k - 2 n_v\, \partial\Delta_{vv}\Big).
    """
    # Works stalk-major: maps [d, E], one contiguous row per stalk
    # dimension, so every gather and scatter runs along dim 1.
    @staticmethod
    def forward(ctx, maps: Tensor, structure: SheafStructure):
        s = structure
        deg = s.edge_sum(maps * maps)
        norm = (deg + 1.0).rsqrt()
        a = s.take(norm, 'row').mul_(s.take(norm, 'col'))
        mrev = s.reverse(maps)
        off = torch.mul(maps, mrev).mul_(a).neg_()
        ctx.structure = s
        ctx.save_for_backward(maps, mrev, a, norm, off)
        return deg * norm * norm, off

    @staticmethod
    def backward(ctx, g_diag: Tensor | None, g_off: Tensor | None):
        maps, mrev, a, norm, off = ctx.saved_tensors
        s = ctx.structure
        g_n = torch.zeros_like(norm)
        grad = torch.zeros_like(maps)
        if g_off is not None:
            g_sym = g_off + s.reverse(g_off)
            g_n = s.edge_sum(off * g_sym).div_(norm)
            grad.addcmul_(mrev * a, g_sym, value=-1.0)
        if g_diag is not None:
            g_n.addcmul_(norm, g_diag, value=-2.0)
        g_deg = g_n.mul_(norm.pow(3)).mul_(-0.5)
        grad.addcmul_(maps, s.take(g_deg, 'row'), value=2.0)
        return grad, None


def diag_sheaf_laplacian(maps: Tensor, structure: SheafStructure,
                         normalised: bool = True, augmented: bool = True,
                         stalk_major: bool = False) -> SheafLaplacian:
    r"""The sheaf Laplacian of diagonal maps
    :math:`\mathcal{F}_{v \trianglelefteq e} = \mathrm{diag}(f_{v,e})`: each
    stalk dimension is a signed scalar graph,

    .. math::
        (L)_{vv} = \textstyle\sum_{e \ni v} f_{v,e}^2, \quad
        (L)_{vu} = -f_{v,e} \odot f_{u,e}, \quad
        \Delta = (D + I)^{-1/2} L (D + I)^{-1/2}.

    Args:
        maps (Tensor): :obj:`[E, d]`, one diagonal per directed edge.
        structure (SheafStructure): built with ``blocks=False``.
        normalised (bool): return :math:`\Delta` instead of :math:`L`.
        augmented (bool): normalise by :math:`D + I` (else :math:`D`, with
            isolated stalks left at zero).
        stalk_major (bool): ``maps`` is :obj:`[d, E]` (the layout the
            operator stores, which saves a transpose).
    """
    s = structure
    shape = (s.d, s.num_edges) if stalk_major else (s.num_edges, s.d)
    if s.blocks or maps.shape != shape:
        layout = '[d, E]' if stalk_major else '[E, d]'
        raise ValueError(f"diagonal maps must have shape {layout} = "
                         f"{list(shape)} for a diagonal structure, "
                         f"got {tuple(maps.shape)}")
    if normalised and augmented:
        maps_t = maps if stalk_major else maps.t().contiguous()
        diag, off = _NormalisedDiagLaplacian.apply(maps_t, s)
        off = off.reshape(-1)
        if s.perm is not None:
            off = off.index_select(0, s.perm)
        return SheafLaplacian(s, diag.t(), off)
    if stalk_major:
        maps = maps.t()
    deg = maps.new_zeros(s.num_nodes, s.d).index_add_(0, s.row, maps**2)
    off = -maps * _take(maps, s.rev)
    if not normalised:
        return _finish(s, deg, off)
    norm = (deg + 1.0 if augmented else deg).clamp_min(1e-12).rsqrt()
    if not augmented:
        norm = torch.where(deg > 0, norm, torch.zeros_like(norm))
    off = off * _take(norm, s.row) * _take(norm, s.col)
    return _finish(s, deg * norm**2, off)


def _act_forward(x: Tensor, act: str, doubled: bool = False) -> Tensor:
    # in place; tanh x = 2 sigmoid(2x) - 1 (``doubled``: x is already 2x)
    if act == 'tanh':
        return (x if doubled else x.mul_(2.0)).sigmoid_().mul_(2.0).sub_(1.0)
    if act == 'elu':
        return F.elu_(x)
    return x


def _act_backward_(grad: Tensor, out: Tensor, act: str,
                   work: Tensor) -> Tensor:
    # grad *= act'(x), from act's output, in place (work: scratch)
    if act == 'tanh':
        return grad.mul_(torch.mul(out, out, out=work).neg_().add_(1.0))
    if act == 'elu':
        return grad.mul_(torch.where(out > 0, 1.0, out + 1.0))
    return grad


class _LearnedDiagLaplacian(torch.autograd.Function):
    r"""The augmented normalised Laplacian of diagonal maps predicted by a
    :class:`SheafLearner` from its node terms, in one pass with a
    hand-written backward pass (see :func:`learned_diag_sheaf_laplacian`).
    Stalk-major: ``left`` / ``right`` are :obj:`[d, N]`, the maps
    :obj:`[d, E]`. Temporaries of size :math:`dE` go to the structure's
    scratch arrays; only the four arrays kept for the backward pass are
    allocated."""
    @staticmethod
    def forward(ctx, left: Tensor, right: Tensor, structure: SheafStructure,
                act: str):
        s = structure
        work = s.scratch(0, left)
        f = s.take(left, 'row')
        f = _act_forward(f.add_(s.take(right, 'col', out=work)), act)
        f_rev = s.take(left, 'col')
        f_rev = _act_forward(f_rev.add_(s.take(right, 'row', out=work)),
                             act)
        deg = s.edge_sum(torch.mul(f, f, out=work))
        norm = (deg + 1.0).rsqrt_()
        a = s.take(norm, 'row')
        a.mul_(s.take(norm, 'col', out=work))
        off = torch.mul(f, f_rev).mul_(a).neg_()
        ctx.structure, ctx.act = s, act
        ctx.save_for_backward(f, f_rev, a, norm, off)
        return deg * norm * norm, off

    @staticmethod
    def backward(ctx, g_diag: Tensor | None, g_off: Tensor | None):
        f, f_rev, a, norm, off = ctx.saved_tensors
        s, act = ctx.structure, ctx.act
        w0, w1, w2 = (s.scratch(i, f) for i in range(3))
        g_deg = torch.zeros_like(norm)
        if g_off is not None:
            # off = -f f_rev a, with a = n_row n_col
            h = torch.mul(g_off, off, out=w0)
            g_norm = s.edge_sum(h, 'row').add_(s.edge_sum(h, 'col'))
            g_deg.addcmul_(g_norm, norm.pow(2), value=-0.5)
            g_f_rev = torch.mul(g_off, a, out=w0).neg_()
            g_f = torch.mul(g_f_rev, f_rev, out=w1)
            g_f_rev.mul_(f)
        else:
            g_f = w1.zero_()
        if g_diag is not None:
            # d/dD [D / (D + 1)] = n^4
            g_deg.addcmul_(g_diag, norm.pow(4))
        g_f.addcmul_(s.take(g_deg, 'row', out=w2), f, value=2.0)
        g_pre = _act_backward_(g_f, f, act, w2)
        g_left = s.edge_sum(g_pre, 'row')
        g_right = s.edge_sum(g_pre, 'col')
        if g_off is not None:
            g_pre = _act_backward_(g_f_rev, f_rev, act, w2)
            g_left.add_(s.edge_sum(g_pre, 'col'))
            g_right.add_(s.edge_sum(g_pre, 'row'))
        return g_left, g_right, None, None


def _check_node_terms(left: Tensor, right: Tensor, s: SheafStructure,
                      act: str, blocks: bool) -> None:
    # a fused builder's input: a learner's node terms for the structure's
    # family (d rows for diagonal maps, d^2 for general ones)
    rows, name = ('d^2', 'general') if blocks else ('d', 'diagonal')
    shape = (s.d * s.d if blocks else s.d, s.num_nodes)
    if s.blocks != blocks or left.shape != shape or right.shape != shape:
        raise ValueError(f"learned {name} maps need node terms of shape "
                         f"[{rows}, N] = {list(shape)} on a "
                         f"{'block' if blocks else 'diagonal'} structure, "
                         f"got {tuple(left.shape)} and "
                         f"{tuple(right.shape)}")
    if act not in ('tanh', 'id', 'elu'):
        raise ValueError(f"Unknown sheaf activation '{act}'. Valid: "
                         f"tanh, id, elu")


def learned_diag_sheaf_laplacian(left: Tensor, right: Tensor,
                                 structure: SheafStructure,
                                 act: str = 'tanh') -> SheafLaplacian:
    r"""The augmented normalised Laplacian of the diagonal maps a
    :class:`SheafLearner` predicts, from the learner's node terms: with
    :math:`l_v = V_1 \mathrm{vec} X_v + b` and :math:`r_v = V_2
    \mathrm{vec} X_v` (:meth:`SheafLearner.node_terms`), edge
    :math:`k = (v, u)` gets :math:`f_k = \sigma(l_v + r_u)` and its reverse
    :math:`f_{\bar k} = \sigma(l_u + r_v)`, and

    .. math::
        \Delta_{vv} = D_v n_v^2, \quad \Delta_k = -f_k f_{\bar k} n_v n_u,
        \quad D_v = \sum_{k:\, v} f_k^2, \ n_v = (D_v + 1)^{-1/2},

    the same operator as :func:`diag_sheaf_laplacian` on the learner's
    maps. Each edge computes its reverse map from the node terms instead of
    gathering it from the reverse edge, so neither pass permutes an
    :math:`E \times d` array (a random-access gather, the slowest step on
    CPU), and the backward pass is hand-written.

    Args:
        left (Tensor), right (Tensor): :obj:`[d, N]` node terms.
        structure (SheafStructure): built with ``blocks=False``.
        act (str): the learner's activation, ``tanh``, ``id`` or ``elu``.
    """
    s = structure
    _check_node_terms(left, right, s, act, blocks=False)
    diag, off = _LearnedDiagLaplacian.apply(left.contiguous(),
                                            right.contiguous(), s, act)
    if s.perm is not None:
        off = off.reshape(-1).index_select(0, s.perm)
    return SheafLaplacian(s, diag.t(), off.reshape(-1))


def block_sheaf_laplacian(maps: Tensor, structure: SheafStructure,
                          normalised: bool = True,
                          orthogonal: bool = False) -> SheafLaplacian:
    r"""The sheaf Laplacian of general :math:`d \times d` maps,

    .. math::
        L_{vv} = \textstyle\sum_{e \ni v} \mathcal{F}_{v \trianglelefteq e}^
        \top \mathcal{F}_{v \trianglelefteq e}, \quad
        L_{vu} = -\mathcal{F}_{v \trianglelefteq e}^\top
        \mathcal{F}_{u \trianglelefteq e}, \quad
        \Delta = \tilde D^{-1/2} L \tilde D^{-1/2},\ \tilde D =
        \mathrm{blockdiag}(L_{vv}) + I.

    With ``orthogonal=True`` the maps must be (scaled) orthogonal, possibly
    extended by fixed :math:`\pm 1` stalks, so :math:`L_{vv}` is diagonal and
    the normalisation is elementwise; otherwise :math:`\tilde D_v^{-1/2}` is
    a matrix inverse square root (:func:`sym_matrix_pow`, whose gradient
    stays finite when eigenvalues repeat).

    Args:
        maps (Tensor): :obj:`[E, d, d]`.
        structure (SheafStructure): built with ``blocks=True``.
    """
    s = structure
    if not s.blocks or maps.shape != (s.num_edges, s.d, s.d):
        raise ValueError(f"block maps must have shape [E, d, d] = "
                         f"[{s.num_edges}, {s.d}, {s.d}] for a block "
                         f"structure, got {tuple(maps.shape)}")
    off = -maps.transpose(1, 2) @ _take(maps, s.rev)
    if orthogonal:
        deg = maps.new_zeros(s.num_nodes, s.d).index_add_(
            0, s.row, (maps**2).sum(1))
        eye = torch.eye(s.d, device=maps.device, dtype=maps.dtype)
        if not normalised:
            return _finish(s, deg[:, :, None] * eye, off)
        norm = (deg + 1.0).rsqrt()
        diag = (deg * norm**2)[:, :, None] * eye
        off = (_take(norm, s.row)[:, :, None] * off *
               _take(norm, s.col)[:, None, :])
        return _finish(s, diag, off)
    gram = maps.transpose(1, 2) @ maps
    deg = maps.new_zeros(s.num_nodes, s.d, s.d).index_add_(0, s.row, gram)
    if not normalised:
        return _finish(s, deg, off)
    eye = torch.eye(s.d, device=maps.device, dtype=maps.dtype)
    inv_sqrt = sym_matrix_pow(deg + eye, -0.5)
    diag = inv_sqrt @ deg @ inv_sqrt
    off = _take(inv_sqrt, s.row) @ off @ _take(inv_sqrt, s.col)
    return _finish(s, diag, off)


def _small_matmul_raw(a: Tensor, b: Tensor, transpose_a: bool,
                      scale: float = 1.0,
                      out: Tensor | None = None) -> Tensor:
    r"""Batched :math:`d \times d` products in stalk-major layout:
    :obj:`a`, :obj:`b` are :obj:`[d, d, E]` (entry :math:`(i, j)` of all
    :math:`E` matrices is one contiguous row) and the result is
    ``scale`` :math:`\cdot A B` (or :math:`A^\top B`), added to ``out``
    when given, as :math:`d` outer products of :obj:`[E]` rows. For small
    :math:`d` this is several times faster on CPU than :func:`torch.bmm` on
    :obj:`[E, d, d]`, which pays per matrix. Not differentiable: the
    builders that use it have hand-written backward passes."""
    d = a.size(0)
    for k in range(d):
        left = (a[k] if transpose_a else a[:, k])[:, None, :]
        if out is None:     # the scale on the [d, E] factor, not the product
            out = (left if scale == 1.0 else left * scale) * b[k][None]
        else:   # in place, with no [d, d, E] temporary
            out.addcmul_(left, b[k][None, :, :], value=scale)
    return out


def _edge_order_grad(g_off: Tensor, s: SheafStructure) -> Tensor:
    # the gradient of block values stored in CSR order, back in the order
    # of edge_index (contiguous [d, d, E])
    return (g_off if s.edge_perm is None else
            g_off.index_select(2, s.edge_perm_inv)).contiguous()


def _plus_reverse_transposed(g: Tensor, s: SheafStructure) -> Tensor:
    # G_k + G_k̄^T for [d, d, E] blocks: one reverse-edge gather, the sum
    # made in place in the gathered array
    d, e = s.d, s.num_edges
    g_rev = s.reverse(g.view(d * d, e)).view(d, d, e)
    return g_rev.transpose(0, 1).add_(g)


class _NormalisedOrthogonalLaplacian(torch.autograd.Function):
    r"""The augmented normalised Laplacian of weighted orthogonal maps
    :math:`w_e Q_e`, with a hand-written backward pass.

    With :math:`D_v = \sum_{e \ni v} w_e^2` (a scalar: the maps are
    orthogonal), :math:`n_v = (D_v + 1)^{-1/2}` and, for edge
    :math:`k = (v, u)` with reverse :math:`\bar k`,
    :math:`c_k = -w_k w_{\bar k} n_v n_u`:

    .. math::
        \Delta_{vv} = D_v n_v^2 I, \qquad
        \Delta_k = c_k\, Q_k^\top Q_{\bar k},

    and, with :math:`G_k = c_k\,\partial\Delta_k`,
    :math:`\partial Q_k = Q_{\bar k}(G_k^\top + G_{\bar k})`.
    Everything runs stalk-major (:obj:`[d, d, E]`, contiguous rows of
    :math:`E`), the output is :math:`\Delta_k^\top = c_k Q_{\bar k}^\top
    Q_k`, the layout :class:`SheafStructure` stores, and the edge scale is
    one :obj:`[E]` vector; autograd through the generic block builder is
    about three times slower.
    """
    @staticmethod
    def forward(ctx, q: Tensor, w: Tensor, structure: 'SheafStructure'):
        s = structure
        d, e = s.d, s.num_edges
        deg = s.edge_sum((w * w).view(1, -1)).view(-1)
        norm = (deg + 1.0).rsqrt()
        a = norm.index_select(0, s.row).mul_(norm.index_select(0, s.col))
        w_rev = w.index_select(0, s.rev)
        c = torch.mul(w, w_rev).mul_(a).neg_()
        q_rev = s.reverse(q.view(d * d, e)).view(d, d, e)
        block_t = _small_matmul_raw(q_rev, q, True)      # [j, i, k]
        off = block_t * c
        if s.edge_perm is not None:
            off = off.index_select(2, s.edge_perm)
        ctx.structure = s
        ctx.save_for_backward(w, w_rev, a, c, norm, q_rev, block_t)
        return deg * norm * norm, off

    @staticmethod
    def backward(ctx, g_diag: Tensor | None, g_off: Tensor | None):
        s = ctx.structure
        d, e = s.d, s.num_edges
        w, w_rev, a, c, norm, q_rev, block_t = ctx.saved_tensors
        g_q = g_w = None
        g_deg = torch.zeros_like(norm)
        if g_off is not None:
            # g[j, i, k] = (∂Δ_k)_{ij}, i.e. the layout of G_k^T / c
            g = _edge_order_grad(g_off, s)
            # Σ_ij g ⊙ block_t, one [E] accumulator (no [d, d, E] product)
            g_rows, b_rows = g.view(d * d, e), block_t.view(d * d, e)
            g_c = g_rows[0] * b_rows[0]
            for r in range(1, d * d):
                g_c.addcmul_(g_rows[r], b_rows[r])
            if ctx.needs_input_grad[0]:
                # G_k̄ = c ∂Δ_k̄ (c is symmetric): the reverse edge's
                # gradient, transposed; then (G_k^T + G_k̄) / c
                m = _plus_reverse_transposed(g, s).mul_(c)
                g_q = _small_matmul_raw(q_rev, m, False)
            # c = -w w_rev a, with a = n_row n_col symmetric in k, k̄: both
            # [E] terms moved to the reverse edge in one gather
            h = torch.stack([g_c * a, g_c * w * w_rev])
            h.add_(s.reverse(h)).neg_()
            g_w, g_a = h[0].mul_(w_rev), h[1]
            g_n = s.edge_sum((g_a * norm.index_select(0, s.col))
                             .view(1, -1)).view(-1)
            g_deg.addcmul_(g_n, norm.pow(3), value=-0.5)
        if g_diag is not None:
            # d/dD [D / (D + 1)] = n^4
            g_deg.addcmul_(g_diag, norm.pow(4))
        grad_w = g_deg.index_select(0, s.row).mul_(w).mul_(2.0)
        g_w = grad_w if g_w is None else g_w.add_(grad_w)
        return g_q, g_w, None


class _GeneralLaplacianBlocks(torch.autograd.Function):
    r"""The unnormalised blocks of the sheaf Laplacian of general maps
    :math:`Q_k` (stalk-major, :obj:`[d, d, E]`), with a hand-written
    backward pass: the off-diagonal values :math:`L_k^\top = -Q_{\bar
    k}^\top Q_k` (the layout :class:`SheafStructure` stores, in its CSR
    order) and the diagonal blocks :math:`L_{vv} = \sum_{k:\,
    \mathrm{row}_k = v} Q_k^\top Q_k` as :obj:`[d^2, N]` rows.

    The maps are given (``act=None``: ``first`` is :obj:`[d, d, E]`) or
    computed here from a :class:`SheafLearner`'s node terms (``first``,
    ``second`` :obj:`[d^2, N]`): :math:`Q_k = \sigma(l_v + r_u)` for edge
    :math:`k = (v, u)`, in place in one :obj:`[d^2, E]` array.

    With :math:`G_k` the gradient of :math:`L_k^\top` and :math:`S_v =
    \partial L_{vv} + \partial L_{vv}^\top`, both terms of a map's
    gradient come out of one product,

    .. math::
        \partial Q_k = Q_k S_{\mathrm{row}_k}
        - Q_{\bar k}\,(G_k + G_{\bar k}^\top),

    so the backward pass makes one reverse-edge gather and one
    :obj:`[d, d, E]` product (autograd through the two forward products,
    the sign and the reverse-edge gather makes four, a negation and three
    sums of :obj:`[d, d, E]` arrays)."""
    @staticmethod
    def forward(ctx, first: Tensor, second: Tensor | None,
                structure: SheafStructure, act: str | None):
        s = structure
        d, e = s.d, s.num_edges
        if act is None:
            q = first
        else:       # the learner's maps, σ(l_row + r_col), in place
            q = s.take(first, 'row')
            q = _act_forward(q.add_(s.take(second, 'col',
                                           out=s.scratch(0, q, d * d))),
                             act).view(d, d, e)
        q_rev = s.reverse(q.view(d * d, e)).view(d, d, e)
        off = _small_matmul_raw(q_rev, q, True, scale=-1.0)
        gram = _small_matmul_raw(q, q, True, out=s.scratch(0, q, d * d)
                                 .view(d, d, e).zero_())
        deg = s.edge_sum(gram.view(d * d, e))
        if s.edge_perm is not None:
            off = off.index_select(2, s.edge_perm)
        ctx.structure, ctx.act = s, act
        ctx.save_for_backward(q, q_rev)
        return off, deg

    @staticmethod
    @once_differentiable
    def backward(ctx, g_off: Tensor | None, g_deg: Tensor | None):
        s, act = ctx.structure, ctx.act
        d, e, n = s.d, s.num_edges, s.num_nodes
        q, q_rev = ctx.saved_tensors
        g_q = None
        if g_deg is not None:
            g = g_deg.reshape(d, d, n)
            sym = (g + g.transpose(0, 1)).reshape(d * d, n)
            g_q = _small_matmul_raw(q, s.take(sym).view(d, d, e), False)
        if g_off is not None:
            m = _plus_reverse_transposed(_edge_order_grad(g_off, s), s)
            g_q = _small_matmul_raw(q_rev, m, False, scale=-1.0, out=g_q)
        if g_q is None:
            g_q = torch.zeros_like(q)
        if act is None:
            return g_q, None, None, None
        g_pre = _act_backward_(g_q.view(d * d, e), q.view(d * d, e), act,
                               s.scratch(0, q, d * d))
        return s.edge_sum(g_pre, 'row'), s.edge_sum(g_pre, 'col'), None, None


def _normalised_general(structure: SheafStructure, off_t: Tensor,
                        deg: Tensor) -> SheafLaplacian:
    # L from its blocks: D̃^{-1/2} as the Laplacian's scale
    d, n = structure.d, structure.num_nodes
    deg = deg.view(d, d, n).permute(2, 0, 1)                 # [N, d, d]
    eye = torch.eye(d, device=deg.device, dtype=deg.dtype)
    inv_sqrt = sym_matrix_pow(deg + eye, -0.5)
    diag = inv_sqrt @ deg @ inv_sqrt
    return SheafLaplacian(structure, diag, off_t, scale=inv_sqrt)


def general_sheaf_laplacian(maps: Tensor,
                            structure: SheafStructure) -> SheafLaplacian:
    r"""The augmented normalised sheaf Laplacian of general maps given
    stalk-major, :obj:`[d, d, E]` (entry :math:`(i, j)` of every map in one
    row): the same operator as :func:`block_sheaf_laplacian` with
    ``normalised=True`` on :obj:`maps.permute(2, 0, 1)`,

    .. math::
        \Delta_{vv} = \tilde D_v^{-1/2} L_{vv} \tilde D_v^{-1/2}, \quad
        \Delta_{vu} = -\tilde D_v^{-1/2} \mathcal{F}_{v \trianglelefteq e}^
        \top \mathcal{F}_{u \trianglelefteq e} \tilde D_u^{-1/2},

    with the :math:`E` small products computed as outer products of
    :obj:`[E]` rows and differentiated by hand
    (:class:`_GeneralLaplacianBlocks`), several times faster on CPU than
    batched matrix products on :obj:`[E, d, d]`. The values are the
    unnormalised :math:`L_{vu}^\top = -\mathcal{F}_{u \trianglelefteq
    e}^\top \mathcal{F}_{v \trianglelefteq e}` (the layout
    :class:`SheafStructure` stores), and the normalisation
    :math:`\tilde D^{-1/2}` is the Laplacian's ``scale``, applied to the
    :math:`N d f` features on both sides of the sparse product rather
    than to the :math:`d^2 E` values."""
    s = structure
    d, e = s.d, s.num_edges
    if not s.blocks or maps.shape != (d, d, e):
        raise ValueError(f"general maps must have shape [d, d, E] = "
                         f"[{d}, {d}, {e}] for a block structure, got "
                         f"{tuple(maps.shape)}")
    return _normalised_general(s, *_GeneralLaplacianBlocks.apply(
        maps.contiguous(), None, s, None))


def learned_general_sheaf_laplacian(left: Tensor, right: Tensor,
                                    structure: SheafStructure,
                                    act: str = 'tanh') -> SheafLaplacian:
    r""":func:`general_sheaf_laplacian` of the maps a :class:`SheafLearner`
    predicts, from the learner's node terms :math:`l, r`
    (:meth:`SheafLearner.node_terms`, :obj:`[d^2, N]`, row :math:`id + j`
    for map entry :math:`(i, j)`): edge :math:`k = (v, u)` gets
    :math:`Q_k = \sigma(l_v + r_u)`. The maps are built inside the
    Laplacian's fused pass, in place, and their activation is
    differentiated there too, so no :obj:`[d^2, E]` array is allocated for
    them beyond the one kept for the backward pass.

    Args:
        left (Tensor), right (Tensor): :obj:`[d^2, N]` node terms.
        structure (SheafStructure): built with ``blocks=True``.
        act (str): the learner's activation, ``tanh``, ``id`` or ``elu``.
    """
    s = structure
    _check_node_terms(left, right, s, act, blocks=True)
    return _normalised_general(s, *_GeneralLaplacianBlocks.apply(
        left.contiguous(), right.contiguous(), s, act))


def orthogonal_sheaf_laplacian(q: Tensor, weights: Tensor | None,
                               structure: SheafStructure,
                               stalk_major: bool = False) -> SheafLaplacian:
    r"""The augmented normalised sheaf Laplacian of orthogonal maps scaled
    by edge weights, :math:`\mathcal{F}_{v \trianglelefteq e} = w_e Q_e`:

    .. math::
        L_{vv} = \Big(\sum_{e \ni v} w_e^2\Big) I, \quad
        L_{vu} = -w_e w_{\bar e}\, Q_e^\top Q_{\bar e}, \quad
        \Delta = (D + I)^{-1/2} L (D + I)^{-1/2}.

    The same operator as :func:`block_sheaf_laplacian` with
    ``orthogonal=True`` on the maps ``weights[:, None, None] * q``, with a
    fused forward and backward pass (several times faster on CPU).

    Args:
        q (Tensor): :obj:`[E, d, d]` orthogonal matrices.
        weights (Tensor, optional): :obj:`[E]` edge weights :math:`w_e`
            (:obj:`None`: all ones).
        structure (SheafStructure): built with ``blocks=True``.
        stalk_major (bool): ``q`` is :obj:`[d, d, E]` (what
            :func:`orthogonal_maps` returns with ``stalk_major=True``,
            the layout used inside, which saves two copies).
    """
    s = structure
    shape = ((s.d, s.d, s.num_edges) if stalk_major else
             (s.num_edges, s.d, s.d))
    if not s.blocks or q.shape != shape:
        layout = '[d, d, E]' if stalk_major else '[E, d, d]'
        raise ValueError(f"orthogonal maps must have shape {layout} = "
                         f"{list(shape)} for a block structure, got "
                         f"{tuple(q.shape)}")
    if weights is None:
        weights = q.new_ones(s.num_edges)
    if weights.shape != (s.num_edges, ):
        raise ValueError(f"edge weights must have shape [E] = "
                         f"[{s.num_edges}], got {tuple(weights.shape)}")
    q = q.contiguous() if stalk_major else q.permute(1, 2, 0).contiguous()
    diag, off = _NormalisedOrthogonalLaplacian.apply(q, weights, s)
    eye = torch.eye(s.d, device=q.device, dtype=q.dtype)
    return SheafLaplacian(s, diag[:, None, None] * eye, off)


class _SymMatrixPow(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a: Tensor, p: float) -> Tensor:
        lam, u = torch.linalg.eigh(a)
        lam = lam.clamp_min(torch.finfo(a.dtype).tiny)
        ctx.save_for_backward(lam, u)
        ctx.p = p
        return u @ (lam[..., :, None]**p * u.transpose(-1, -2))

    @staticmethod
    def backward(ctx, grad: Tensor):
        lam, u = ctx.saved_tensors
        p = ctx.p
        g = u.transpose(-1, -2) @ (0.5 * (grad + grad.transpose(-1, -2))) @ u
        f = lam**p
        li, lj = lam[..., :, None], lam[..., None, :]
        diff = li - lj
        close = diff.abs() <= 1e-6 * torch.maximum(li.abs(), lj.abs()) \
            .clamp_min(1.0)
        # Divided differences of f(x) = x^p; f' where eigenvalues coincide.
        mean = 0.5 * (li + lj)
        safe = torch.where(close, torch.ones_like(diff), diff)
        k = torch.where(close, p * mean**(p - 1),
                        (f[..., :, None] - f[..., None, :]) / safe)
        return u @ (k * g) @ u.transpose(-1, -2), None


def sym_matrix_pow(a: Tensor, p: float) -> Tensor:
    r""":math:`A^p` of a batch of symmetric positive-definite matrices,
    by eigendecomposition. The backward pass uses the Daleckii-Krein
    divided differences of :math:`x^p`, with :math:`f'` where eigenvalues
    coincide, so repeated eigenvalues (e.g. :math:`\tilde D = I`) give
    finite gradients without the random jitter of the reference code."""
    return _SymMatrixPow.apply(a, p)


# ----------------------------------------------------------------------------
# Map parameterisations
# ----------------------------------------------------------------------------

def orthogonal_maps(params: Tensor, d: int, method: str = 'householder',
                    stalk_major: bool = False) -> Tensor:
    r"""Orthogonal :math:`d \times d` matrices from :math:`d(d-1)/2`
    parameters each.

    - ``householder``: the product of :math:`d` Householder reflections
      whose vectors have the parameters below a unit diagonal (what
      :func:`torch.linalg.householder_product` computes, written out entry
      by entry in :func:`_householder_maps`, :math:`\tau_i =
      2 / \lVert v_i \rVert^2`);
    - ``cayley``: :math:`(I - A/2)^{-1}(I + A/2)`, :math:`A` skew-symmetric;
    - ``matrix_exp``: :math:`\exp(A)`, :math:`A` skew-symmetric.

    Args:
        params (Tensor): :obj:`[E, d(d-1)/2]`.
        stalk_major (bool): return :obj:`[d, d, E]` instead of
            :obj:`[E, d, d]`.
    """
    n = d * (d - 1) // 2
    if d < 2:
        raise ValueError(f"orthogonal maps need stalk dimension d >= 2, "
                         f"got {d}")
    if params.dim() != 2 or params.size(1) != n:
        raise ValueError(f"orthogonal maps with d = {d} need parameters of "
                         f"shape [E, {n}], got {tuple(params.shape)}")
    if method == 'householder':
        out = _householder_maps(params, d)              # [d, d, E]
        return out if stalk_major else out.permute(2, 0, 1).contiguous()
    rows, cols = torch.tril_indices(d, d, -1, device=params.device)
    low = params.new_zeros(params.size(0), d, d)
    low[:, rows, cols] = params
    eye = torch.eye(d, device=params.device, dtype=params.dtype)
    skew = low - low.transpose(1, 2)
    if method == 'cayley':
        out = torch.linalg.solve(eye - 0.5 * skew, eye + 0.5 * skew)
    elif method == 'matrix_exp':
        out = torch.linalg.matrix_exp(skew)
    else:
        raise ValueError(f"Unknown orthogonal map '{method}'. Valid: "
                         f"householder, cayley, matrix_exp")
    return out.permute(1, 2, 0).contiguous() if stalk_major else \
        out.contiguous()


def _reflector_index(d: int) -> list[list[int]]:
    # Which parameters are the free entries of each reflector v_i (rows
    # j > i of column i): the parameters are the strictly lower part of a
    # d x d matrix in torch.tril_indices order (row-major).
    rows, cols = torch.tril_indices(d, d, -1).tolist()
    return [[k for k, c in enumerate(cols) if c == i] for i in range(d - 1)]


def _dot_rows(a: Tensor, b: Tensor, out: Tensor | None = None) -> Tensor:
    # Σ_r a[r] * b[r] for [d, E] arrays, as d products of [E] rows
    out = torch.mul(a[0], b[0], out=out)
    for r in range(1, a.size(0)):
        out.addcmul_(a[r], b[r])
    return out


def _reflect_vector_(y: Tensor, v: Tensor, tau: Tensor, i: int) -> Tensor:
    # In place, y <- H_i y = y - τ v (v·y), v = e_i + Σ_{j>i} v_j e_j, for
    # E vectors given as y[j] = [E] (or [d, E]: then each y[j] is a column
    # block of E matrices, y = Q^T, and Q <- Q H_i)
    s = y[i].clone()
    for k in range(v.size(0)):
        s.addcmul_(v[k], y[i + 1 + k])
    s.mul_(tau)
    y[i].sub_(s)
    for k in range(v.size(0)):
        y[i + 1 + k].addcmul_(s, v[k], value=-1.0)
    return y


def _matvec_rows(m: Tensor, y: Tensor, transpose: bool) -> Tensor:
    # M y (or M^T y) for a stalk-major [d, d, E] M and a [d, E] y, as d^2
    # products of [E] rows
    d = m.size(0)
    out = torch.empty_like(y)
    for r in range(d):
        _dot_rows(m[:, r] if transpose else m[r], y, out=out[r])
    return out


class _HouseholderProduct(torch.autograd.Function):
    r""":math:`Q = H_0 \cdots H_{d-2} D` stalk-major (:math:`D` negates
    the last column), with a hand-written backward pass that works on
    vectors only. With :math:`G = \partial Q`, reflection :math:`i` sees
    :math:`Q = P_i H_i R_i`, :math:`P_i = H_0 \cdots H_{i-1}`,
    :math:`R_i = H_{i+1} \cdots H_{d-2} D`; for :math:`u = P_i v_i`,
    :math:`a = G R_i^\top v_i`,

    .. math::
        \partial v_i = -\tau_i \big(P_i^\top a + R_i G^\top u\big)
        + \tau_i^2 (u^\top a)\, v_i,

    (:math:`\tau_i = 2/\lVert v_i \rVert^2` depends on :math:`v_i`). Each
    product by a :math:`P_i`, :math:`R_i` or their transposes is a few
    reflections of :obj:`[d, E]` vectors, so the backward pass keeps
    neither the output nor any partial product and copies no
    :obj:`[d, d, E]` array."""
    @staticmethod
    def forward(ctx, params: Tensor, d: int) -> Tensor:
        p = params.t()
        vs = [p[k] for k in _reflector_index(d)]       # [d - 1 - i, E]
        taus = [2.0 / (1.0 + (v * v).sum(0)) for v in vs]
        q = params.new_zeros(d, d, params.size(0))
        for i in range(d):
            q[i, i] = 1.0
        for i, (v, tau) in enumerate(zip(vs, taus)):
            _reflect_vector_(q.transpose(0, 1), v, tau, i)   # Q <- Q H_i
        q[:, d - 1].neg_()                      # H_{d-1} = I - 2 e_d e_d^T
        ctx.d = d
        ctx.save_for_backward(*vs, *taus)
        return q

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor):
        d = ctx.d
        vs, taus = ctx.saved_tensors[:d - 1], ctx.saved_tensors[d - 1:]
        rows = grad.new_empty(d * (d - 1) // 2, grad.size(2))

        def unit(i):                            # v_i as a [d, E] vector
            y = grad.new_zeros(d, grad.size(2))
            y[i] = 1.0
            y[i + 1:] = vs[i]
            return y

        for i, index in enumerate(_reflector_index(d)):
            v, tau = vs[i], taus[i]
            u = unit(i)
            for k in range(i - 1, -1, -1):      # u = P_i v_i
                _reflect_vector_(u, vs[k], taus[k], k)
            w = unit(i)
            for k in range(i + 1, d - 1):       # w = R_i^T v_i
                _reflect_vector_(w, vs[k], taus[k], k)
            w[d - 1].neg_()
            a = _matvec_rows(grad, w, transpose=False)
            c = _matvec_rows(grad, u, transpose=True)
            c[d - 1].neg_()
            for k in range(d - 2, i, -1):       # c = R_i G^T u
                _reflect_vector_(c, vs[k], taus[k], k)
            coef = _dot_rows(u, a).mul_(tau).mul_(tau)
            for k in range(i):                  # a <- P_i^T a
                _reflect_vector_(a, vs[k], taus[k], k)
            g_v = a[i + 1:].add_(c[i + 1:]).mul_(-tau)
            for k in range(v.size(0)):
                g_v[k].addcmul_(coef, v[k])
            rows[index] = g_v                   # back to tril order
        return rows.t(), None


def _householder_maps(params: Tensor, d: int) -> Tensor:
    r""":math:`Q = H_1 \cdots H_d`, :math:`H_i = I - \tau_i v_i v_i^\top`,
    with :math:`v_i = e_i + \sum_{j > i} p_{ji} e_j` (the strictly lower
    parameters of column :math:`i`) and :math:`\tau_i = 2/\lVert v_i
    \rVert^2`; :math:`v_d = e_d`, so :math:`H_d` negates the last column.

    The same matrices as :func:`torch.linalg.householder_product` on
    :math:`[E, d, d]`, returned stalk-major (:obj:`[d, d, E]`): each
    reflection is applied to all :math:`E` matrices at once as a few
    in-place updates of :obj:`[d, E]` columns, and the backward pass is
    written by hand (:class:`_HouseholderProduct`), many times faster on
    CPU than the batched LAPACK routine and its generic backward."""
    return _HouseholderProduct.apply(params, d)


def fixed_stalks(structure_row: Tensor, structure_col: Tensor,
                 add_lp: bool, add_hp: bool, like: Tensor) -> Tensor:
    r"""The fixed extra stalk dimensions' maps, :obj:`[E, lp + hp]`, as in
    the reference implementation:

    - low-pass: maps :math:`+1/-1` (:math:`+1` at the smaller node id), so
      :math:`L_{vu} = +1`: the signless Laplacian :math:`D + A`, whose
      product :math:`\Delta x \approx x_v + \sum_u \hat a_{vu} x_u` sums
      neighbours (a low-pass signal);
    - high-pass: maps :math:`+1/+1`, :math:`L_{vu} = -1`: the ordinary
      Laplacian :math:`D - A`, whose product takes differences."""
    cols = []
    if add_lp:
        cols.append(torch.where(structure_row < structure_col, 1.0, -1.0)
                    .to(like.dtype))
    if add_hp:
        cols.append(torch.ones_like(structure_row, dtype=like.dtype))
    if not cols:
        return like.new_zeros(structure_row.numel(), 0)
    return torch.stack(cols, dim=1)


# ----------------------------------------------------------------------------
# Learners
# ----------------------------------------------------------------------------

class _Tanh(torch.autograd.Function):
    r""":math:`\tanh x = 2\sigma(2x) - 1`: on CPU PyTorch's sigmoid kernel is
    several times faster than its tanh kernel, which dominates the learners'
    cost on :math:`E \times d` edge arrays. The backward pass is
    :math:`1 - \tanh^2 x`."""
    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        out = torch.tanh(x) if x.is_cuda else _act_forward(x * 2.0, 'tanh',
                                                            doubled=True)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        (out, ) = ctx.saved_tensors
        return (out * out).neg_().add_(1.0).mul_(grad)


def _tanh(x: Tensor) -> Tensor:
    return _Tanh.apply(x)


_ACTS = {'tanh': _tanh, 'id': lambda t: t, 'elu': F.elu}


class SheafLearner(Module):
    r"""Local concatenation learner: one map per directed edge
    :math:`(v, u)`,

    .. math::
        \mathcal{F}_{v \trianglelefteq e} = \sigma\big(V [\,\mathrm{vec}
        X_v \,\Vert\, \mathrm{vec} X_u\,]\big),

    computed as :math:`\sigma(V_1 \mathrm{vec} X_v + V_2 \mathrm{vec}
    X_u)` with per-node products gathered per edge (no
    :math:`E \times 2\hat d f` tensor). With ``variant=True`` (the lighter
    learner) the :math:`\hat d` stalk rows of :math:`X_v` are summed first,
    so :math:`V` has width :math:`2f`.

    Args:
        stalk_dim (int): :math:`\hat d`, rows of each node's block.
        channels (int): :math:`f`.
        out_channels (int): parameters per map.
        act (str): ``tanh``, ``id`` or ``elu``.
        variant (bool): the lighter learner.
        bias_init (float, optional): if given, the learner gets a bias
            :math:`b` inside :math:`\sigma`, initialised to this value (the
            reference learners have none). (default: :obj:`None`)
    """
    decay_group = 'sheaf'

    def __init__(self, stalk_dim: int, channels: int, out_channels: int,
                 act: str = 'tanh', variant: bool = False,
                 bias_init: float | None = None) -> None:
        super().__init__()
        if act not in _ACTS:
            raise ValueError(f"Unknown sheaf activation '{act}'. Valid: "
                             f"{', '.join(_ACTS)}")
        self.variant, self.act, self.bias_init = variant, act, bias_init
        width = channels if variant else stalk_dim * channels
        self.lin = Linear(2 * width, out_channels, bias=bias_init is not None)

    def reset_parameters(self) -> None:
        self.lin.reset_parameters()
        if self.bias_init is not None:
            torch.nn.init.constant_(self.lin.bias, self.bias_init)

    def forward(self, x: Tensor, row: Tensor, col: Tensor,
                stalk_major: bool = False,
                structure: SheafStructure | None = None) -> Tensor:
        r"""``x``: :obj:`[N, d̂, f]`. Returns :obj:`[E, out_channels]`, or
        :obj:`[out_channels, E]` with ``stalk_major``. With the graph's
        ``structure`` (whose ``row`` / ``col`` they must be) the stalk-major
        gathers use :meth:`SheafStructure.gather`, whose backward pass is
        the structure's edge sum (a sparse product for the row side)."""
        if stalk_major:
            left, right = self.node_terms(x)
            if structure is not None:
                return _ACTS[self.act](structure.gather(left, 'row') +
                                       structure.gather(right, 'col'))
            return _ACTS[self.act](_take_columns(left, row) +
                                   _take_columns(right, col))
        h = x.sum(1) if self.variant else x.reshape(x.size(0), -1)
        width = h.size(1)
        left = h @ self.lin.weight[:, :width].t()
        right = h @ self.lin.weight[:, width:].t()
        if self.lin.bias is not None:
            left = left + self.lin.bias
        return _ACTS[self.act](_take(left, row) + _take(right, col))

    def node_terms(self, x: Tensor) -> tuple[Tensor, Tensor]:
        r"""The per-node halves of the learner's linear map, stalk-major:
        :math:`(V_1 \mathrm{vec} X_v + b,\ V_2 \mathrm{vec} X_v)` as two
        :obj:`[out_channels, N]` arrays; the map of edge :math:`(v, u)` is
        :math:`\sigma(l_v + r_u)`."""
        h = x.sum(1) if self.variant else x.reshape(x.size(0), -1)
        width, out = h.size(1), self.lin.out_features
        # V_1 and V_2 stacked as one [2 out, width] weight, applied in the
        # [N, width] @ [width, 2 out] layout: one product, 3-4 times faster
        # on CPU, forward and backward, than two [out, width] @ [width, N]
        # ones for out of 1 to 6
        weight = self.lin.weight.view(out, 2, width).transpose(0, 1) \
            .reshape(2 * out, width)
        terms = (h @ weight.t()).t()                  # [2 out, N], a view
        left, right = terms[:out], terms[out:]
        if self.lin.bias is not None:
            left = left + self.lin.bias.view(-1, 1)
        return left, right


class EdgeWeightLearner(SheafLearner):
    r"""Learned symmetric edge weights of the bundle sheaf:
    :math:`w_{vu} = \mathrm{sigmoid}(a [\mathrm{vec} X_v \Vert \mathrm{vec}
    X_u])` and :math:`s_e = w_{vu} w_{uv}`."""
    def __init__(self, stalk_dim: int, channels: int) -> None:
        super().__init__(stalk_dim, channels, 1, act='id')

    def forward(self, x: Tensor, row: Tensor, col: Tensor,
                rev: Tensor | None = None,
                structure: SheafStructure | None = None) -> Tensor:
        w = torch.sigmoid(super().forward(x, row, col, stalk_major=True,
                                          structure=structure)).view(-1)
        return w * _take(w, rev)


# ----------------------------------------------------------------------------
# Sheaf diffusion layers
# ----------------------------------------------------------------------------

class SheafConv(Module, metaclass=ABCMeta):
    r"""One discrete Neural Sheaf Diffusion step on :math:`\hat d`-dim
    stalks with :math:`f` channels,

    .. math::
        X \leftarrow (1 + \tanh\varepsilon) \odot X - \sigma\big(
        \Delta_{\mathcal{F}(X)}\,(I_N \otimes W_1)\,\mathrm{drop}(X)\,W_2
        \big),

    with :math:`W_1 \in \mathbb{R}^{\hat d \times \hat d}` (identity init),
    :math:`W_2 \in \mathbb{R}^{f \times f}` (orthogonal init), a residual
    scale :math:`\varepsilon \in \mathbb{R}^{\hat d}` (zero init), and
    :math:`\sigma` = ELU. The restriction maps are predicted from the
    current :math:`X` by a :class:`SheafLearner` unless a Laplacian is
    passed in (the model's ``linear`` mode learns one sheaf only). The graph
    is an input, so one layer runs on any graph or mini-batch; the index
    bookkeeping is cached per ``edge_index``.

    Subclasses set the map family. Shapes: **input** :math:`(N, \hat d, f)`,
    ``edge_index`` :math:`(2, E)` (both directions, no self-loops);
    **output** :math:`(N, \hat d, f)`.

    Args:
        d (int): learned stalk dimension.
        channels (int): :math:`f`.
        add_lp (bool), add_hp (bool): fixed low- / high-pass stalks.
        dropout (float): dropout before the weights (and on the learner's
            input when ``learner_dropout``).
        left_weights (bool), right_weights (bool): use :math:`W_1`,
            :math:`W_2`.
        use_act (bool): ELU on the diffusion term.
        sheaf_act (str): learner activation.
        variant (bool): the lighter learner.
        normalised (bool): use :math:`\Delta` rather than :math:`L`.
        learn_maps (bool): own a learner (else a Laplacian must be passed).
    """
    blocks = False
    # whether build() takes the learner's output as [maps, E]
    stalk_major_maps = False

    def __init__(self, d: int, channels: int, add_lp: bool = False,
                 add_hp: bool = False, dropout: float = 0.0,
                 left_weights: bool = True, right_weights: bool = True,
                 use_act: bool = True, sheaf_act: str = 'tanh',
                 variant: bool = False, normalised: bool = True,
                 learn_maps: bool = True) -> None:
        super().__init__()
        if d < 1:
            raise ValueError(f"stalk dimension d must be >= 1, got {d}")
        self.d, self.channels = d, channels
        self.add_lp, self.add_hp = add_lp, add_hp
        self.stalk_dim = d + int(add_lp) + int(add_hp)
        self.dropout, self.use_act = dropout, use_act
        self.normalised = normalised
        self.learner = (SheafLearner(self.stalk_dim, channels,
                                     self.map_parameters(d), sheaf_act,
                                     variant) if learn_maps else None)
        self.left = (Linear(self.stalk_dim, self.stalk_dim, bias=False)
                     if left_weights else None)
        self.right = (Linear(channels, channels, bias=False)
                      if right_weights else None)
        self.epsilon = Parameter(torch.zeros(self.stalk_dim))
        self._structure_cache = IdentityCache()
        self._fixed_cache = IdentityCache()
        self.reset_parameters()

    @staticmethod
    @abstractmethod
    def map_parameters(d: int) -> int:
        r"""Learned parameters per map for stalk dimension ``d``."""

    def reset_parameters(self) -> None:
        if self.learner is not None:
            self.learner.reset_parameters()
        if self.left is not None:
            with torch.no_grad():
                self.left.weight.copy_(torch.eye(self.stalk_dim))
        if self.right is not None:
            torch.nn.init.orthogonal_(self.right.weight)
        with torch.no_grad():
            self.epsilon.zero_()

    def structure(self, edge_index: Tensor, num_nodes: int) -> SheafStructure:
        r"""The cached :class:`SheafStructure` of ``edge_index``."""
        def make() -> SheafStructure:
            return SheafStructure(edge_index, num_nodes, self.d, self.blocks)
        s = self._structure_cache.get((edge_index, ), make)
        if s.num_nodes != num_nodes:
            self._structure_cache.clear()
            s = self._structure_cache.get((edge_index, ), make)
        return s

    def fixed_laplacian(self, edge_index: Tensor,
                        num_nodes: int) -> SheafLaplacian | None:
        r"""The constant Laplacian of the fixed low- / high-pass stalks
        (a signless or an ordinary normalised graph Laplacian), cached
        per ``edge_index``; :obj:`None` without fixed stalks."""
        extra = self.stalk_dim - self.d
        if extra == 0:
            return None

        def make() -> SheafLaplacian:
            s = SheafStructure(edge_index, num_nodes, extra, blocks=False)
            with torch.no_grad():
                maps = fixed_stalks(s.row, s.col, self.add_lp, self.add_hp,
                                    self.epsilon)
                return diag_sheaf_laplacian(maps, s,
                                            normalised=self.normalised)
        lap = self._fixed_cache.get((edge_index, ), make)
        if lap.structure.num_nodes != num_nodes:
            self._fixed_cache.clear()
            lap = self._fixed_cache.get((edge_index, ), make)
        return lap

    def laplacian(self, x: Tensor, edge_index: Tensor,
                  learner_dropout: bool = False) -> SheafLaplacian:
        r"""Learns the maps from ``x`` :obj:`[N, d̂, f]` and builds the
        Laplacian."""
        if self.learner is None:
            raise ValueError(f"{type(self).__name__} was built with "
                             f"learn_maps=False: pass a laplacian")
        s = self.structure(edge_index, x.size(0))
        if learner_dropout:
            x = F.dropout(x, self.dropout, self.training)
        learned = self.learned_laplacian(x, s)
        fixed = self.fixed_laplacian(edge_index, x.size(0))
        return learned if fixed is None else StackedLaplacian([learned,
                                                               fixed])

    #: ``f(left, right, structure, act)``: the normalised Laplacian built
    #: straight from the learner's node terms in one fused pass (the same
    #: operator as ``build(learner(x))``), or :obj:`None`
    fused_builder = None

    def learned_laplacian(self, x: Tensor,
                          s: SheafStructure) -> SheafLaplacian:
        r"""The Laplacian of the maps the learner predicts from ``x``."""
        if self.normalised and self.fused_builder is not None:
            left, right = self.learner.node_terms(x)
            return self.fused_builder(left, right, s, self.learner.act)
        params = self.learner(x, s.row, s.col,
                              stalk_major=self.stalk_major_maps,
                              structure=s)
        return self.build(params, x, s)

    @abstractmethod
    def build(self, params: Tensor, x: Tensor,
              s: SheafStructure) -> SheafLaplacian:
        r"""The Laplacian from the learner's output ``params``."""

    def forward(self, x: Tensor, edge_index: Tensor,
                laplacian: SheafLaplacian | None = None,
                learner_dropout: bool = False) -> tuple[Tensor,
                                                        SheafLaplacian]:
        if x.dim() != 3 or x.size(1) != self.stalk_dim or \
                x.size(2) != self.channels:
            raise ValueError(f"{type(self).__name__} expects features "
                             f"[N, {self.stalk_dim}, {self.channels}], got "
                             f"{tuple(x.shape)}")
        if laplacian is None:
            laplacian = self.laplacian(x, edge_index, learner_dropout)
        n, d, f = x.shape
        h = F.dropout(x, self.dropout, self.training)
        if self.right is not None:
            h = h @ self.right.weight.t()
        if laplacian.stalk_major:
            # stalk-major features, [d, N f]: W_1 is one [d, d] @ [d, N f]
            # product, and the diagonal Laplacian applies without
            # transposing the features on either side
            h = h.transpose(0, 1).reshape(d, n * f)
            if self.left is not None:
                h = self.left.weight @ h
            h = laplacian.stalk_major_matmul(h.view(d * n, f))
            h = h.view(d, n, f).transpose(0, 1)
        else:
            if self.left is not None:
                h = torch.einsum('ij,njf->nif', self.left.weight, h)
            h = (laplacian @ h.reshape(n * d, f)).view(n, d, f)
        if self.use_act:
            h = F.elu(h)
        return (1 + torch.tanh(self.epsilon))[:, None] * x - h, laplacian

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(d={self.d}, '
                f'channels={self.channels}, lp={self.add_lp}, '
                f'hp={self.add_hp})')


class DiagSheafConv(SheafConv):
    r""":class:`SheafConv` with diagonal maps
    :math:`\mathrm{diag}(f_{v,e})`, :math:`f \in (-1, 1)^d`
    (:func:`diag_sheaf_laplacian`)."""
    blocks = False

    @staticmethod
    def map_parameters(d: int) -> int:
        return d

    stalk_major_maps = True

    def build(self, params: Tensor, x: Tensor,
              s: SheafStructure) -> SheafLaplacian:
        return diag_sheaf_laplacian(params, s, normalised=self.normalised,
                                    stalk_major=True)

    fused_builder = staticmethod(learned_diag_sheaf_laplacian)


class BundleSheafConv(SheafConv):
    r""":class:`SheafConv` with orthogonal maps (an :math:`O(d)` bundle),
    scaled by learned symmetric edge weights :math:`s_e` when
    ``edge_weights``: :math:`L_{vu} = -s_e^2 Q_{v}^\top Q_{u}`,
    :math:`L_{vv} = \sum_e s_e^2 I` (:func:`orthogonal_maps`; the
    normalised Laplacian comes from the fused
    :func:`orthogonal_sheaf_laplacian`, the unnormalised one from
    :func:`block_sheaf_laplacian` with ``orthogonal=True``).

    Args:
        orth (str): ``householder``, ``cayley`` or ``matrix_exp``.
        edge_weights (bool): learn :math:`s_e`.
    """
    blocks = True

    def __init__(self, d: int, channels: int, orth: str = 'householder',
                 edge_weights: bool = True, **kwargs) -> None:
        if d < 2:
            raise ValueError(f"BundleSheafConv needs d >= 2 (orthogonal "
                             f"maps of dimension 1 are just ±1), got {d}")
        super().__init__(d, channels, **kwargs)
        orthogonal_maps(torch.zeros(1, self.map_parameters(d)), d, orth)
        self.orth = orth
        self.weight_learner = (EdgeWeightLearner(self.stalk_dim, channels)
                               if edge_weights and self.learner is not None
                               else None)
        if self.weight_learner is not None:
            self.weight_learner.reset_parameters()

    @staticmethod
    def map_parameters(d: int) -> int:
        return d * (d - 1) // 2

    stalk_major_maps = True

    def build(self, params: Tensor, x: Tensor,
              s: SheafStructure) -> SheafLaplacian:
        maps = orthogonal_maps(params.t(), self.d, self.orth,
                               stalk_major=self.normalised)
        w = (self.weight_learner(x, s.row, s.col, s.rev, structure=s)
             if self.weight_learner is not None else None)
        if self.normalised:
            return orthogonal_sheaf_laplacian(maps, w, s, stalk_major=True)
        if w is not None:
            maps = maps * w[:, None, None]
        return block_sheaf_laplacian(maps, s, normalised=False,
                                     orthogonal=True)


class GeneralSheafConv(SheafConv):
    r""":class:`SheafConv` with unconstrained maps
    :math:`\tanh(V[\cdot]) \in (-1, 1)^{d \times d}`, normalised by the
    matrix inverse square root of :math:`L_{vv} + I`
    (:func:`general_sheaf_laplacian`; :func:`block_sheaf_laplacian` when
    unnormalised)."""
    blocks = True

    @staticmethod
    def map_parameters(d: int) -> int:
        return d * d

    stalk_major_maps = True

    fused_builder = staticmethod(learned_general_sheaf_laplacian)

    def build(self, params: Tensor, x: Tensor,
              s: SheafStructure) -> SheafLaplacian:
        if self.normalised:
            return general_sheaf_laplacian(params.view(self.d, self.d, -1),
                                           s)
        maps = params.t().reshape(-1, self.d, self.d)
        return block_sheaf_laplacian(maps, s, normalised=False)

