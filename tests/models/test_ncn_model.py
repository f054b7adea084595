import pytest
import torch
from torch_geometric.nn import GraphSAGE
from torch_geometric.utils import (erdos_renyi_graph, to_torch_csr_tensor,
                                   to_undirected)

from graphkit.layers.pure import PureConv, PureGNN, drop_graph_edges
from graphkit.models import NCNLinkModel, build
from graphkit.pipelines import (DataConfig, ModelConfig, OptimConfig,
                                RunConfig, TrainConfig, fit)
from graphkit.testing import dense_adjacency


def _graph(n=12, p=0.3, seed=0):
    torch.manual_seed(seed)
    ei = to_undirected(erdos_renyi_graph(n, p))
    # node n-1 isolated
    ei = ei[:, (ei < n - 1).all(0)]
    return ei, torch.randn(n, 5)


@pytest.mark.parametrize('sparse', [False, True])
def test_pure_conv_matches_dense_reference(sparse):
    ei, x = _graph()
    n = x.size(0)
    a = dense_adjacency(ei, n)
    graph = to_torch_csr_tensor(ei, size=(n, n)) if sparse else ei
    deg = a.sum(1)
    d = (deg + 1).rsqrt()
    ref = {'gcn': d[:, None] * ((a + torch.eye(n)) @ (d[:, None] * x)),
           'sum': a @ x,
           'mean': (a @ x) / deg.clamp_min(1)[:, None]}
    ref['max'] = torch.stack([
        x[a[i] > 0].max(0).values if deg[i] > 0 else torch.zeros(5)
        for i in range(n)])
    for aggr, want in ref.items():
        assert torch.allclose(PureConv(aggr)(x, graph), want, atol=1e-5), aggr


def test_pure_gnn_equivariant_and_bad_input():
    ei, x = _graph()
    model = PureGNN(5, 8, num_layers=2, jk='sum', residual=True).eval()
    out = model(x, ei)
    perm = torch.randperm(x.size(0), generator=torch.Generator()
                          .manual_seed(1))
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(perm.numel())
    assert torch.allclose(model(x[perm], inv[ei]), out[perm], atol=1e-5)
    with pytest.raises(ValueError, match=r'x of shape \[N, 5\]'):
        model(torch.randn(12, 4), ei)
    with pytest.raises(ValueError, match='Unknown pure aggregation'):
        PureConv('prod')
    with pytest.raises(ValueError, match='must equal out_channels'):
        PureGNN(5, 8, input_linear=False)


def test_edge_dropout_keeps_a_subset():
    ei, _ = _graph(30, 0.3)
    torch.manual_seed(0)
    kept = drop_graph_edges(ei, 0.5, training=True)
    assert 0 < kept.size(1) < ei.size(1)
    assert drop_graph_edges(ei, 0.5, training=False) is ei
    csr = to_torch_csr_tensor(ei, size=(30, 30))
    kept = drop_graph_edges(csr, 0.5, training=True)
    assert kept.layout == torch.sparse_csr and 0 < kept._nnz() < ei.size(1)


@pytest.mark.parametrize('name', ['ncn', 'ncnc', 'ncn-gae'])
def test_ncn_models_relabelling_invariant_and_all_grads(name):
    ei, x = _graph(14, 0.35, seed=2)
    n = x.size(0)
    model = build(name, 'link', in_channels=5, hidden_channels=16,
                  use_xlin=True, decoder_norm=True, jk='sum',
                  completion_order=2)
    assert isinstance(model, NCNLinkModel)
    pairs = torch.tensor([[0, 1, 2, 3, n - 1], [4, 5, 6, 3, 0]])
    model.eval()
    out = model(x, ei, pairs)
    assert out.shape == (5, )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(4))
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(n)
    assert torch.allclose(model(x[perm], inv[ei], inv[pairs]), out,
                          atol=1e-4)
    # a sparse CSR graph gives the same scores
    csr = to_torch_csr_tensor(ei, size=(n, n))
    assert torch.allclose(model(x, csr, pairs), out, atol=1e-5)
    model.train()
    model(x, ei, pairs).sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
    if name == 'ncn-gae':   # no common neighbours: no graph needed
        assert torch.allclose(model.eval().decode(model.encode(x, ei),
                                                  pairs), out, atol=1e-5)
        return
    with pytest.raises(ValueError, match='pass the graph'):
        model.decode(model.encode(x, ei), pairs)


