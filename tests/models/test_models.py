import pytest
import torch

from graphkit.layers import DotDecoder, HadamardMLPDecoder
from graphkit.models import build, build_encoder, model_names, resolve
from graphkit.testing import dense_gcn_layer, permute_graph, tiny_graph

BASIC = ['mlp', 'gcn', 'sage', 'gat', 'gin']


def test_registry_lists_baselines():
    assert set(BASIC) <= set(model_names())


def test_unknown_model_lists_valid_names():
    with pytest.raises(ValueError, match='Valid names: .*gcn.*sage'):
        resolve('gcnn')


@pytest.mark.parametrize('name', BASIC)
def test_node_model_shapes_grads_and_equivariance(name):
    torch.manual_seed(0)
    data = tiny_graph(num_features=4)
    model = build(name, 'node', in_channels=4, out_channels=3,
                  hidden_channels=8, dropout=0.0, heads=2)
    model.eval()
    out = model(data.x, data.edge_index)
    assert out.shape == (6, 3)
    out.sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
    perm = torch.tensor([3, 5, 0, 1, 4, 2])
    pdata = permute_graph(data, perm)
    assert torch.allclose(model(pdata.x, pdata.edge_index), out[perm],
                          atol=1e-5)


@pytest.mark.parametrize('name', ['gcn', 'sage', 'gin', 'mowst'])
def test_sparse_adjacency_equals_edge_index(name):
    # A directed graph with an isolated node: the transposed CSR adjacency a
    # full-batch node task passes must aggregate exactly what edge_index
    # does, in the same direction (source -> target).
    from torch_geometric.utils import to_torch_csr_tensor
    torch.manual_seed(0)
    n = 7
    edge_index = torch.tensor([[0, 0, 1, 2, 3, 3, 5, 1],
                               [1, 2, 2, 0, 4, 5, 3, 4]])
    x = torch.randn(n, 5)
    model = build(name, 'node', in_channels=5, out_channels=3,
                  hidden_channels=8, dropout=0.0)
    assert model.supports_sparse_adj
    model.eval()
    adj_t = to_torch_csr_tensor(edge_index.flip(0), size=(n, n))
    ref = model(x, edge_index)
    out = model(x, adj_t)
    assert torch.allclose(out, ref, atol=1e-5)
    # and the same gradients, through the input and every weight (the CSR
    # path takes its own backward: a transposed matrix built once)
    x.requires_grad_(True)
    grads = []
    for graph in (edge_index, adj_t, adj_t):    # twice: the cached transpose
        model.zero_grad()
        x.grad = None
        (model(x, graph) * torch.arange(3.0)).sum().backward()
        grads.append([x.grad.clone()] + [p.grad.clone() for p in
                                         model.parameters()
                                         if p.grad is not None])
    for g in grads[1:]:
        assert len(g) == len(grads[0])
        for a, b in zip(g, grads[0]):
            assert torch.allclose(a, b, atol=1e-5)
    x.requires_grad_(False)
    # the wrong orientation gives a different answer, so the check has teeth
    assert not torch.allclose(
        model(x, to_torch_csr_tensor(edge_index, size=(n, n))), ref,
        atol=1e-3)


def test_node_task_passes_sparse_adjacency_only_where_supported():
    from graphkit import data as gdata
    from graphkit.pipelines import make_task
    bundle = gdata.load('csbm')
    task = make_task(bundle)
    task.setup(bundle.split_for_run(0, 0))
    gcn = build('gcn', 'node', in_channels=bundle.num_features,
                out_channels=bundle.num_classes)
    gat = build('gat', 'node', in_channels=bundle.num_features,
                out_channels=bundle.num_classes, heads=2, hidden_channels=8)
    adj = task.graph_for(gcn)
    assert adj.layout == torch.sparse_csr
    assert adj._nnz() == bundle.data.edge_index.size(1)
    assert task.graph_for(gat) is task.data.edge_index


def test_gcn_matches_dense_reference():
    torch.manual_seed(0)
    data = tiny_graph(num_features=3)
    enc = build_encoder('gcn', 3, 2, hidden_channels=2, num_layers=1,
                        dropout=0.0)
    conv = enc.convs[0]
    ref = dense_gcn_layer(data.x, data.edge_index, conv.lin.weight,
                          conv.bias)
    assert torch.allclose(enc(data.x, data.edge_index), ref, atol=1e-6)


def test_input_dropout_only_in_training():
    data = tiny_graph(num_features=4)
    model = build('mlp', 'node', in_channels=4, out_channels=2,
                  input_dropout=0.5, dropout=0.0)
    model.eval()
    a = model(data.x, data.edge_index)
    assert torch.equal(a, model(data.x, data.edge_index))
    model.train()
    torch.manual_seed(0)
    b = model(data.x, data.edge_index)
    assert not torch.allclose(a, b)


def test_dot_decoder_reference():
    h = torch.randn(5, 4)
    pairs = torch.tensor([[0, 1, 4], [2, 3, 4]])
    expected = torch.stack([h[i] @ h[j] for i, j in pairs.t().tolist()])
    assert torch.allclose(DotDecoder()(h, pairs), expected)


