import json
import math

import pytest
import torch

from graphkit import data as gdata
from graphkit.pipelines import (DataConfig, ModelConfig, OptimConfig,
                                RunConfig, TrainConfig, fit)
from graphkit.pipelines.results import read_records
from graphkit.pipelines.strategies import NonFiniteLossError


def _cfg(tmp_path, **train):
    t = dict(epochs=30, runs=2, checkpoint_every=1, progress=False)
    t.update(train)
    return RunConfig(
        data=DataConfig(name='csbm'),
        model=ModelConfig(name='gcn', hidden_channels=16, dropout=0.5),
        optim=OptimConfig(lr=0.01, weight_decay=5e-4),
        train=TrainConfig(**t), out=str(tmp_path / 'out'))


def test_fit_learns_and_writes_records(tmp_path):
    summary = fit(_cfg(tmp_path))
    assert summary.runs == 2 and summary.test_mean > 0.8
    out = tmp_path / 'out'
    records = read_records(out / 'runs.jsonl')
    assert [r.seed for r in records] == [0, 1]
    for r in records:
        best = max(h['valid'] for h in r.history)
        assert r.valid == best
        at_best = [h for h in r.history if h['epoch'] == r.best_epoch][0]
        assert r.test == at_best['test']
    assert json.loads((out / 'summary.json').read_text())['runs'] == 2
    assert 'environment' in json.loads((out / 'config.json').read_text())
    assert not (out / 'checkpoint.pt').exists()


def test_same_seed_same_result(tmp_path):
    a = fit(_cfg(tmp_path / 'a', runs=1))
    b = fit(_cfg(tmp_path / 'b', runs=1))
    assert a.records[0].history == b.records[0].history


class _Crash(RuntimeError):
    pass


def test_resume_after_crash_matches_uninterrupted(tmp_path):
    ref = fit(_cfg(tmp_path / 'ref'))

    def crash(run, epoch, **_):
        if run == 1 and epoch == 17:
            raise _Crash

    cfg = _cfg(tmp_path / 'x')
    with pytest.raises(_Crash):
        fit(cfg, callbacks=[crash])
    ckpt = torch.load(tmp_path / 'x' / 'out' / 'checkpoint.pt',
                      weights_only=False)
    assert (ckpt['run'], ckpt['epoch']) == (1, 17)
    resumed = fit(cfg, resume=True)
    for a, b in zip(ref.records, resumed.records):
        assert a.history == b.history
        assert (a.best_epoch, a.valid, a.test) == (b.best_epoch, b.valid,
                                                   b.test)


def test_resume_rejects_changed_config(tmp_path):
    cfg = _cfg(tmp_path, runs=1, epochs=3)
    fit(cfg)
    cfg.optim.lr = 0.5
    with pytest.raises(ValueError, match='optim.lr'):
        fit(cfg, resume=True)


def test_early_stopping(tmp_path):
    s = fit(_cfg(tmp_path, runs=1, epochs=500, patience=5))
    r = s.records[0]
    assert r.stopped_early and r.epochs < 500
    assert r.epochs - r.best_epoch == 5


def test_lr_plateau_halves_and_stops_at_min_lr(tmp_path):
    # dropout 0 and lr 0: the validation loss never improves after the
    # first evaluation, so the rate is cut after patience + 1 evaluations
    cfg = _cfg(tmp_path, runs=1, epochs=100, lr_plateau_factor=0.5,
               lr_plateau_patience=2, min_lr=1e-6)
    cfg.model.dropout, cfg.optim.lr = 0.0, 0.0
    r = fit(cfg).records[0]
    assert r.stopped_early and r.epochs == 1 + 3

    assert [h['lr'] for h in r.history] == [0.0] * 4  # reported per eval

    from graphkit.pipelines.config import ConfigError
    with pytest.raises(ConfigError, match='lr_plateau_factor'):
        fit(_cfg(tmp_path, runs=1, lr_plateau_factor=2.0))


def test_lr_plateau_rule_scales_every_optimizer(tmp_path):
    from graphkit.pipelines import make_task
    from graphkit.pipelines.loop import Trainer
    cfg = _cfg(tmp_path, lr_plateau_factor=0.5, lr_plateau_patience=1,
               min_lr=0.003)
    bundle = gdata.load('csbm')
    trainer = Trainer(cfg, make_task(bundle), 0, torch.device('cpu'))
    stops = [trainer._plateau_step(v) for v in (1.0, 0.9, 0.95, 0.95)]
    assert stops == [False] * 4
    assert trainer.strategy.optimizer.param_groups[0]['lr'] == 0.005
    stops = [trainer._plateau_step(v) for v in (0.95, 0.95)]
    assert stops == [False, True]  # 0.0025 < min_lr
    assert trainer.state_dict()['plateau'] == {'best': 0.9, 'bad': 0}


