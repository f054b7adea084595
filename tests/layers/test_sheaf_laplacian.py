import networkx as nx
import pytest
import torch
from torch_geometric.utils import from_networkx, to_dense_adj

from graphkit.layers.sheaf import (SheafStructure, block_sheaf_laplacian,
                                   diag_sheaf_laplacian,
                                   learned_diag_sheaf_laplacian,
                                   general_sheaf_laplacian,
                                   learned_general_sheaf_laplacian,
                                   orthogonal_maps,
                                   orthogonal_sheaf_laplacian,
                                   sym_matrix_pow)
from graphkit.testing import dense_sheaf_laplacian


def _graph(seed=1, n=7, p=0.5, isolated=True):
    g = nx.gnp_random_graph(n, p, seed=seed)
    if isolated:
        g.add_node(n)
    return from_networkx(g).edge_index, g.number_of_nodes()


def _check_spectrum(lap, normalised=True):
    assert torch.allclose(lap, lap.t(), atol=1e-10)
    eig = torch.linalg.eigvalsh(lap.detach())
    assert float(eig.min()) > -1e-9
    if normalised:
        assert float(eig.max()) < 2.0 + 1e-9


@pytest.mark.parametrize('seed', [0, 1, 2])
@pytest.mark.parametrize('d', [1, 3])
def test_diag_laplacian_matches_kronecker_reference(seed, d):
    ei, n = _graph(seed)
    g = torch.Generator().manual_seed(seed)
    maps = torch.rand(ei.size(1), d, generator=g, dtype=torch.double) * 2 - 1
    s = SheafStructure(ei, n, d, blocks=False)
    for normalised in (False, True):
        lap = diag_sheaf_laplacian(maps, s, normalised=normalised).to_dense()
        ref = dense_sheaf_laplacian(ei, maps, n, normalised=normalised)
        assert torch.allclose(lap, ref, atol=1e-10)
        _check_spectrum(lap, normalised)


@pytest.mark.parametrize('seed', [0, 3])
def test_general_laplacian_matches_kronecker_reference(seed):
    ei, n = _graph(seed)
    g = torch.Generator().manual_seed(seed)
    maps = torch.rand(ei.size(1), 3, 3, generator=g,
                      dtype=torch.double) * 2 - 1
    s = SheafStructure(ei, n, 3, blocks=True)
    for normalised in (False, True):
        lap = block_sheaf_laplacian(maps, s, normalised=normalised).to_dense()
        ref = dense_sheaf_laplacian(ei, maps, n, normalised=normalised)
        assert torch.allclose(lap, ref, atol=1e-10)
        _check_spectrum(lap, normalised)


@pytest.mark.parametrize('method', ['householder', 'cayley', 'matrix_exp'])
def test_orthogonal_maps_and_bundle_laplacian(method):
    ei, n = _graph(4)
    g = torch.Generator().manual_seed(0)
    params = torch.randn(ei.size(1), 6, generator=g,
                         dtype=torch.double)  # d = 4
    q = orthogonal_maps(params, 4, method)
    eye = torch.eye(4, dtype=torch.double).expand_as(q)
    assert torch.allclose(q.transpose(1, 2) @ q, eye, atol=1e-5)
    assert torch.allclose(q @ q.transpose(1, 2), eye, atol=1e-5)
    s = SheafStructure(ei, n, 4, blocks=True)
    w = torch.rand(ei.size(1), generator=g, dtype=torch.double)
    maps = q * (w * w[s.rev])[:, None, None]
    lap = block_sheaf_laplacian(maps, s, orthogonal=True).to_dense()
    ref = dense_sheaf_laplacian(ei, maps, n)
    assert torch.allclose(lap, ref, atol=1e-8)
    _check_spectrum(lap)


