import networkx as nx
import pytest
import torch
from torch_geometric.data import Batch
from torch_geometric.utils import from_networkx, to_dense_adj

from graphkit.layers.higcn import HiGCNProp, block_diagonal_operator, \
    polynomial_filter, ppr_coefficients, sparse_operator
from graphkit.layers.sparse_input import RowSparse
from graphkit.models import HiGCN, build
from graphkit.testing import permute_graph
from graphkit.transforms import FlowerPetalLift


def _lifted(seed=0, n=12, p=0.45, order=2, features=5):
    g = nx.gnp_random_graph(n, p, seed=seed)
    data = from_networkx(g)
    data.num_nodes = n
    data.x = torch.randn(n, features, generator=torch.Generator()
                         .manual_seed(seed))
    return FlowerPetalLift(order)(data)


def _dense_op(data, p):
    return to_dense_adj(data.hl_edge_index, edge_attr=data.hl_weight[:, p],
                        max_num_nodes=data.num_nodes)[0]


def test_ppr_init():
    g = ppr_coefficients(3, 0.5)
    assert torch.allclose(g, torch.tensor([0.5, 0.25, 0.125, 0.125]))
    with pytest.raises(ValueError, match='alpha'):
        ppr_coefficients(3, 1.5)


def test_prop_matches_dense_polynomial():
    data = _lifted()
    prop = HiGCNProp(K=4, alpha=0.3)
    with torch.no_grad():
        prop.gamma.copy_(torch.tensor([0.2, -0.5, 1.0, 0.3, -0.1]))
    op = sparse_operator(data.hl_edge_index, data.hl_weight[:, 1],
                         data.num_nodes)
    dense = _dense_op(data, 1)
    ref = sum(prop.gamma[k] * torch.linalg.matrix_power(dense, k) @ data.x
              for k in range(5))
    assert torch.allclose(prop(data.x, op), ref, atol=1e-5)


def test_higcn_matches_dense_reference():
    torch.manual_seed(0)
    data = _lifted(order=3)
    model = HiGCN(5, 3, hidden_channels=4, max_order=3, K=3).eval()
    out = model(data.x, data.edge_index, data.hl_edge_index, data.hl_weight)
    parts = []
    for p in range(3):
        h = model.block.lins[p](data.x)
        a = _dense_op(data, p)
        g = model.block.props[p].gamma
        parts.append(sum(g[k] * torch.linalg.matrix_power(a, k) @ h
                         for k in range(4)))
    ref = model.lin(torch.cat(parts, dim=-1))
    assert torch.allclose(out, ref, atol=1e-5)
    assert model.gammas.shape == (3, 4)
    assert 'max_order=3' in repr(model)


def test_higcn_equivariance_and_gradients():
    torch.manual_seed(0)
    data = _lifted()
    model = build('higcn', 'node', in_channels=5, out_channels=3,
                  hidden_channels=8, max_order=2, K=5, dropout=0.0,
                  dprate=0.0)
    model.eval()
    kw = dict(hl_edge_index=data.hl_edge_index, hl_weight=data.hl_weight)
    out = model(data.x, data.edge_index, **kw)
    perm = torch.randperm(data.num_nodes, generator=torch.Generator()
                          .manual_seed(1))
    pdata = FlowerPetalLift(2)(permute_graph(data, perm))
    pout = model(pdata.x, pdata.edge_index, hl_edge_index=pdata.hl_edge_index,
                 hl_weight=pdata.hl_weight)
    assert torch.allclose(pout, out[perm], atol=1e-5)
    model.train()
    model(data.x, data.edge_index, **kw).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and bool(p.grad.abs().sum() > 0), name


def test_missing_operators_error():
    data = _lifted()
    model = HiGCN(5, 2)
    with pytest.raises(ValueError, match='FlowerPetalLift'):
        model(data.x, data.edge_index)
    with pytest.raises(ValueError, match='max_order >= 3'):
        HiGCN(5, 2, max_order=3)(data.x, data.edge_index,
                                 data.hl_edge_index, data.hl_weight)


def test_graph_variant_batch_equals_alone():
    torch.manual_seed(0)
    graphs = [_lifted(seed=s, n=8 + s) for s in range(3)]
    for g in graphs:
        g.y = torch.tensor([0])
    model = build('higcn-gin', 'graph', in_channels=5, out_channels=2,
                  hidden_channels=8, pool='sum', num_layers=2).eval()
    batch = Batch.from_data_list(graphs)
    out = model(batch.x, batch.edge_index, batch.batch, batch.num_graphs,
                hl_edge_index=batch.hl_edge_index, hl_weight=batch.hl_weight)
    for i, g in enumerate(graphs):
        alone = model(g.x, g.edge_index, None, 1,
                      hl_edge_index=g.hl_edge_index, hl_weight=g.hl_weight)
        assert torch.allclose(out[i], alone[0], atol=1e-5)


def test_polynomial_filter_gradients_match_dense_autograd():
    data = _lifted()
    n, orders, K = data.num_nodes, 2, 3
    op = block_diagonal_operator(data.hl_edge_index, data.hl_weight[:, :2],
                                 n)
    dense = [_dense_op(data, p) for p in range(orders)]
    x = torch.randn(orders * n, 3, requires_grad=True)
    gamma = torch.randn(orders, K + 1, requires_grad=True)
    g = torch.randn(orders, n, 3)
    (polynomial_filter(x, op, gamma) * g).sum().backward()
    grads = x.grad.clone(), gamma.grad.clone()
    x.grad = gamma.grad = None
    ref = torch.stack([
        sum(gamma[p, k] * torch.linalg.matrix_power(dense[p], k)
            @ x[p * n:(p + 1) * n] for k in range(K + 1))
        for p in range(orders)])
    (ref * g).sum().backward()
    assert torch.allclose(grads[0], x.grad, atol=1e-5)
    assert torch.allclose(grads[1], gamma.grad, atol=1e-5)
    with pytest.raises(ValueError, match='P = 2'):
        polynomial_filter(x[:-1], op, gamma)


def test_sparse_input_path_equals_dense_path():
    torch.manual_seed(0)
    data = _lifted(features=30)
    data.x = data.x * (torch.rand_like(data.x) < 0.1)  # bag-of-words-like
    model = HiGCN(30, 3, hidden_channels=4, max_order=2, K=3, dropout=0.0,
                  dprate=0.0)
    kw = dict(hl_edge_index=data.hl_edge_index, hl_weight=data.hl_weight)
    model(data.x, None, **kw).pow(2).sum().backward()
    assert isinstance(model.block._input_cache._value[0], RowSparse)
    sparse_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    dense_x = data.x.clone().requires_grad_()  # needs a gradient: dense
    out = model(dense_x, None, **kw)
    assert not isinstance(model.block._input_cache._value[0], RowSparse)
    out.pow(2).sum().backward()
    for a, b in zip(sparse_grads, model.parameters()):
        assert torch.allclose(a, b.grad, atol=1e-5)
    # The cached compressed input follows in-place edits of x.
    x = data.x.clone()
    before = model(x, None, **kw)
    x[0, :] = 1.0
    assert not torch.allclose(model(x, None, **kw)[0], before[0])
