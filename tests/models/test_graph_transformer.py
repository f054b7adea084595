import numpy as np
import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.utils import get_laplacian, to_dense_adj

from graphkit.data import load
from graphkit.data.splits import kfold_graph_splits
from graphkit.data.synthetic import sbm_cluster, sbm_pattern
from graphkit.models import GPS, GraphTransformer, build
from graphkit.pipelines import (DataConfig, ModelConfig, OptimConfig,
                                RunConfig, TrainConfig, fit, make_task)
from graphkit.pipelines.metrics import balanced_accuracy
from graphkit.transforms import LaplacianPE, RandomWalkPE, random_sign_flip


def _small_graphs(k=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    out = []
    for n in (5, 8, 3):
        a = torch.rand(n, n, generator=gen) < 0.5
        a = torch.triu(a, 1)
        a = a | a.t()
        ei = a.nonzero().t()
        d = Data(x=torch.randn(n, 4, generator=gen), edge_index=ei,
                 edge_attr=torch.randn(ei.size(1), 2, generator=gen),
                 num_nodes=n)
        out.append(LaplacianPE(k)(RandomWalkPE(k)(d)))
    return out


MODELS = {
    'gt-sparse': lambda: GraphTransformer(4, 6, 16, 2, heads=4, pe='lap',
                                          pe_dim=3, edge_dim=2),
    'gt-full': lambda: GraphTransformer(4, 6, 16, 2, heads=4,
                                        attention='full', pe='lap', pe_dim=3),
    'gt-layernorm-rw': lambda: GraphTransformer(4, 6, 16, 2, heads=4,
                                                norm='layer', pe='rw',
                                                pe_dim=3),
    'gps-gine': lambda: GPS(4, 6, 16, 2, heads=4, pe='rw', pe_dim=3,
                            edge_dim=2, attn_dropout=0.0),
    'gps-sage': lambda: GPS(4, 6, 16, 2, heads=4, local='sage', pe='lap',
                            pe_dim=3, attn_dropout=0.0),
}


def _call(model, data, batch=None):
    return model(data.x, data.edge_index, edge_attr=data.edge_attr,
                 lap_pe=data.lap_pe, rw_pe=data.rw_pe, batch=batch)


def _warm(model, graphs):
    # non-trivial BatchNorm running statistics, then eval mode
    model.train()
    b = Batch.from_data_list(graphs)
    _call(model, b, b.batch)
    return model.eval()


@pytest.mark.parametrize('name', MODELS)
def test_graph_in_a_batch_equals_graph_alone(name):
    torch.manual_seed(0)
    graphs = _small_graphs()
    model = _warm(MODELS[name](), graphs)
    b = Batch.from_data_list(graphs)
    out = _call(model, b, b.batch)
    for i, g in enumerate(graphs):
        alone = _call(model, g, torch.zeros(g.num_nodes, dtype=torch.long))
        assert torch.allclose(out[b.ptr[i]:b.ptr[i + 1]], alone, atol=1e-5)


@pytest.mark.parametrize('name', MODELS)
def test_node_level_permutation_equivariance(name):
    torch.manual_seed(1)
    g = _small_graphs()[1]
    model = _warm(MODELS[name](), [g])
    perm = torch.randperm(g.num_nodes)
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(g.num_nodes)
    pg = Data(x=g.x[perm], edge_index=inv[g.edge_index],
              edge_attr=g.edge_attr, lap_pe=g.lap_pe[perm],
              rw_pe=g.rw_pe[perm], num_nodes=g.num_nodes)
    assert torch.allclose(_call(model, g)[perm], _call(model, pg), atol=1e-5)


def test_graph_level_permutation_invariance():
    torch.manual_seed(2)
    model = build('graph-transformer', 'graph', in_channels=4,
                  out_channels=3, hidden_channels=16, num_layers=2, heads=4,
                  pe_dim=3, edge_dim=2, dropout=0.0).eval()
    g = _small_graphs()[1]
    perm = torch.randperm(g.num_nodes)
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(g.num_nodes)
    assert model.data_keys == ('edge_attr', 'lap_pe')
    kw = dict(edge_attr=g.edge_attr)
    a = model(g.x, g.edge_index, lap_pe=g.lap_pe, **kw)
    b = model(g.x[perm], inv[g.edge_index], lap_pe=g.lap_pe[perm], **kw)
    assert a.shape == (1, 3)
    assert torch.allclose(a, b, atol=1e-5)


def test_full_attention_ignores_the_graph_and_sparse_does_not():
    torch.manual_seed(3)
    g = _small_graphs()[1]
    other = g.edge_index[:, :2]
    for attention, same in (('full', True), ('sparse', False)):
        model = GraphTransformer(4, 6, 16, 2, heads=4, attention=attention,
                                 pe='none').eval()
        a = model(g.x, g.edge_index)
        b = model(g.x, other)
        assert torch.allclose(a, b) == same


@pytest.mark.parametrize('name', MODELS)
def test_every_parameter_gets_a_gradient(name):
    torch.manual_seed(4)
    graphs = _small_graphs()
    model = MODELS[name]().train()
    b = Batch.from_data_list(graphs)
    _call(model, b, b.batch).pow(2).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing


def test_sign_flip_only_in_training_mode():
    pe = torch.randn(10, 4)
    assert random_sign_flip(pe, training=False) is pe
    gen = torch.Generator().manual_seed(0)
    signs = set()
    for _ in range(20):
        out = random_sign_flip(pe, training=True, generator=gen)
        s = out / pe  # one sign per column, shared by all nodes
        assert torch.allclose(s.abs(), torch.ones_like(s))
        assert (s == s[:1]).all()
        signs.add(tuple(s[0].tolist()))
    assert len(signs) > 1  # re-drawn per call, i.e. per training batch

    # inside the model: eval output is deterministic, training output
    # changes with the flips (dropout is 0, so nothing else is random)
    g = _small_graphs()[1]
    model = GraphTransformer(4, 6, 16, 1, heads=4, norm='layer',
                             pe_dim=3)
    model.eval()
    assert torch.equal(_call(model, g), _call(model, g))
    model.train()
    torch.manual_seed(0)
    outs = [_call(model, g) for _ in range(8)]
    assert any(not torch.allclose(outs[0], o) for o in outs[1:])


def test_laplacian_pe_eigenvectors_and_padding():
    g = _small_graphs(k=3)[1]  # 8 nodes
    pe = g.lap_pe
    assert pe.shape == (8, 3) and pe.dtype == torch.float32
    ei, w = get_laplacian(g.edge_index, normalization='sym', num_nodes=8)
    lap = to_dense_adj(ei, edge_attr=w, max_num_nodes=8)[0]
    vals = np.linalg.eigvalsh(lap.double().numpy())
    for c in range(3):  # each column is an eigenvector of L
        v = pe[:, c].double()
        lam = float(v @ lap.double() @ v / (v @ v))
        assert torch.allclose(lap.double() @ v, lam * v, atol=1e-5)
        assert np.isclose(lam, vals[c + 1], atol=1e-5)  # the trivial one dropped
    tiny = _small_graphs(k=5)[2]  # 3 nodes, 2 non-trivial eigenvectors
    assert tiny.lap_pe.shape == (3, 5)
    assert (tiny.lap_pe[:, 2:] == 0).all()
    assert Batch.from_data_list(_small_graphs(k=5)).lap_pe.shape == (16, 5)
    with pytest.raises(ValueError, match='k >= 1'):
        LaplacianPE(0)


def test_pattern_and_cluster_generators():
    a = sbm_pattern(num_graphs=5, seed=1)
    b = sbm_pattern(num_graphs=5, seed=1)
    for g, h in zip(a, b):
        assert torch.equal(g.edge_index, h.edge_index)
        assert int(g.y.sum()) == 20  # the planted pattern's nodes
        assert 5 * 5 + 20 <= g.num_nodes < 5 * 35 + 20
        assert g.x.shape == (g.num_nodes, 3)
        assert g.is_undirected() and not g.has_self_loops()
    for g in sbm_cluster(num_graphs=5, seed=2):
        assert set(g.y.tolist()) == set(range(6))
        feat = g.x.argmax(-1)
        labelled = feat.nonzero().view(-1)
        assert labelled.numel() == 6  # one labelled node per cluster
        assert torch.equal(feat[labelled] - 1, g.y[labelled])


def test_kfold_splits_partition_and_stratify():
    y = torch.tensor([0] * 30 + [1] * 20)
    splits = kfold_graph_splits(y, 10, seed=0)
    tests = torch.cat([s.test_idx for s in splits]).sort().values
    assert torch.equal(tests, torch.arange(50))
    for s in splits:
        idx = torch.cat([s.train_idx, s.val_idx, s.test_idx])
        assert idx.unique().numel() == 50
        assert (y[s.test_idx] == 0).sum() == 3
        assert (y[s.test_idx] == 1).sum() == 2


def test_balanced_accuracy():
    y = torch.tensor([0, 0, 0, 1])
    assert balanced_accuracy(torch.tensor([0, 0, 0, 0]), y) == 0.5
    assert balanced_accuracy(torch.tensor([0, 0, 1, 1]), y) == \
        pytest.approx((2 / 3 + 1) / 2)


def test_pattern_task_class_weighted_loss(tmp_path):
    bundle = load('pattern', root=tmp_path, options={
        'num_train': 6, 'num_valid': 2, 'num_test': 2})
    assert bundle.info['inductive'] and bundle.num_classes == 2
    task = make_task(bundle)
    task.setup(bundle.split_for_run(0, 0))
    out = torch.randn(10, 2)
    y = torch.tensor([0] * 7 + [1] * 3)
    w = torch.tensor([3 / 10, 7 / 10])
    manual = -(w[y] * out.log_softmax(-1)[torch.arange(10), y]).sum() / \
        w[y].sum()
    assert torch.allclose(task._criterion(out, y), manual)


def test_gps_through_the_pipeline_on_pattern(tmp_path):
    cfg = RunConfig(
        data=DataConfig(name='pattern', options={
            'num_train': 60, 'num_valid': 20, 'num_test': 20}),
        model=ModelConfig(name='gps', hidden_channels=16, num_layers=2,
                          heads=4, dropout=0.0, pe_dim=2),
        optim=OptimConfig(lr=0.005),
        train=TrainConfig(epochs=12, runs=1, batch_size=20, progress=False),
        out=str(tmp_path))
    s = fit(cfg)
    # a constant predictor scores 0.5 balanced accuracy
    assert s.test_mean > 0.55, s.line()


def test_graph_transformer_on_mutag_10_fold(tmp_path, require):
    mirror = require('TUDataset/MUTAG/raw/MUTAG_A.txt')
    cfg = RunConfig(
        data=DataConfig(name='mutag', split='10-fold', root=str(tmp_path),
                        mirror=str(mirror)),
        model=ModelConfig(name='graph-transformer', hidden_channels=16,
                          num_layers=2, heads=4, dropout=0.0, pe_dim=4),
        optim=OptimConfig(lr=0.005),
        train=TrainConfig(epochs=15, runs=2, batch_size=32, progress=False),
        out=str(tmp_path / 'runs'))
    s = fit(cfg)
    assert s.test_mean > 0.7, s.line()  # majority class: 0.66


@pytest.mark.parametrize('attention', ['sparse', 'full'])
def test_graph_transformer_node_classification(tmp_path, attention):
    # transductive node classification on one graph (LapPE of the whole
    # graph, sign-flipped per step)
    cfg = RunConfig(
        data=DataConfig(name='csbm', options={'num_nodes': 300}),
        model=ModelConfig(name='graph-transformer', hidden_channels=16,
                          num_layers=2, heads=4, dropout=0.0, pe_dim=4,
                          attention=attention),
        optim=OptimConfig(lr=0.01),
        train=TrainConfig(epochs=40, runs=1, progress=False),
        out=str(tmp_path))
    s = fit(cfg)
    assert s.test_mean > 0.7, s.line()  # 3 balanced classes: chance 0.33


def test_cli_runs_graph_transformer_with_generator_options(tmp_path, capsys):
    from graphkit.cli import main
    code = main(['run', '--model', 'graph-transformer', '--dataset',
                 'cluster', '--epochs', '2', '--runs', '1', '--out',
                 str(tmp_path), '--no-progress',
                 '--set', 'data.options={"num_train": 8, "num_valid": 4, '
                 '"num_test": 4}',
                 '--set', 'model.num_layers=1',
                 '--set', 'model.hidden_channels=16',
                 '--set', 'train.batch_size=4'])
    assert code == 0
    out = capsys.readouterr().out
    assert '| graph-transformer | cluster | balanced_accuracy | 1 |' in out


def test_bad_graph_transformer_settings_raise_clear_errors():
    with pytest.raises(ValueError, match="'lap', 'rw' or 'none'"):
        GraphTransformer(4, 6, 16, 1, heads=4, pe='wl')
    with pytest.raises(ValueError, match="'sparse' or 'full'"):
        GraphTransformer(4, 6, 16, 1, heads=4, attention='local')
    model = GraphTransformer(4, 6, 16, 1, heads=4, pe='lap', pe_dim=3)
    g = _small_graphs()[0]
    with pytest.raises(ValueError, match='data.lap_pe'):
        model(g.x, g.edge_index)
    from graphkit.pipelines.config import ConfigError, apply_overrides
    with pytest.raises(ConfigError, match='JSON object'):
        apply_overrides(RunConfig(), ['data.options=[1, 2]'])
    cfg = apply_overrides(RunConfig(), ['data.options={"num_train": 3}'])
    assert cfg.data.options == {'num_train': 3}


@pytest.mark.parametrize('model', ['mowst', 'ncnc'])
def test_graph_transformer_as_a_backbone(tmp_path, model):
    # the PE reaches the transformer inside another component
    cfg = RunConfig(
        data=DataConfig(name='csbm', options={'num_nodes': 120}),
        model=ModelConfig(name=model, encoder='graph-transformer',
                          hidden_channels=16, num_layers=1, heads=4,
                          dropout=0.0, pe_dim=4),
        train=TrainConfig(epochs=2, runs=1, progress=False,
                          mowst_pretrain_epochs=1),
        out=str(tmp_path))
    inner = build(model, 'link' if model == 'ncnc' else 'node',
                  in_channels=32, out_channels=1 if model == 'ncnc' else 3,
                  encoder='graph-transformer', hidden_channels=16,
                  num_layers=1, heads=4, pe_dim=4)
    assert 'lap_pe' in inner.data_keys
    s = fit(cfg)
    assert 0.0 <= s.test_mean <= 1.0
