import pytest
import torch
from torch_geometric.utils import to_torch_csr_tensor

from graphkit.utils.spmm import csr_spmm, csr_transpose


def _graph(n=9, e=30, seed=0):
    # a directed graph with repeated-free random edges, rows 0 and n - 1
    # left empty, and non-uniform edge values
    g = torch.Generator().manual_seed(seed)
    keys = torch.randperm(n * n, generator=g)[:e]
    row, col = keys // n, keys % n
    keep = (row != 0) & (row != n - 1)
    row, col = row[keep], col[keep]
    val = torch.rand(row.numel(), generator=g) + 0.5
    adj = to_torch_csr_tensor(torch.stack([row, col]), val, size=(n, n))
    dense = torch.zeros(n, n)
    dense[row, col] = val
    return adj, dense


@pytest.mark.parametrize('width', [4, 128])   # both CPU kernels
@pytest.mark.parametrize('reduce', ['sum', 'add', 'mean'])
def test_product_and_gradient_match_a_dense_reference(reduce, width):
    adj, dense = _graph()
    x = torch.randn(9, width, requires_grad=True)
    w = torch.randn(9, width)
    out = csr_spmm(adj, x, reduce)
    ref_op = dense
    if reduce == 'mean':
        deg = (dense != 0).sum(1, keepdim=True).clamp(min=1)
        ref_op = dense / deg
    assert torch.allclose(out, ref_op @ x, atol=1e-5)
    assert torch.all(out[0] == 0) and torch.all(out[-1] == 0)  # empty rows
    (g, ) = torch.autograd.grad((out * w).sum(), x)
    assert torch.allclose(g, ref_op.t() @ w, atol=1e-5)   # A^T G, not A G
    assert not torch.allclose(g, ref_op @ w, atol=1e-3)


def test_transpose_is_built_once_per_matrix():
    adj, dense = _graph()
    t = csr_transpose(adj)
    assert t.layout == torch.sparse_csr
    assert torch.equal(t.to_dense(), dense.t())
    assert csr_transpose(adj) is t
    other, _ = _graph(seed=1)
    assert csr_transpose(other) is not t
    adj.values().mul_(2.0)          # an in-place change is not missed
    assert torch.equal(csr_transpose(adj).to_dense(), 2.0 * dense.t())


def test_permutation_equivariance():
    adj, dense = _graph()
    x = torch.randn(9, 3)
    perm = torch.randperm(9)
    p_adj = dense[perm][:, perm].to_sparse_csr()
    out = csr_spmm(p_adj, x[perm], 'mean')
    assert torch.allclose(out, csr_spmm(adj, x, 'mean')[perm], atol=1e-6)


def test_other_inputs_take_pyg_path():
    adj, dense = _graph()
    x = torch.randn(9, 3)
    # learned edge values: the gradient must reach them
    val = adj.values().clone().requires_grad_(True)
    learned = torch.sparse_csr_tensor(adj.crow_indices(), adj.col_indices(),
                                      val, size=adj.shape)
    csr_spmm(learned, x).sum().backward()
    assert val.grad is not None and val.grad.abs().sum() > 0
    # max reduction
    out = csr_spmm(adj, x, 'max')
    row, col = dense.nonzero().t()
    ref = torch.full((9, 3), float('-inf')).scatter_reduce(
        0, row.view(-1, 1).expand(-1, 3), dense[row, col].view(-1, 1) *
        x[col], 'amax')
    has = torch.zeros(9, dtype=torch.bool)
    has[row] = True
    assert torch.allclose(out[has], ref[has], atol=1e-6)


def test_bad_inputs_name_the_problem():
    adj, dense = _graph()
    with pytest.raises(ValueError, match='rows'):
        csr_spmm(adj, torch.randn(5, 3))
    with pytest.raises(ValueError, match='sparse_csr'):
        csr_transpose(dense)


def test_kernel_indices_narrow_only_when_they_fit():
    from graphkit.utils.spmm import kernel_indices
    crow, col = torch.tensor([0, 1, 2]), torch.tensor([1, 0])
    small = kernel_indices(crow, col, extent=3)
    assert all(t.dtype == torch.int32 for t in small)
    assert torch.equal(small[0].long(), crow)
    big = kernel_indices(crow, col, extent=2**31)
    assert all(t.dtype == torch.long for t in big)