@pytest.mark.parametrize('d', [2, 3, 4, 5])
def test_householder_maps_match_lapack(d):
    # the entry-wise product of reflections equals the batched LAPACK
    # routine on the same reflector vectors, in value and in gradient
    g = torch.Generator().manual_seed(d)
    params = torch.randn(7, d * (d - 1) // 2, generator=g,
                         dtype=torch.double, requires_grad=True)
    rows, cols = torch.tril_indices(d, d, -1)
    low = params.new_zeros(7, d, d)
    low[:, rows, cols] = params
    v = low + torch.eye(d, dtype=torch.double)
    ref = torch.linalg.householder_product(v, 2.0 / (v**2).sum(1))
    q = orthogonal_maps(params, d, 'householder')
    assert q.shape == (7, d, d)
    assert torch.allclose(q, ref, atol=1e-12)
    w = torch.randn(7, d, d, generator=g, dtype=torch.double)
    (g_ref, ) = torch.autograd.grad((ref * w).sum(), params)
    (g_q, ) = torch.autograd.grad((q * w).sum(), params)
    assert torch.allclose(g_q, g_ref, atol=1e-10)
    # the layers pass the parameters as a transposed view of [n, E] rows
    # and take the maps stalk-major; the hand-written backward pass must
    # match finite differences there too
    rows_first = params.detach().t().contiguous().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda p: orthogonal_maps(p.t(), d, 'householder', stalk_major=True),
        (rows_first, ))


def test_constant_scalar_sheaf_is_the_graph_laplacian():
    ei, n = _graph(5)
    s = SheafStructure(ei, n, 1, blocks=False)
    lap = diag_sheaf_laplacian(torch.ones(ei.size(1), 1, dtype=torch.double),
                               s).to_dense()
    a = to_dense_adj(ei, max_num_nodes=n)[0].double()
    deg = a.sum(1)
    norm = torch.diag((deg + 1).rsqrt())
    ref = norm @ (torch.diag(deg) - a) @ norm
    assert torch.allclose(lap, ref, atol=1e-12)
    # Constant sections lie in the kernel of the unnormalised Laplacian.
    lap_u = diag_sheaf_laplacian(torch.ones(ei.size(1), 1), s,
                                 normalised=False).to_dense()
    assert torch.allclose(lap_u @ torch.ones(n), torch.zeros(n), atol=1e-6)


def test_laplacian_product_gradients():
    ei, n = _graph(6, n=4, p=0.7)
    s = SheafStructure(ei, n, 2, blocks=True)
    maps = torch.rand(ei.size(1), 2, 2, dtype=torch.double,
                      requires_grad=True)
    x = torch.randn(2 * n, 2, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda m, v: block_sheaf_laplacian(m, s) @ v, (maps, x))
    sd = SheafStructure(ei, n, 2, blocks=False)
    dmaps = torch.rand(ei.size(1), 2, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda m, v: diag_sheaf_laplacian(m, sd) @ v, (dmaps, x))



@pytest.mark.parametrize('blocks', [False, True])
def test_wide_features_take_the_same_product(blocks):
    # 128 columns go through PyTorch's row-wise reduction kernel on CPU
    # (graphkit.utils.spmm.csr_mm); the product and both gradients must
    # equal the dense Laplacian's
    ei, n = _graph(3, n=9, p=0.4)
    d = 2
    s = SheafStructure(ei, n, d, blocks=blocks)
    torch.manual_seed(0)
    if blocks:
        maps = torch.rand(ei.size(1), d, d, requires_grad=True)
        lap = block_sheaf_laplacian(maps, s)
    else:
        maps = torch.rand(ei.size(1), d, requires_grad=True)
        lap = diag_sheaf_laplacian(maps, s)
    dense = lap.to_dense()
    x = torch.randn(d * n, 128, requires_grad=True)
    w = torch.randn(d * n, 128)
    out = lap @ x
    assert torch.allclose(out, dense @ x, atol=1e-5)
    gm, gx = torch.autograd.grad((out * w).sum(), (maps, x),
                                 retain_graph=True)
    rm, rx = torch.autograd.grad(((dense @ x) * w).sum(), (maps, x))
    assert torch.allclose(gx, rx, atol=1e-4)
    assert torch.allclose(gm, rm, atol=1e-4)

