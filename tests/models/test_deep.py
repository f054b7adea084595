import pytest
import torch
import torch.nn.functional as F

from graphkit import models
from graphkit.models.deep import GCNII, ResGCN, as_layer_chain


def _graph():
    edge_index = torch.tensor([[0, 1, 1, 2, 2, 3, 3, 4, 0, 4],
                               [1, 0, 2, 1, 3, 2, 4, 3, 4, 0]])
    x = torch.randn(5, 6, generator=torch.Generator().manual_seed(0))
    return x, edge_index


def _dense_adj(edge_index, n):
    a = torch.zeros(n, n)
    a[edge_index[1], edge_index[0]] = 1.0
    a = a + torch.eye(n)
    d = a.sum(1).pow(-0.5)
    return d.view(-1, 1) * a * d.view(1, -1)


def test_gcnii_matches_dense_reference():
    torch.manual_seed(0)
    x, ei = _graph()
    model = GCNII(6, 8, 3, num_layers=4, alpha=0.1, theta=0.5, dropout=0.0)
    a = _dense_adj(ei, 5)
    h0 = h = F.relu(model.lin_in(x))
    for i, conv in enumerate(model.convs):
        beta = torch.log(torch.tensor(0.5 / (i + 1) + 1.0))
        s = 0.9 * (a @ h) + 0.1 * h0
        h = F.relu((1 - beta) * s + beta * (s @ conv.weight1))
    ref = model.lin_out(h)
    assert torch.allclose(model(x, ei), ref, atol=1e-5)
    assert repr(model) == 'GCNII(6, 3, num_layers=4, alpha=0.1, theta=0.5)'


def test_resgcn_matches_dense_reference():
    torch.manual_seed(0)
    x, ei = _graph()
    model = ResGCN(6, 8, 3, num_layers=3, dropout=0.0)
    a = _dense_adj(ei, 5)
    h = model.lin_in(x)
    for block in model.blocks:
        h = h + a @ (F.relu(h) @ block.conv.lin.weight.t()) + block.conv.bias
    ref = model.lin_out(F.relu(h))
    assert torch.allclose(model(x, ei), ref, atol=1e-5)
    assert repr(model) == 'ResGCN(6, 3, num_layers=3, norm=None)'


@pytest.mark.parametrize('name', ['gcnii', 'resgcn'])
def test_deep_registered_equivariant_and_trainable(name):
    torch.manual_seed(0)
    x, ei = _graph()
    model = models.build(name, task='node', in_channels=6, out_channels=3,
                         hidden_channels=8, num_layers=32, dropout=0.0)
    out = model(x, ei)
    assert out.shape == (5, 3)
    perm = torch.tensor([3, 0, 4, 1, 2])
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(5)
    assert torch.allclose(model(x[perm], inv[ei]), out[perm], atol=1e-5)
    out.sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
    chain, drop = as_layer_chain(model)
    assert chain.num_layers == 32 and drop == 0.0


def test_chain_steps_equal_forward_on_a_subgraph_of_targets():
    # the rows that receive every in-edge are exact on a bipartite subgraph
    torch.manual_seed(0)
    x, ei = _graph()
    model = GCNII(6, 8, 3, num_layers=1, dropout=0.0)
    full = model(x, ei)
    nei, new = model.normalize_graph(ei, None, 5)
    keep = nei[1] < 2
    state = model.chain_input(x)
    state = model.chain_layer(0, state, nei[:, keep], new[keep])
    assert torch.allclose(model.chain_output(state)[:2], full[:2],
                          atol=1e-6)


def test_deep_errors():
    with pytest.raises(ValueError, match='num_layers must be >= 1'):
        GCNII(4, 8, 2, num_layers=0)
    with pytest.raises(ValueError, match="norm must be None or 'layer'"):
        ResGCN(4, 8, 2, norm='batch')
    with pytest.raises(ValueError, match='layer-chain encoder: gcnii'):
        as_layer_chain(models.build('gcn', task='node', in_channels=4,
                                    out_channels=2))


def test_unset_alpha_keeps_each_models_default():
    # the config leaves alpha unset, so GCNII keeps its 0.1 and HiGCN its
    # 0.5; a value set in the config reaches the model
    from graphkit.pipelines.config import RunConfig
    cfg = RunConfig()
    cfg.model.num_layers = 2
    assert 'alpha' not in cfg.model.hparams()
    enc = models.build('gcnii', 'node', in_channels=4, out_channels=2,
                       **cfg.model.hparams()).encoder
    assert enc.alpha == 0.1
    cfg.model.alpha = 0.3
    enc = models.build('gcnii', 'node', in_channels=4, out_channels=2,
                       **cfg.model.hparams()).encoder
    assert enc.alpha == 0.3


@pytest.mark.parametrize('cls', [GCNII, ResGCN])
def test_activation_checkpoint_same_gradients_and_recomputes(cls):
    # dropout 0.4: the recomputed layers must redraw the same masks
    x, ei = _graph()
    grads = []
    for on in (False, True):
        torch.manual_seed(0)
        model = cls(6, 8, 3, num_layers=4, dropout=0.4)
        model.activation_checkpoint = on
        calls = []
        layer = model.chain_layer
        model.chain_layer = lambda *a: calls.append(a[0]) or layer(*a)
        torch.manual_seed(1)
        model(x, ei).pow(2).sum().backward()
        # each layer runs twice (forward and recomputation) when on
        assert len(calls) == (8 if on else 4)
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    for n in grads[0]:
        assert torch.allclose(grads[0][n], grads[1][n], atol=1e-6), n
    # evaluation never recomputes
    model.eval()
    with torch.no_grad():
        calls.clear()
        model(x, ei)
        assert len(calls) == 4


@pytest.mark.parametrize('cls', [GCNII, ResGCN])
def test_sparse_input_path_matches_dense(cls):
    # Bag-of-words inputs run the input step as a CSR product; outputs and
    # gradients equal the dense path, which a gradient-tracking input takes.
    from graphkit.layers.sparse_input import RowSparse
    torch.manual_seed(0)
    _, ei = _graph()
    x = torch.rand(5, 40) * (torch.rand(5, 40) < 0.1)
    model = cls(40, 8, 3, num_layers=3, dropout=0.0)
    out = model(x, ei)
    assert isinstance(model._sparse_input._value, RowSparse)
    out.square().sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    dense = model(x.clone().requires_grad_(), ei)
    assert model._sparse_input._value is None
    dense.square().sum().backward()
    assert torch.allclose(out, dense, atol=1e-5)
    for g, p in zip(grads, model.parameters()):
        assert torch.allclose(g, p.grad, atol=1e-5)
    # with dropout, the mask falls on the non-zeros only: zeros stay zero and
    # the expected input to the first layer is unchanged
    model = cls(40, 8, 3, num_layers=1, dropout=0.5).train()
    xs = torch.ones(2000, 40) * (torch.rand(2000, 40) < 0.1)
    with torch.no_grad():
        model.lin_in.weight.fill_(1.0)
        model.lin_in.bias.zero_()
        h = model.input_linear(xs, model.lin_in, 0.5)
    assert isinstance(model._sparse_input._value, RowSparse)
    assert abs(float(h.mean()) / float(xs.sum(1).mean()) - 1.0) < 0.05