def test_bad_graphs_and_batches_get_clear_errors():
    ei, x = _graph(14, 0.35, seed=2)
    model = build('ncn', 'link', in_channels=5, hidden_channels=16).eval()
    pairs = torch.tensor([[0, 1], [4, 5]])
    assert model(x, ei, pairs).shape == (2, )
    directed = ei[:, ei[0] < ei[1]]          # one direction only
    with pytest.raises(ValueError, match='undirected.*no reverse edge'):
        model(x, directed, pairs)
    model.train()
    with pytest.raises(ValueError, match='undirected'):
        model(x, directed, pairs)
    with pytest.raises(ValueError, match='empty batch'):
        model(x, ei, pairs[:, :0])
    with pytest.raises(ValueError, match='refer'):
        model(x, ei, torch.tensor([[0], [14]]))


def test_any_encoder_and_featureless_embeddings():
    model = build('ncnc', 'link', in_channels=5, hidden_channels=16,
                  encoder='sage', num_layers=2)
    assert isinstance(model.encoder, GraphSAGE)
    model = build('ncn', 'link', in_channels=0, num_nodes=20,
                  hidden_channels=16, encoder='pure-sum', residual=True)
    assert model.embedding.weight.shape == (20, 16)
    ei, _ = _graph(20, 0.3)
    assert model(None, ei, torch.tensor([[0], [1]])).shape == (1, )
    with pytest.raises(ValueError, match='Unknown encoder'):
        build('ncn', 'link', in_channels=5, encoder='nope')


class _Spy(torch.nn.Module):
    r"""Records the graphs the task passes to the encoder."""
    def __init__(self, model):
        super().__init__()
        self.model, self.graphs = model, []

    def encode(self, x, graph, **kw):
        self.graphs.append(graph)
        return self.model.encode(x, graph, **kw)

    def decode(self, h, pairs, graph=None):
        return self.model.decode(h, pairs, graph)


@pytest.mark.parametrize('threshold', [10**9, 1])
def test_target_link_removal_removes_batch_targets(threshold):
    from graphkit import data as gdata
    from graphkit.pipelines.tasks import make_task
    bundle = gdata.load('csbm', task='link')
    task = make_task(bundle, batch_size=64, target_link_removal=True)
    task.sparse_threshold = threshold
    task.setup(bundle.split_for_run(0, 0))
    assert not task.static_graph
    spy = _Spy(build('ncn', 'link', in_channels=bundle.num_features,
                     hidden_channels=8))
    idx = torch.arange(64)
    task.loss(spy, idx)
    graph = spy.graphs[-1]
    if threshold == 1:
        assert graph.layout == torch.sparse_csr
        graph = graph.to_sparse_coo().coalesce().indices()
    n = bundle.data.num_nodes
    keys = set((graph[0] * n + graph[1]).tolist())
    pos = task.train_pos[:, idx]
    for a, b in pos.t().tolist():
        assert a * n + b not in keys and b * n + a not in keys
    full = task.edge_index
    assert graph.size(1) == full.size(1) - 2 * pos.size(1)
    # without removal the model sees the whole training graph
    task.target_link_removal = False
    task.loss(spy, idx)
    assert spy.graphs[-1] is task.adj


def test_ncnc_through_the_pipeline(tmp_path):
    cfg = RunConfig(
        data=DataConfig(name='csbm', task='link', metric='auc'),
        model=ModelConfig(name='ncnc', encoder='pure-gcn',
                          hidden_channels=32, dropout=0.0, use_xlin=True,
                          decoder_norm=True, tail_act=True),
        optim=OptimConfig(lr=0.01, decoder_lr=0.005),
        train=TrainConfig(epochs=15, runs=1, batch_size=256,
                          target_link_removal=True, progress=False),
        out=str(tmp_path))
    s = fit(cfg)
    assert s.test_mean > 0.75, s.line()