def test_matrix_power_gradient_finite_at_repeated_eigenvalues():
    a = torch.eye(3, dtype=torch.double).repeat(5, 1, 1)
    a[1] = torch.diag(torch.tensor([2.0, 2.0, 5.0], dtype=torch.double))
    a.requires_grad_()
    out = sym_matrix_pow(a, -0.5)
    assert torch.allclose(out[1], torch.diag(torch.tensor(
        [2.0, 2.0, 5.0], dtype=torch.double).rsqrt()))
    (out * torch.randn_like(out)).sum().backward()
    assert bool(torch.isfinite(a.grad).all())
    b = torch.randn(4, 3, 3, dtype=torch.double)
    b = (b @ b.transpose(1, 2) + torch.eye(3)).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda m: sym_matrix_pow(0.5 * (m + m.transpose(1, 2)), -0.5), (b, ))


def test_structure_rejects_bad_graphs():
    ei, n = _graph(1)
    with pytest.raises(ValueError, match='self-loops'):
        SheafStructure(torch.cat([ei, torch.tensor([[0], [0]])], 1), n, 2,
                       False)
    with pytest.raises(ValueError, match='duplicate'):
        SheafStructure(torch.cat([ei, ei[:, :1]], 1), n, 2, False)
    with pytest.raises(ValueError, match='both directions'):
        SheafStructure(torch.tensor([[0, 1], [1, 2]]), 3, 2, False)
    s = SheafStructure(ei, n, 2, blocks=False)
    with pytest.raises(ValueError, match=r'\[E, d\]'):
        diag_sheaf_laplacian(torch.ones(ei.size(1), 3), s)
    with pytest.raises(ValueError, match='d >= 2'):
        orthogonal_maps(torch.ones(3, 0), 1)
    with pytest.raises(ValueError, match='Unknown orthogonal'):
        orthogonal_maps(torch.ones(3, 1), 2, 'euler')


@pytest.mark.parametrize('family', ['diag', 'bundle', 'general'])
def test_fixed_stalks_stack_equals_extended_maps(family):
    from graphkit.layers.sheaf import (BundleSheafConv, DiagSheafConv,
                                       GeneralSheafConv, fixed_stalks)
    torch.manual_seed(0)
    ei, n = _graph(7)
    conv = {'diag': DiagSheafConv, 'bundle': BundleSheafConv,
            'general': GeneralSheafConv}[family](2, 3, add_lp=True,
                                                 add_hp=True).double()
    x = torch.randn(n, 4, 3, dtype=torch.double)
    lap = conv.laplacian(x, ei).to_dense()
    s = conv.structure(ei, n)
    params = conv.learner(x, s.row, s.col)
    if family == 'diag':
        learned = torch.diag_embed(params)
    elif family == 'bundle':
        w = conv.weight_learner(x, s.row, s.col, s.rev)
        learned = orthogonal_maps(params, 2) * w[:, None, None]
    else:
        learned = params.view(-1, 2, 2)
    extra = fixed_stalks(s.row, s.col, True, True, params)
    maps = torch.zeros(ei.size(1), 4, 4, dtype=torch.double)
    maps[:, :2, :2] = learned
    maps[:, 2, 2], maps[:, 3, 3] = extra[:, 0], extra[:, 1]
    ref = dense_sheaf_laplacian(ei, maps.detach(), n)
    assert torch.allclose(lap.detach(), ref, atol=1e-10)


