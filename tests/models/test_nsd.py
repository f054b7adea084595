import pytest
import torch
from torch_geometric.utils import erdos_renyi_graph

from graphkit.models import NSD, build
from graphkit.testing import permute_graph, tiny_graph


def _data():
    data = tiny_graph()
    # an isolated node and a self-loop: the model must cope with both
    data.x = torch.cat([data.x, torch.randn(1, data.x.size(1))])
    data.y = torch.cat([data.y, data.y[:1]])
    data.num_nodes = data.x.size(0)
    data.edge_index = torch.cat([data.edge_index,
                                 torch.tensor([[0], [0]])], dim=1)
    return data


@pytest.mark.parametrize('family', ['diag', 'bundle', 'general'])
@pytest.mark.parametrize('linear', [False, True])
def test_nsd_equivariant_gradients_and_finite(family, linear):
    torch.manual_seed(0)
    data = _data()
    model = build(f'nsd-{family}', 'node', in_channels=data.x.size(1),
                  out_channels=3, hidden_channels=6, num_layers=2,
                  stalk_dim=2, add_lp=True, add_hp=True,
                  linear_sheaf=linear, dropout=0.0)
    model.eval()
    out = model(data.x, data.edge_index)
    assert out.shape == (data.num_nodes, 3)
    assert bool(torch.isfinite(out).all())
    perm = torch.randperm(data.num_nodes,
                          generator=torch.Generator().manual_seed(3))
    pdata = permute_graph(data, perm)
    assert torch.allclose(model(pdata.x, pdata.edge_index), out[perm],
                          atol=1e-5)
    model.train()
    model(data.x, data.edge_index).pow(2).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert bool(torch.isfinite(p.grad).all()), name
        assert bool(p.grad.abs().sum() > 0), name


def test_general_nsd_finite_with_zero_maps():
    # All maps zero: every D_v + I = I (a repeated eigenvalue).
    torch.manual_seed(0)
    data = _data()
    model = NSD(data.x.size(1), 3, family='general', hidden_channels=4,
                stalk_dim=3)
    for conv in model.convs:
        torch.nn.init.zeros_(conv.learner.lin.weight)
    model(data.x, data.edge_index).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is None or bool(torch.isfinite(p.grad).all()), name


def test_nsd_runs_on_another_graph():
    torch.manual_seed(0)
    model = NSD(5, 2, family='diag', hidden_channels=4).eval()
    a = tiny_graph(num_features=5)
    b = erdos_renyi_graph(13, 0.3)
    assert model(a.x, a.edge_index).shape == (a.num_nodes, 2)
    assert model(torch.randn(13, 5), b).shape == (13, 2)


def test_nsd_bad_input():
    with pytest.raises(ValueError, match='Unknown sheaf family'):
        NSD(5, 2, family='cubic')
    with pytest.raises(ValueError, match='d >= 2'):
        NSD(5, 2, family='bundle', stalk_dim=1)
    model = NSD(5, 2)
    with pytest.raises(ValueError, match='refers to node'):
        model(torch.randn(3, 5), torch.tensor([[0, 5], [5, 0]]))


def test_sheaf_decay_parameter_group():
    from graphkit.pipelines.strategies.base import Strategy
    model = NSD(5, 2, family='bundle', num_layers=2)
    groups = Strategy.param_groups(model, 0.01, None, sheaf_decay=0.5)
    assert len(groups) == 2
    sheaf = {id(p) for conv in model.convs
             for m in (conv.learner, conv.weight_learner)
             for p in m.parameters()}
    assert {id(p) for p in groups[1]['params']} == sheaf
    assert groups[1]['weight_decay'] == 0.5


@pytest.mark.parametrize('stalk_dim,readout,map_init',
                         [(1, 'concat', None), (2, 'mean', None),
                          (1, 'concat', 0.7)])
def test_sheaf4rec_contract_equivariance_and_gradients(stalk_dim, readout,
                                                       map_init):
    from graphkit.models import build
    torch.manual_seed(0)
    users, items = 5, 7
    pairs = torch.tensor([[0, 0, 1, 2, 3, 3, 4, 4], [0, 1, 2, 3, 4, 5, 6, 0]])
    ei = torch.cat([torch.stack([pairs[0], pairs[1] + users]),
                    torch.stack([pairs[1] + users, pairs[0]])], dim=1)
    model = build('sheaf4rec', 'recommendation', num_users=users,
                  num_items=items, embedding_dim=8, num_layers=2,
                  stalk_dim=stalk_dim, readout=readout, map_init=map_init)
    out = model(ei)
    width = 8 * 3 if readout == 'concat' else 8
    assert out.shape == (users + items, width)
    assert model.embedding.weight.shape == (users + items, 8)
    # Relabel users among users and items among items.
    perm = torch.cat([torch.randperm(users), users + torch.randperm(items)])
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(perm.numel())
    with torch.no_grad():
        twin = build('sheaf4rec', 'recommendation', num_users=users,
                     num_items=items, embedding_dim=8, num_layers=2,
                     stalk_dim=stalk_dim, readout=readout, map_init=map_init)
        twin.load_state_dict(model.state_dict())
        twin.embedding.weight.copy_(model.embedding.weight[perm])
    assert torch.allclose(twin(inv[ei]), out[perm], atol=1e-5)
    out.pow(2).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name
    with pytest.raises(ValueError, match='divide'):
        build('sheaf4rec', 'recommendation', num_users=2, num_items=2,
              embedding_dim=8, stalk_dim=3)