def test_nan_loss_names_epoch(tmp_path):
    cfg = _cfg(tmp_path, runs=1)
    cfg.optim.lr = 1e30
    with pytest.raises(NonFiniteLossError, match=r'at epoch \d+'):
        fit(cfg)


def test_fixed_splits_one_run_per_split(tmp_path):
    bundle = gdata.load('csbm')
    splits = [bundle.split_for_run(0, s) for s in range(3)]
    bundle.fixed_splits = splits
    cfg = _cfg(tmp_path, runs=None, epochs=2)
    s = fit(cfg, bundle=bundle)
    assert s.runs == 3
    assert [r.split for r in s.records] == [sp.name for sp in splits]


def test_minibatch_node_training(tmp_path):
    cfg = _cfg(tmp_path, runs=1, epochs=5, batch_size=64,
               num_neighbors=(5, 5))
    cfg.model.name = 'sage'
    s = fit(cfg)
    assert s.test_mean > 0.6


@pytest.mark.parametrize('name', ['sage', 'gcn'])
def test_minibatch_prediction_matches_full_graph(name):
    # all-neighbour mini-batches are exact for mean aggregation; with an
    # evaluation batch covering every node, even GCN's degrees are exact
    from graphkit import models
    from graphkit.pipelines import make_task
    bundle = gdata.load('csbm')
    torch.manual_seed(0)
    model = models.build(name, 'node', in_channels=bundle.num_features,
                         out_channels=bundle.num_classes, hidden_channels=16,
                         num_layers=2)
    model.eval()
    data = bundle.data
    with torch.no_grad():
        full = model(data.x, data.edge_index)
    split = bundle.split_for_run(0, 0)
    whole = make_task(bundle, batch_size=64, num_neighbors=(5, 5),
                      eval_batch_size=data.num_nodes)
    whole.setup(split)
    assert torch.allclose(whole.predict(model), full, atol=1e-5)
    if name == 'sage':
        small = make_task(bundle, batch_size=64, num_neighbors=(5, 5),
                          eval_batch_size=100)
        small.setup(split)
        assert torch.allclose(small.predict(model), full, atol=1e-5)


@pytest.mark.parametrize('task,batch', [('node', None), ('node', 64),
                                        ('link', None)])
def test_tasks_leave_the_bundle_on_its_device(task, batch):
    # PyG's Data.to moves in place: a task on another device (here 'meta')
    # must move a copy, or a second task sharing the bundle would see it
    from graphkit.pipelines import make_task
    bundle = gdata.load('csbm', task=task)
    split = bundle.split_for_run(0, 0)
    t = make_task(bundle, batch_size=batch, device='meta')
    t.setup(split)
    assert bundle.data.x.device.type == 'cpu'
    assert bundle.data.edge_index.device.type == 'cpu'
    assert t.data.x.device.type == ('cpu' if batch else 'meta')
    if batch:     # sampling stays on the host; the full graph is copied
        assert t.on_device(t.data).x.device.type == 'meta'
        assert t.data.x.device.type == 'cpu'


def test_link_task_on_synthetic(tmp_path):
    cfg = _cfg(tmp_path, runs=1, epochs=20)
    cfg.data.task = 'link'
    cfg.data.metric = 'auc'
    s = fit(cfg)
    assert s.metric == 'auc' and s.test_mean > 0.6


def test_graph_task_on_tiny_dataset(tmp_path):
    from torch_geometric.datasets import FakeDataset
    ds = FakeDataset(num_graphs=60, avg_num_nodes=10, num_channels=4,
                     num_classes=2, task='graph')
    bundle = gdata.DatasetBundle(
        name='fake', task='graph', data=ds, metric='accuracy',
        split_kind='random', num_features=4, num_classes=2,
        random_split=lambda s: gdata.splits.random_graph_split(
            torch.cat([g.y for g in ds]), seed=s))
    cfg = _cfg(tmp_path, runs=1, epochs=3)
    cfg.model.name = 'gin'
    s = fit(cfg, bundle=bundle)
    assert 0.0 <= s.test_mean <= 1.0 and not math.isnan(s.valid_mean)