@pytest.mark.parametrize('lp,sign', [(True, 1.0), (False, -1.0)])
def test_fixed_low_pass_is_signless_and_high_pass_is_ordinary(lp, sign):
    # as in the reference code: the low-pass stalk has off-diagonal
    # Laplacian entries +1 (D + A), the high-pass one -1 (D - A), both
    # normalised by (D + I)^(-1/2) on each side
    from graphkit.layers.sheaf import DiagSheafConv
    ei, n = _graph(9)
    conv = DiagSheafConv(1, 2, add_lp=lp, add_hp=not lp).double()
    lap = conv.fixed_laplacian(ei, n).to_dense()
    a = to_dense_adj(ei, max_num_nodes=n)[0].double()
    deg = a.sum(1)
    norm = (deg + 1).rsqrt()
    ref = norm[:, None] * (torch.diag(deg) + sign * a) * norm[None, :]
    assert torch.allclose(lap, ref, atol=1e-12)


def test_stalk_major_maps_give_the_same_laplacian():
    ei, n = _graph(8)
    s = SheafStructure(ei, n, 3, blocks=False)
    maps = torch.rand(ei.size(1), 3, dtype=torch.double) * 2 - 1
    a = diag_sheaf_laplacian(maps, s).to_dense()
    b = diag_sheaf_laplacian(maps.t().contiguous(), s,
                             stalk_major=True).to_dense()
    assert torch.allclose(a, b)
    with pytest.raises(ValueError, match=r'\[d, E\]'):
        diag_sheaf_laplacian(maps, s, stalk_major=True)
    m = maps.t().contiguous().requires_grad_()
    x = torch.randn(3 * n, 2, dtype=torch.double)
    assert torch.autograd.gradcheck(
        lambda mm: diag_sheaf_laplacian(mm, s, stalk_major=True) @ x, (m, ))


@pytest.mark.parametrize('d', [2, 3, 4])
@pytest.mark.parametrize('method', ['householder', 'cayley'])
def test_fused_orthogonal_laplacian_matches_reference(d, method):
    # The bundle family's fused builder (stalk-major, hand-written
    # backward) against the Kronecker reference and finite differences.
    ei, n = _graph(d + 3)
    s = SheafStructure(ei, n, d, blocks=True)
    g = torch.Generator().manual_seed(d)
    params = torch.randn(ei.size(1), d * (d - 1) // 2, generator=g,
                         dtype=torch.double, requires_grad=True)
    w = torch.randn(ei.size(1), generator=g, dtype=torch.double,
                    requires_grad=True)
    q = orthogonal_maps(params, d, method)
    q_sm = orthogonal_maps(params, d, method, stalk_major=True)
    assert torch.equal(q_sm, q.permute(1, 2, 0))
    ref = dense_sheaf_laplacian(ei, (q * w[:, None, None]).detach(), n)
    for lap in (orthogonal_sheaf_laplacian(q, w, s),
                orthogonal_sheaf_laplacian(q_sm, w, s, stalk_major=True)):
        assert torch.allclose(lap.to_dense(), ref, atol=1e-10)
    ones = dense_sheaf_laplacian(ei, q.detach(), n)
    assert torch.allclose(orthogonal_sheaf_laplacian(q, None, s).to_dense(),
                          ones, atol=1e-10)
    x = torch.randn(n * d, 2, generator=g, dtype=torch.double)
    assert torch.autograd.gradcheck(
        lambda p, ww: orthogonal_sheaf_laplacian(
            orthogonal_maps(p, d, method, stalk_major=True), ww, s,
            stalk_major=True) @ x, (params, w))
    with pytest.raises(ValueError, match=r'\[d, d, E\]'):
        orthogonal_sheaf_laplacian(q, w, s, stalk_major=True)
    with pytest.raises(ValueError, match='edge weights'):
        orthogonal_sheaf_laplacian(q, w[:-1], s)