def _dense_scalar_sheaf_laplacian(ei, x, w, b):
    r"""Dense normalised Laplacian of scalar maps F_ve = tanh(w1.x_v +
    w2.x_u + b) per directed edge (v, u): L[v, v] = sum_e F_ve^2,
    L[v, u] = -F_ve F_ue, scaled by (diag(L) + 1)^(-1/2) on both sides."""
    n, dim = x.shape
    lap = torch.zeros(n, n)
    for v, u in ei.t().tolist():
        f_vu = torch.tanh(w[:dim] @ x[v] + w[dim:] @ x[u] + b)
        f_uv = torch.tanh(w[:dim] @ x[u] + w[dim:] @ x[v] + b)
        lap[v, v] += f_vu ** 2
        lap[v, u] = -f_vu * f_uv
    norm = (torch.diagonal(lap) + 1).rsqrt()
    return norm[:, None] * lap * norm[None, :]


@pytest.mark.parametrize('map_init', [None, 0.6])
def test_sheaf4rec_layer_matches_dense_reference(map_init):
    # One Sheaf4Rec step against a dense build of the scalar-map sheaf
    # Laplacian: F_ve = tanh(w1.x_v + w2.x_u + b) per directed edge (v, u),
    # L[v, v] = sum_e F_ve^2, L[v, u] = -F_ve F_ue, normalised by
    # (diag(L) + 1)^(-1/2) on both sides; x' = x - L_norm (x W^T + c).
    from graphkit.models import build
    torch.manual_seed(1)
    users, items, dim = 4, 5, 6
    pairs = torch.tensor([[0, 0, 1, 2, 3, 3], [0, 1, 2, 3, 4, 1]])
    ei = torch.cat([torch.stack([pairs[0], pairs[1] + users]),
                    torch.stack([pairs[1] + users, pairs[0]])], dim=1)
    model = build('sheaf4rec', 'recommendation', num_users=users,
                  num_items=items, embedding_dim=dim, num_layers=1,
                  readout='mean', init_std=0.5, map_init=map_init)
    x = model.embedding.weight.detach()
    w = model.learners[0].lin.weight.detach()[0]
    b = 0.0 if map_init is None else float(model.learners[0].lin.bias)
    if map_init is not None:
        assert b == pytest.approx(float(torch.atanh(torch.tensor(map_init))))
    lap = _dense_scalar_sheaf_laplacian(ei, x, w, b)
    lin = model.lins[0]
    expected = x - lap @ (x @ lin.weight.detach().t() + lin.bias.detach())
    with torch.no_grad():
        out = model(ei)     # mean of [x, x'] with one layer
    assert torch.allclose(2 * out - x, expected, atol=1e-5)
    with pytest.raises(ValueError, match='map_init'):
        build('sheaf4rec', 'recommendation', num_users=2, num_items=2,
              map_init=1.0)