def test_mlp_decoder_reference_and_symmetry():
    torch.manual_seed(0)
    dec = HadamardMLPDecoder(4, 8, num_layers=2)
    h = torch.randn(5, 4)
    pairs = torch.tensor([[0, 1], [2, 3]])
    lin0, lin1 = dec.lins
    z = torch.relu((h[[0, 1]] * h[[2, 3]]) @ lin0.weight.t() + lin0.bias)
    expected = (z @ lin1.weight.t() + lin1.bias).view(-1)
    assert torch.allclose(dec(h, pairs), expected, atol=1e-6)
    assert torch.allclose(dec(h, pairs.flip(0)), expected, atol=1e-6)
    with pytest.raises(ValueError, match=r'shape \[2, B\]'):
        dec(h, torch.tensor([[0, 1, 2], [2, 3, 4]]).t())


@pytest.mark.parametrize('name', ['gcn', 'sage'])
def test_link_model_featureless_and_equivariance(name):
    torch.manual_seed(0)
    data = tiny_graph(num_features=4)
    model = build(name, 'link', in_channels=4, out_channels=1,
                  hidden_channels=8, dropout=0.0)
    model.eval()
    pairs = torch.tensor([[0, 3], [4, 5]])
    s = model(data.x, data.edge_index, pairs)
    assert s.shape == (2, )
    perm = torch.tensor([3, 5, 0, 1, 4, 2])
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(6)
    pdata = permute_graph(data, perm)
    assert torch.allclose(model(pdata.x, pdata.edge_index, inv[pairs]), s,
                          atol=1e-5)
    emb = build(name, 'link', in_channels=0, out_channels=1,
                hidden_channels=8, num_nodes=6)
    assert emb.embedding.weight.shape == (6, 8)
    assert emb(None, data.edge_index, pairs).shape == (2, )


def test_graph_model_pooling_invariance():
    torch.manual_seed(0)
    data = tiny_graph(num_features=4)
    model = build('gin', 'graph', in_channels=4, out_channels=2,
                  hidden_channels=8, pool='sum')
    model.eval()
    out = model(data.x, data.edge_index)
    assert out.shape == (1, 2)
    pdata = permute_graph(data, torch.tensor([5, 4, 3, 2, 1, 0]))
    assert torch.allclose(model(pdata.x, pdata.edge_index), out, atol=1e-5)


def test_gat_bad_heads():
    with pytest.raises(ValueError, match='divisible by heads'):
        build('gat', 'node', in_channels=4, out_channels=2,
              hidden_channels=10, heads=3)


@pytest.mark.parametrize('num_layers,norm', [(2, None), (3, 'batch_norm'),
                                             (1, None)])
def test_mlp_sparse_input_path_matches_dense(num_layers, norm):
    # bag-of-words-like input: the second call with the same tensor runs the
    # first layer as a CSR product; outputs and gradients match PyG's MLP
    from graphkit.models.basic import MLPEncoder
    torch.manual_seed(0)
    x = torch.rand(30, 40) * (torch.rand(30, 40) < 0.1)
    enc = MLPEncoder(40, 8, 3, num_layers=num_layers, dropout=0.5,
                     norm=norm)
    ref = MLPEncoder(40, 8, 3, num_layers=num_layers, dropout=0.5,
                     norm=norm, sparse_input=False)
    ref.load_state_dict(enc.state_dict())
    for step in range(3):
        torch.manual_seed(step)
        out = enc(x)
        torch.manual_seed(step)
        expected = ref(x)
        assert torch.allclose(out, expected, atol=1e-5)
        out.pow(2).sum().backward()
        expected.pow(2).sum().backward()
        # (a bias before batch norm has a zero gradient up to rounding, so
        # the tolerance is relative to the largest gradient of the model)
        scale = 1.0 + max(float(q.grad.abs().max()) for q in ref.parameters())
        for (name, p), q in zip(enc.named_parameters(), ref.parameters()):
            assert torch.allclose(p.grad, q.grad, atol=1e-6 * scale), name
            p.grad, q.grad = None, None
        # built on the second sight of the same tensor, then reused
        assert enc._cache._built == (step >= 1)
    enc.eval(), ref.eval()
    assert torch.allclose(enc(x), ref(x), atol=1e-5)
    # both paths compute PyG's MLP (its own forward, in evaluation mode)
    assert torch.allclose(enc(x), enc.mlp(x), atol=1e-5)
    assert torch.allclose(ref(x), ref.mlp(x), atol=1e-6)
    # a new tensor each call (mini-batches) is never converted
    enc._cache.clear()
    for _ in range(3):
        enc(x.clone())
        assert not enc._cache._built
    # too dense for the sparse path: the dense result, cached as such
    dense = torch.rand(30, 40)
    enc(dense), enc(dense)
    assert enc._cache._built and enc._cache._value is None
    assert torch.allclose(enc(dense), ref(dense), atol=1e-6)