def test_higcn_through_the_pipeline_with_gpr_stopping(tmp_path):
    cfg = _cfg(tmp_path, runs=2, epochs=300, patience=20, early_stop='gpr',
               select_by='loss')
    cfg.model.name = 'higcn'
    cfg.model.hidden_channels, cfg.model.K = 16, 4
    s = fit(cfg)
    assert s.test_mean > 0.8
    for r in s.records:
        losses = [h['valid_loss'] for h in r.history]
        assert r.best_epoch == 1 + losses.index(min(losses))
        if r.stopped_early:
            assert losses[-1] > sum(losses[-21:-1]) / 20


def test_unknown_early_stop_rule(tmp_path):
    cfg = _cfg(tmp_path, runs=1, epochs=3, patience=2, early_stop='never')
    with pytest.raises(ValueError, match="early_stop rule 'never'"):
        fit(cfg)


def test_embedding_reg_only_for_recommendation(tmp_path):
    from graphkit.pipelines import ConfigError
    cfg = _cfg(tmp_path)
    cfg.train.embedding_reg = 1.0
    with pytest.raises(ConfigError, match='recommendation'):
        fit(cfg)


def test_nsd_through_the_pipeline_with_sheaf_decay(tmp_path):
    cfg = _cfg(tmp_path, runs=1, epochs=5)
    cfg.model = ModelConfig(name='nsd-diag', hidden_channels=4, num_layers=2,
                            stalk_dim=2, dropout=0.0)
    cfg.optim.sheaf_decay = 1e-3
    summary = fit(cfg)
    assert summary.runs == 1 and 0.0 <= summary.test_mean <= 1.0


@pytest.mark.parametrize('per_module', [False, True])
def test_gradient_clipping_whole_model_or_per_module(per_module):
    from torch.nn import Embedding, Linear, Module

    from graphkit.pipelines.strategies import Backprop

    class Three(Module):
        def __init__(self):
            super().__init__()
            self.embedding = Embedding(5, 4)
            self.encoder = Linear(4, 4)
            self.decoder = Linear(4, 1)
            self.scale = torch.nn.Parameter(torch.ones(1))

    torch.manual_seed(0)
    model = Three()
    strategy = Backprop(model, lr=0.1, grad_clip=1.0,
                        clip_per_module=per_module)
    for p in model.parameters():
        p.grad = torch.full_like(p, 10.0)
    strategy.clip_gradients()

    def norm(params):
        return torch.cat([p.grad.flatten() for p in params]).norm()

    groups = [[model.scale], list(model.embedding.parameters()),
              list(model.encoder.parameters()),
              list(model.decoder.parameters())]
    total = norm(model.parameters())
    if per_module:
        # every group is clipped to norm 1 on its own, so together they
        # exceed 1
        for g in groups:
            assert torch.isclose(norm(g), torch.tensor(1.0), atol=1e-5)
        assert torch.isclose(total, torch.tensor(2.0), atol=1e-5)
    else:
        assert torch.isclose(total, torch.tensor(1.0), atol=1e-5)
        assert norm(groups[1]) < 0.9


def test_progress_lines_without_a_bar(tmp_path, caplog):
    caplog.set_level('INFO', logger='graphkit.pipelines.loop')
    fit(_cfg(tmp_path / 'a', runs=1, epochs=6, log_interval=1e-9))
    lines = [r.getMessage() for r in caplog.records
             if r.getMessage().startswith('run 0: epoch')]
    assert [line.split(',')[0] for line in lines] == [
        f'run 0: epoch {e}/6' for e in range(1, 7)]
    assert 'best valid' in lines[-1] and 's/epoch' in lines[-1]
    caplog.clear()
    fit(_cfg(tmp_path / 'b', runs=1, epochs=6, log_interval=0))
    assert not any(r.getMessage().startswith('run 0: epoch')
                   for r in caplog.records)
    # only the last epoch within a long interval
    caplog.clear()
    fit(_cfg(tmp_path / 'c', runs=1, epochs=6, log_interval=3600))
    assert [r.getMessage().split(',')[0] for r in caplog.records
            if r.getMessage().startswith('run 0: epoch')] == [
        'run 0: epoch 6/6']
    with pytest.raises(ValueError, match='log_interval'):
        fit(_cfg(tmp_path / 'd', runs=1, epochs=2, log_interval=-1))


def test_train_mode_restores_training_in_every_submodule():
    from graphkit.pipelines.strategies.base import train_mode
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5),
                                torch.nn.Sequential(torch.nn.BatchNorm1d(2)))
    train_mode(model)
    assert all(m.training for m in model.modules())
    model.eval()
    train_mode(model)
    assert all(m.training for m in model.modules())
    model[2][0].eval()          # one nested submodule left in eval mode
    train_mode(model)
    assert all(m.training for m in model.modules())