def test_sheaf4rec_map_grad_off_stops_the_gradient_through_the_maps():
    # With map_grad=False, one layer is x' = x - L(sg(x)) (x W^T + c): the
    # same output, the embeddings' gradient is that of the dense reference
    # with the Laplacian held constant, and the learner is still trained.
    from graphkit.models import build
    torch.manual_seed(2)
    users, items, dim = 4, 5, 6
    pairs = torch.tensor([[0, 0, 1, 2, 3, 3], [0, 1, 2, 3, 4, 1]])
    ei = torch.cat([torch.stack([pairs[0], pairs[1] + users]),
                    torch.stack([pairs[1] + users, pairs[0]])], dim=1)
    kw = dict(num_users=users, num_items=items, embedding_dim=dim,
              num_layers=1, readout='mean', init_std=0.5, map_init=0.5)
    on = build('sheaf4rec', 'recommendation', **kw)
    off = build('sheaf4rec', 'recommendation', map_grad=False, **kw)
    off.load_state_dict(on.state_dict())
    n = users + items
    x0 = on.embedding.weight.detach()
    w = on.learners[0].lin.weight.detach()[0]
    b = float(on.learners[0].lin.bias)
    lap = _dense_scalar_sheaf_laplacian(ei, x0, w, b)
    lin = on.lins[0]
    x = x0.clone().requires_grad_()
    ref = 0.5 * (x + x - lap @ (x @ lin.weight.detach().t()
                                 + lin.bias.detach()))
    target = torch.randn(n, dim)
    (ref * target).sum().backward()
    out_on, out_off = on(ei), off(ei)
    assert torch.allclose(out_on, out_off)
    (out_off * target).sum().backward()
    (out_on * target).sum().backward()
    assert torch.allclose(off.embedding.weight.grad, x.grad, atol=1e-5)
    assert not torch.allclose(on.embedding.weight.grad, x.grad, atol=1e-5)
    grad = off.learners[0].lin.weight.grad
    assert grad is not None and bool(grad.abs().sum() > 0)
    assert torch.allclose(grad, on.learners[0].lin.weight.grad)


@pytest.mark.parametrize('lin_init,augmented', [('identity', True),
                                                ('fixed', True),
                                                ('fixed', False)])
def test_sheaf4rec_identity_init_starts_as_self_loop_propagation(
        lin_init, augmented):
    # With W = I, b = 0 (or no W at all) and every map equal to 1, one layer
    # is (D+I)^(-1/2) (A+I) (D+I)^(-1/2) x: LightGCN's step with self-loops;
    # normalised by D instead of D + I, it is LightGCN's D^(-1/2) A D^(-1/2).
    from torch_geometric.utils import to_dense_adj
    from graphkit.models import build
    torch.manual_seed(2)
    users, items = 4, 5
    pairs = torch.tensor([[0, 0, 1, 2, 3, 3], [0, 1, 2, 3, 4, 1]])
    ei = torch.cat([torch.stack([pairs[0], pairs[1] + users]),
                    torch.stack([pairs[1] + users, pairs[0]])], dim=1)
    model = build('sheaf4rec', 'recommendation', num_users=users,
                  num_items=items, embedding_dim=6, num_layers=1,
                  readout='mean', init_std=0.5, map_init=0.5,
                  lin_init=lin_init, augmented=augmented)
    if lin_init == 'identity':
        assert torch.equal(model.lins[0].weight, torch.eye(6))
        assert not model.lins[0].bias.any()
    else:   # only the embeddings and the map learner are trained
        assert {name.split('.')[0] for name, _ in model.named_parameters()
                } == {'embedding', 'learners'}
    with torch.no_grad():   # maps = tanh(large) = 1
        model.learners[0].lin.weight.zero_()
        model.learners[0].lin.bias.fill_(20.0)
        out = model(ei)
    n = users + items
    a = to_dense_adj(ei, max_num_nodes=n)[0] + augmented * torch.eye(n)
    norm = a.sum(1).rsqrt()
    x = model.embedding.weight.detach()
    expected = (norm[:, None] * a * norm[None, :]) @ x
    assert torch.allclose(2 * out - x, expected, atol=1e-5)
    if not augmented:   # the same as PyG's LGConv
        from torch_geometric.nn import LGConv
        assert torch.allclose(2 * out - x, LGConv()(x, ei), atol=1e-5)
        # the maps' common scale cancels in the normalisation
        with torch.no_grad():
            model.learners[0].lin.bias.fill_(0.1)
            again = model(ei)
        assert torch.allclose(again, out, atol=1e-5)
    # the default init is not the identity
    other = build('sheaf4rec', 'recommendation', num_users=users,
                  num_items=items, embedding_dim=6, num_layers=1)
    assert not torch.equal(other.lins[0].weight, torch.eye(6))
    with pytest.raises(ValueError, match="lin_init"):
        build('sheaf4rec', 'recommendation', num_users=2, num_items=2,
              lin_init='eye')


def test_nsd_sparse_input_path_matches_dense():
    torch.manual_seed(0)
    data = _data()
    x = torch.randn(data.num_nodes, 20) * (torch.rand(data.num_nodes, 20)
                                            < 0.1)
    model = build('nsd-diag', 'node', in_channels=20, out_channels=3,
                  hidden_channels=4, input_dropout=0.5).eval()
    out = model(x, data.edge_index)
    dense = model(x.clone().requires_grad_(), data.edge_index)
    assert torch.allclose(out, dense, atol=1e-5)
    model.train()   # input dropout is drawn inside the encoder
    assert not torch.allclose(model(x, data.edge_index),
                              model(x, data.edge_index))