@pytest.mark.parametrize('d', [1, 2, 3])
def test_fused_general_laplacian_matches_reference(d):
    # Stalk-major general maps: the same operator as the block builder,
    # finite gradients at the isolated node (D + I = I, repeated
    # eigenvalues), and correct gradients.
    ei, n = _graph(d + 10)
    s = SheafStructure(ei, n, d, blocks=True)
    g = torch.Generator().manual_seed(d)
    maps = (torch.rand(ei.size(1), d, d, generator=g, dtype=torch.double)
            * 2 - 1)
    sm = maps.permute(1, 2, 0).contiguous().requires_grad_()
    lap = general_sheaf_laplacian(sm, s)
    ref = dense_sheaf_laplacian(ei, maps, n, normalised=True)
    assert torch.allclose(lap.to_dense(), ref, atol=1e-10)
    _check_spectrum(lap.to_dense())
    x = torch.randn(n * d, 2, generator=g, dtype=torch.double)
    (lap @ x).pow(2).sum().backward()
    assert torch.isfinite(sm.grad).all()
    assert torch.autograd.gradcheck(
        lambda m: general_sheaf_laplacian(m, s) @ x, (sm.detach()
                                                       .requires_grad_(), ))
    with pytest.raises(ValueError, match=r'\[d, d, E\]'):
        general_sheaf_laplacian(maps, s)


def test_block_operator_with_unsorted_edges():
    # Block values are stored in the graph's CSR edge order; an edge_index
    # in any other order gives the same operator, its product agrees with
    # the dense matrix, and gradients flow through the edge permutation.
    ei, n = _graph(5)
    g = torch.Generator().manual_seed(5)
    shuffle = torch.randperm(ei.size(1), generator=g)
    ei_s = ei[:, shuffle]
    d = 3
    s = SheafStructure(ei_s, n, d, blocks=True)
    assert s.edge_perm is not None
    assert s.nnz == d * d * ei.size(1)
    maps = torch.rand(ei.size(1), d, d, generator=g,
                      dtype=torch.double) * 2 - 1
    params = torch.randn(ei.size(1), 3, generator=g, dtype=torch.double)
    w = torch.rand(ei.size(1), generator=g, dtype=torch.double)
    q = orthogonal_maps(params, d)
    x = torch.randn(n * d, 4, generator=g, dtype=torch.double)
    builders = [
        (lambda m: block_sheaf_laplacian(m, s), maps,
         dense_sheaf_laplacian(ei_s, maps, n)),
        (lambda m: general_sheaf_laplacian(m, s),
         maps.permute(1, 2, 0).contiguous(),
         dense_sheaf_laplacian(ei_s, maps, n)),
        (lambda m: orthogonal_sheaf_laplacian(m, w, s), q,
         dense_sheaf_laplacian(ei_s, q * w[:, None, None], n)),
    ]
    for build, arg, ref in builders:
        lap = build(arg)
        assert torch.allclose(lap.to_dense(), ref, atol=1e-10)
        assert torch.allclose(lap @ x, ref @ x, atol=1e-10)
        # off_diagonal()[j, i, k] is entry (i, j) of edge k's block, edges
        # in CSR order
        order = torch.argsort(ei_s[0] * n + ei_s[1])
        row, col = ei_s[0][order], ei_s[1][order]
        blocks = ref.view(n, d, n, d)[row, :, col, :]          # [E, d, d]
        assert torch.allclose(lap.off_diagonal(),
                              blocks.permute(2, 1, 0), atol=1e-10)
        small = arg.detach().clone().requires_grad_()
        assert torch.autograd.gradcheck(lambda m: build(m) @ x[:, :1],
                                        (small, ), fast_mode=True)


def _diag_setup(seed, d, shuffled):
    # a small graph, optionally in a shuffled (non-CSR) edge order, and its
    # diagonal structure
    ei, n = _graph(seed)
    g = torch.Generator().manual_seed(seed)
    if shuffled:
        ei = ei[:, torch.randperm(ei.size(1), generator=g)]
    s = SheafStructure(ei, n, d, blocks=False)
    assert (s.perm is not None) == shuffled
    return ei, n, g, s


