import torch

from graphkit.layers.sparse_input import (IdentityCache, block_diagonal,
                                          dropout_linear, row_sparse,
                                          stacked_dropout_linear)


def _x(n=20, f=15, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, f, generator=g) * (torch.rand(n, f, generator=g) < .2)
    x[3] = 0.0      # an all-zero row
    x[:, 4] = 0.0   # an all-zero column
    return x


def test_row_sparse_roundtrip_and_dense_fallback():
    x = _x()
    s = row_sparse(x)
    dense = torch.sparse_csr_tensor(s.crow, s.col, s.val, size=s.shape)
    assert torch.equal(dense.to_dense(), x)
    dense_t = torch.sparse_csr_tensor(s.ccol, s.row_t, s.val[s.perm],
                                      size=(15, 20))
    assert torch.equal(dense_t.to_dense(), x.t())
    assert row_sparse(torch.ones(4, 4)) is None          # too dense
    assert row_sparse(x.clone().requires_grad_()) is None


def test_row_sparse_in_row_blocks_equals_one_block(monkeypatch):
    # large inputs are scanned a few rows at a time; the result is the same
    import graphkit.layers.sparse_input as sparse_input
    x = _x(n=23)
    whole = row_sparse(x)
    monkeypatch.setattr(sparse_input, '_BLOCK_ENTRIES', 40)   # 2 rows
    blocked = row_sparse(x)
    for a, b in zip(whole, blocked):
        assert a == b if isinstance(a, tuple) else torch.equal(a, b)
    assert row_sparse(torch.ones(9, 15)) is None


def test_dropout_linear_matches_dense_linear_and_gradient():
    x = _x()
    lin = torch.nn.Linear(15, 6)
    out = dropout_linear(row_sparse(x), lin, 0.5, training=False)
    assert torch.allclose(out, lin(x), atol=1e-6)
    out.pow(2).sum().backward()
    grads = lin.weight.grad.clone(), lin.bias.grad.clone()
    lin.zero_grad()
    lin(x).pow(2).sum().backward()
    assert torch.allclose(grads[0], lin.weight.grad, atol=1e-5)
    assert torch.allclose(grads[1], lin.bias.grad, atol=1e-5)


def test_dropout_is_inverted_and_touches_nonzeros_only():
    torch.manual_seed(0)
    x = _x(200, 30)
    lin = torch.nn.Linear(30, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(1.0)
    outs = torch.stack([dropout_linear(row_sparse(x), lin, 0.5, True)
                        for _ in range(400)])
    # E[drop(x) W] = x W; rows with no non-zero stay exactly zero.
    assert torch.allclose(outs.mean(0), lin(x), atol=0.15 * x.sum(1).max())
    assert bool((outs[:, 3] == 0).all())


def test_stacked_dropout_linear_equals_separate_maps():
    x = _x()
    lins = [torch.nn.Linear(15, 4) for _ in range(3)]
    s = row_sparse(x)
    out = stacked_dropout_linear(s, lins, 0.3, False, block_diagonal(s, 3))
    ref = torch.cat([lin(x) for lin in lins])
    assert out.shape == (60, 4)
    assert torch.allclose(out, ref, atol=1e-6)
    out.sum().backward()
    for lin in lins:
        assert lin.weight.grad is not None and lin.bias.grad is not None


def test_identity_cache_rebuilds_on_new_or_modified_tensor():
    calls = []
    cache = IdentityCache()
    a = torch.zeros(3)
    build = lambda: calls.append(1) or len(calls)  # noqa: E731
    assert cache.get((a, ), build) == 1
    assert cache.get((a, ), build) == 1
    a.add_(1)
    assert cache.get((a, ), build) == 2
    assert cache.get((torch.zeros(3), ), build) == 3


def test_sparse_linear_follows_in_place_weight_updates():
    # The contiguous transposed weight is cached between calls; an
    # optimiser step (in place) must be seen by the next product, and the
    # weight gradient must match the dense product's.
    x = _x()
    s = row_sparse(x)
    lin = torch.nn.Linear(15, 4)
    opt = torch.optim.SGD(lin.parameters(), lr=0.5)
    for _ in range(3):
        out = dropout_linear(s, lin, 0.0, training=False)
        assert torch.allclose(out, lin(x), atol=1e-6)
        want = torch.autograd.grad(lin(x).square().sum(), lin.weight)[0]
        opt.zero_grad()
        out.square().sum().backward()
        assert torch.allclose(lin.weight.grad, want, atol=1e-5)
        opt.step()
    with torch.no_grad():          # replaced values, not an optimiser step
        lin.weight.copy_(torch.randn(4, 15))
    assert torch.allclose(dropout_linear(s, lin, 0.0, training=False),
                          lin(x), atol=1e-5)