@pytest.mark.parametrize('shuffled', [False, True])
def test_diag_laplacian_with_unsorted_edges(shuffled):
    # The normalised diagonal Laplacian stores its values in the CSR order
    # of the stalk-major operator; an edge_index in any order must give the
    # dense reference (this once skipped the permutation).
    d = 2
    ei, n, g, s = _diag_setup(4, d, shuffled)
    maps = torch.rand(ei.size(1), d, generator=g, dtype=torch.double) * 2 - 1
    ref = dense_sheaf_laplacian(ei, maps, n)
    x = torch.randn(n * d, 3, generator=g, dtype=torch.double)
    for lap in (diag_sheaf_laplacian(maps, s),
                diag_sheaf_laplacian(maps.t().contiguous(), s,
                                     stalk_major=True)):
        assert torch.allclose(lap.to_dense(), ref, atol=1e-10)
        assert torch.allclose(lap @ x, ref @ x, atol=1e-10)


def _learner_maps(left, right, ei, act):
    # the naive per-edge map sigma(l_v + r_u), [E, d]
    pre = left[:, ei[0]] + right[:, ei[1]]
    return {'tanh': torch.tanh, 'id': lambda t: t,
            'elu': torch.nn.functional.elu}[act](pre).t()


def _check_fused_learner(build, unfused, left, right, s, act, x, w,
                         shape_error):
    # A Laplacian built from a learner's node terms in one fused pass has
    # the gradients of the unfused builder on the naive maps, passes
    # gradcheck (also through its diagonal blocks alone, where no gradient
    # reaches the off-diagonal values) and rejects bad input.
    lap = build(left, right, s, act)
    got = torch.autograd.grad(((lap @ x) * w).sum(), (left, right))
    want = torch.autograd.grad(((unfused @ x) * w).sum(), (left, right))
    for a, b in zip(got, want):
        assert torch.allclose(a, b, atol=1e-10)
    assert torch.autograd.gradcheck(
        lambda l, r: build(l, r, s, act) @ x, (left, right))
    assert torch.autograd.gradcheck(
        lambda l, r: build(l, r, s, act).diag, (left, right))
    with pytest.raises(ValueError, match=shape_error):
        build(left.t(), right, s, act)
    with pytest.raises(ValueError, match='Unknown sheaf activation'):
        build(left, right, s, 'relu')


@pytest.mark.parametrize('act', ['tanh', 'id', 'elu'])
@pytest.mark.parametrize('shuffled', [False, True])
def test_learned_diag_laplacian_matches_reference(act, shuffled):
    d = 3
    ei, n, g, s = _diag_setup(2, d, shuffled)
    left = torch.randn(d, n, generator=g, dtype=torch.double,
                       requires_grad=True)
    right = torch.randn(d, n, generator=g, dtype=torch.double,
                        requires_grad=True)
    x = torch.randn(n * d, 4, generator=g, dtype=torch.double)
    w = torch.randn(n * d, 4, generator=g, dtype=torch.double)
    lap = learned_diag_sheaf_laplacian(left, right, s, act)
    maps = _learner_maps(left, right, ei, act)
    ref = dense_sheaf_laplacian(ei, maps, n)
    assert torch.allclose(lap.to_dense(), ref, atol=1e-10)
    _check_spectrum(lap.to_dense())
    # gradients equal those of the unfused builder on the naive maps
    _check_fused_learner(learned_diag_sheaf_laplacian,
                         diag_sheaf_laplacian(maps, s), left, right, s, act,
                         x, w, r'\[d, N\]')


@pytest.mark.parametrize('act', ['tanh', 'id', 'elu'])
@pytest.mark.parametrize('shuffled', [False, True])
def test_learned_general_laplacian_matches_reference(act, shuffled):
    # Maps built from the learner's node terms inside the fused pass: the
    # same operator as the Kronecker reference on the naive maps, and the
    # same gradients as the maps-given builder
    d = 2
    ei, n = _graph(3)
    g = torch.Generator().manual_seed(3)
    if shuffled:
        ei = ei[:, torch.randperm(ei.size(1), generator=g)]
    s = SheafStructure(ei, n, d, blocks=True)
    assert (s.edge_perm is not None) == shuffled
    left = torch.randn(d * d, n, generator=g, dtype=torch.double,
                       requires_grad=True)
    right = torch.randn(d * d, n, generator=g, dtype=torch.double,
                        requires_grad=True)
    x = torch.randn(n * d, 3, generator=g, dtype=torch.double)
    w = torch.randn(n * d, 3, generator=g, dtype=torch.double)
    lap = learned_general_sheaf_laplacian(left, right, s, act)
    maps = _learner_maps(left, right, ei, act).view(-1, d, d)   # [E, d, d]
    ref = dense_sheaf_laplacian(ei, maps, n, normalised=True)
    assert torch.allclose(lap.to_dense(), ref, atol=1e-10)
    _check_spectrum(lap.to_dense())
    _check_fused_learner(learned_general_sheaf_laplacian,
                         general_sheaf_laplacian(maps.permute(1, 2, 0), s),
                         left, right, s, act, x, w, r'\[d\^2, N\]')


def test_edge_sums_and_gathers_match_index_ops():
    ei, n = _graph(6)
    g = torch.Generator().manual_seed(6)
    ei = ei[:, torch.randperm(ei.size(1), generator=g)]
    s = SheafStructure(ei, n, 2, blocks=False)
    x = torch.randn(3, ei.size(1), generator=g, dtype=torch.double)
    for by, index in (('row', ei[0]), ('col', ei[1])):
        want = torch.zeros(3, n, dtype=torch.double).index_add_(1, index, x)
        assert torch.allclose(s.edge_sum(x, by), want, atol=1e-12)
        edges = x.clone().requires_grad_()
        assert torch.autograd.gradcheck(lambda t: s.edge_sum(t, by),
                                        (edges, ))
        nodes = torch.randn(3, n, generator=g, dtype=torch.double,
                            requires_grad=True)
        assert torch.equal(s.gather(nodes, by), nodes[:, index])
        assert torch.autograd.gradcheck(lambda t: s.gather(t, by), (nodes, ))
        for rows in (1, 3):     # one row takes another kernel
            assert torch.equal(s.take(nodes[:rows].detach(), by),
                               nodes[:rows, index].detach())
    for rows in (1, 3):
        rev = s.reverse(x[:rows])
        assert torch.equal(rev, x[:rows, s.rev])
    # rev maps every edge (v, u) to (u, v)
    assert torch.equal(ei[:, s.rev], ei.flip(0))
    with pytest.raises(ValueError, match=r'\[r, E\]'):
        s.edge_sum(x.t())
    with pytest.raises(ValueError, match="'row' or 'col'"):
        s.edge_sum(x, 'rows')
    with pytest.raises(ValueError, match="'row' or 'col'"):
        s.gather(torch.zeros(1, n), 'src')


def test_sheaf_tanh_matches_torch():
    from graphkit.layers.sheaf import _tanh
    x = torch.linspace(-12, 12, 1001, dtype=torch.double)
    assert torch.allclose(_tanh(x), torch.tanh(x), atol=1e-15)
    assert torch.allclose(_tanh(x.float()), torch.tanh(x.float()), atol=1e-6)
    assert torch.autograd.gradcheck(_tanh, (torch.randn(
        20, dtype=torch.double, requires_grad=True), ))


@pytest.mark.parametrize('variant', [False, True])
def test_diag_conv_fused_laplacian_equals_learner_then_builder(variant):
    from graphkit.layers.sheaf import DiagSheafConv
    ei, n = _graph(3)
    torch.manual_seed(3)
    conv = DiagSheafConv(3, 4, variant=variant).double()
    s = conv.structure(ei, n)
    x = torch.randn(n, 3, 4, dtype=torch.double)
    fused = conv.learned_laplacian(x, s)
    maps = conv.learner(x, s.row, s.col, stalk_major=True)
    plain = conv.build(maps, x, s)
    assert torch.allclose(fused.to_dense(), plain.to_dense(), atol=1e-12)
    y = torch.randn(n * 3, 4, dtype=torch.double)
    weight = conv.learner.lin.weight
    got = torch.autograd.grad((fused @ y).square().sum(), weight)[0]
    want = torch.autograd.grad((plain @ y).square().sum(), weight)[0]
    assert torch.allclose(got, want, atol=1e-10)


@pytest.mark.parametrize('blocks', [False, True])
def test_sampled_product_is_the_dense_product_on_the_pattern(blocks):
    ei, n = _graph(7)
    d = 2
    s = SheafStructure(ei, n, d, blocks=blocks)
    rows, cols = s.shape
    g = torch.Generator().manual_seed(7)
    dense_of = s.csr(torch.ones(s.csr_col.numel(), dtype=torch.double))
    mask = dense_of.to_dense() != 0
    for _ in range(2):
        a = torch.randn(rows, 5, generator=g, dtype=torch.double)
        b = torch.randn(cols, 5, generator=g, dtype=torch.double)
        vals = s.sampled_product(a, b)
        assert torch.allclose(vals, (a @ b.t())[mask], atol=1e-12)
        # the work matrix is reused: a NaN in one call's result must not
        # reach the next call's
        a[0, 0] = float('nan')
        assert torch.isnan(s.sampled_product(a, b)).any()
    a = torch.randn(rows, 5, generator=g, dtype=torch.double)
    out = torch.empty(s.csr_col.numel(), dtype=torch.double)
    s.sampled_product(a, b, out=out)
    assert not torch.isnan(out).any()
    assert torch.allclose(out, (a @ b.t())[mask], atol=1e-12)


@pytest.mark.parametrize('lp', [False, True])
def test_stalk_major_product_equals_node_major(lp):
    # Δx with the features stalk-major ([d N, f], row i N + v) equals the
    # node-major product, for a diagonal Laplacian and one stacked with
    # the fixed low-pass stalk, values and gradients
    from graphkit.layers.sheaf import DiagSheafConv
    torch.manual_seed(3)
    ei, n = _graph(3)
    conv = DiagSheafConv(2, 4, add_lp=lp).double()
    d = conv.stalk_dim
    x = torch.randn(n, d, 4, dtype=torch.double)
    lap = conv.laplacian(x, ei)
    assert lap.stalk_major
    h = torch.randn(n, d, 4, dtype=torch.double, requires_grad=True)
    node = (lap @ h.reshape(n * d, 4)).view(n, d, 4)
    stalk = lap.stalk_major_matmul(h.transpose(0, 1).reshape(d * n, 4))
    stalk = stalk.view(d, n, 4).transpose(0, 1)
    assert torch.allclose(node, stalk, atol=1e-12)
    g = torch.randn_like(node)
    want = torch.autograd.grad(node, [h] + list(conv.parameters()), g,
                               retain_graph=True, allow_unused=True)
    got = torch.autograd.grad(stalk, [h] + list(conv.parameters()), g,
                              allow_unused=True)
    for a, b in zip(want, got):
        assert (a is None) == (b is None)
        if a is not None:
            assert torch.allclose(a, b, atol=1e-12)
    with pytest.raises(ValueError, match=r'expected \[\d+, f\]|cannot'):
        lap.stalk_major_matmul(h.reshape(n * d, 4)[:-1])


def test_block_laplacians_take_node_major_features_only():
    from graphkit.layers.sheaf import GeneralSheafConv
    ei, n = _graph(2)
    conv = GeneralSheafConv(2, 3).double()
    x = torch.randn(n, 2, 3, dtype=torch.double)
    lap = conv.laplacian(x, ei)
    assert not lap.stalk_major
    with pytest.raises(ValueError, match='diagonal maps'):
        lap.stalk_major_matmul(x.reshape(n * 2, 3))
