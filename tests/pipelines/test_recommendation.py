import math

import pytest
import torch
from torch_geometric.nn.models import LightGCN as PyGLightGCN

from graphkit import models
from graphkit.data import DatasetBundle
from graphkit.data.loaders import epoch_generator
from graphkit.data.splits import (RecommendationSplit,
                                  random_interaction_split)
from graphkit.models.recommendation import LightGCN
from graphkit.pipelines import (DataConfig, ModelConfig, OptimConfig,
                                RunConfig, TrainConfig, fit)
from graphkit.pipelines.metrics import ranking_metrics
from graphkit.pipelines.results import read_records
from graphkit.pipelines.tasks import RecommendationTask, make_task

pytestmark = pytest.mark.filterwarnings(
    'ignore:Sparse (CSR tensor support|invariant checks):UserWarning')


# ----------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------


def _toy_interactions(num_users=80, num_items=60, groups=4, seed=0):
    r"""Users of group g mostly like the items of block g (seeded)."""
    gen = torch.Generator().manual_seed(seed)
    ug = torch.arange(num_users) % groups
    ig = torch.arange(num_items) % groups
    same = ug.view(-1, 1) == ig.view(1, -1)
    prob = torch.where(same, torch.tensor(0.5), torch.tensor(0.02))
    hit = torch.rand(num_users, num_items, generator=gen) < prob
    return hit.nonzero().t()


def _bundle(num_users=80, num_items=60, metric='ndcg@10', **kw):
    pairs = _toy_interactions(num_users, num_items, **kw)
    return DatasetBundle(
        name='toy-rec', task='recommendation', data=None, metric=metric,
        split_kind='random', num_features=0, num_classes=1,
        task_type='ranking',
        random_split=lambda s: random_interaction_split(pairs, seed=s),
        info={'num_users': num_users, 'num_items': num_items})


class _Table(torch.nn.Module):
    r"""Follows the recommendation contract with no propagation: the final
    embeddings are the layer-0 ones."""

    def __init__(self, num_users, num_items, dim=4):
        super().__init__()
        self.embedding = torch.nn.Embedding(num_users + num_items, dim)

    def forward(self, edge_index):
        return self.embedding.weight


def _pairs(index):
    return set(map(tuple, index.t().tolist()))


def _naive_metrics(ranked, truth, k):
    r"""Per-user Python reference of Recall/Precision/NDCG@k, averaged
    over users with a relevant item; F1 from the averaged P and R."""
    rec, prec, ndcg = [], [], []
    for user, items in truth.items():
        if not items:
            continue
        top = ranked[user][:k]
        hits = [1.0 if i in items else 0.0 for i in top]
        rec.append(sum(hits) / len(items))
        prec.append(sum(hits) / k)
        dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits))
        idcg = sum(1 / math.log2(r + 2) for r in range(min(k, len(items))))
        ndcg.append(dcg / idcg)
    p, r = sum(prec) / len(prec), sum(rec) / len(rec)
    return {f'recall@{k}': r, f'precision@{k}': p,
            f'f1@{k}': 2 * p * r / (p + r) if p + r else 0.0,
            f'ndcg@{k}': sum(ndcg) / len(ndcg)}


# ----------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------


def test_ranking_metrics_hand_made():
    # User 0: relevant {2, 5}; top-4 list 2, 7, 5, 1 -> hits at ranks 1, 3.
    # User 1: relevant {4}; top-4 list 0, 1, 3, 4 -> hit at rank 4.
    ranked = torch.tensor([[2, 7, 5, 1], [0, 1, 3, 4]])
    truth = torch.tensor([[0, 0, 1], [2, 5, 4]])
    out = ranking_metrics(ranked, truth, ks=(1, 4))
    assert out['precision@1'] == pytest.approx(0.5)
    assert out['recall@1'] == pytest.approx(0.25)  # (1/2 + 0) / 2
    assert out['f1@1'] == pytest.approx(2 * 0.5 * 0.25 / 0.75)
    assert out['ndcg@1'] == pytest.approx(0.5)
    assert out['precision@4'] == pytest.approx((2 / 4 + 1 / 4) / 2)
    assert out['recall@4'] == pytest.approx(1.0)
    ndcg0 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    ndcg1 = (1 / math.log2(5)) / 1
    assert out['ndcg@4'] == pytest.approx((ndcg0 + ndcg1) / 2, rel=1e-6)


def test_ranking_metrics_match_naive_reference():
    gen = torch.Generator().manual_seed(0)
    num_users, num_items = 30, 25
    ranked = torch.stack([torch.randperm(num_items, generator=gen)[:12]
                          for _ in range(num_users)])
    truth = {}
    for u in range(num_users):
        size = int(torch.randint(0, 15, (1, ), generator=gen))
        truth[u] = set(torch.randperm(num_items, generator=gen)[:size]
                       .tolist())
    pairs = torch.tensor([(u, i) for u, items in truth.items()
                          for i in sorted(items)]).t()
    assert any(not v for v in truth.values())  # users without truth
    out = ranking_metrics(ranked, pairs, ks=(1, 5, 10))
    for k in (1, 5, 10):
        ref = _naive_metrics(ranked.tolist(), truth, k)
        for name, value in ref.items():
            assert out[name] == pytest.approx(value, rel=1e-5, abs=1e-7), \
                name
    # F1 is the harmonic mean of the averages, not the mean of per-user F1.
    per_user = []
    for u, items in truth.items():
        if items:
            h = len(set(ranked[u, :5].tolist()) & items)
            p, r = h / 5, h / len(items)
            per_user.append(2 * p * r / (p + r) if h else 0.0)
    assert out['f1@5'] != pytest.approx(sum(per_user) / len(per_user))


def test_ranking_metrics_errors():
    with pytest.raises(ValueError, match=r'shape \[2, n\]'):
        ranking_metrics(torch.zeros(2, 3, dtype=torch.long),
                        torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match='refers to row 5'):
        ranking_metrics(torch.zeros(2, 3, dtype=torch.long),
                        torch.tensor([[5], [0]]))


# ----------------------------------------------------------------------------
# Task: graph, sampling, loss, ranking
# ----------------------------------------------------------------------------


def _task(bundle=None, seed=0, **kw):
    bundle = bundle or _bundle()
    task = make_task(bundle, **kw)
    task.setup(bundle.split_for_run(0, seed))
    return task


def test_task_is_registered_and_checks_metric():
    task = _task()
    assert isinstance(task, RecommendationTask)
    assert task.model_dims()['num_users'] == 80
    assert task.model_dims()['num_items'] == 60
    assert task.ks == (10, 20) and task.higher_is_better
    with pytest.raises(ValueError, match='Unknown recommendation metric'):
        make_task(_bundle(metric='hits@10'))
    assert make_task(_bundle(), metric='recall@5').ks == (5, 10, 20)


def test_message_passing_graph_holds_train_interactions_only():
    task = _task()
    split, U = task.split, task.num_users
    ei = task.edge_index
    assert ei.size(1) == 2 * split.train_index.size(1)
    forward = ei[:, ei[0] < U]
    backward = ei[:, ei[0] >= U]
    train = _pairs(split.train_index)
    assert {(u, i - U) for u, i in forward.t().tolist()} == train
    assert {(u, i - U) for i, u in backward.t().tolist()} == train
    assert not train & _pairs(split.test_index)


def test_negatives_are_never_train_positives():
    task = _task(batch_size=64)
    train = _pairs(task.split.train_index)
    seen_items = {i for _, i in train}
    batches = list(task.train_batches(epoch_generator(0, 1)))
    assert len(batches) == task.split.train_index.size(1) // 64
    for users, pos, neg in batches:
        assert users.numel() == pos.numel() == neg.numel() == 64
        # Without replacement: 80 users >= 64.
        assert users.unique().numel() == 64
        for u, p, n in zip(users.tolist(), pos.tolist(), neg.tolist()):
            assert (u, p) in train
            assert (u, n) not in train
            assert n in seen_items
    # Same generator state -> same batches.
    again = next(iter(task.train_batches(epoch_generator(0, 1))))
    assert all(torch.equal(a, b) for a, b in zip(batches[0], again))


def test_users_drawn_with_replacement_when_batch_exceeds_users():
    task = _task(batch_size=200)
    users, pos, neg = next(iter(task.train_batches(epoch_generator(0, 1))))
    assert users.numel() == 200 and users.unique().numel() <= 80


def test_loss_is_bpr_plus_l2_on_layer0_embeddings():
    task = _task(reg=0.3)
    torch.manual_seed(0)
    model = models.build('lightgcn', 'recommendation', **task.model_dims(),
                         num_layers=2, embedding_dim=8)
    users, pos, neg = task.sample(16, epoch_generator(0, 1))
    U = task.num_users
    emb = model(task.edge_index)
    s_pos = (emb[users] * emb[U + pos]).sum(-1)
    s_neg = (emb[users] * emb[U + neg]).sum(-1)
    e0 = model.embedding.weight
    l2 = 0.5 * (e0[users].norm(dim=1)**2 + e0[U + pos].norm(dim=1)**2
                + e0[U + neg].norm(dim=1)**2).sum() / 16
    ref = torch.log1p(torch.exp(s_neg - s_pos)).mean() + 0.3 * l2
    assert torch.allclose(task.loss(model, (users, pos, neg)), ref)


def test_target_link_removal_hides_the_batch_positives():
    task = _task(target_link_removal=True)
    assert not task.static_graph and _task().static_graph
    assert not task.model_dims()['cached']
    users, pos, neg = task.sample(16, epoch_generator(0, 1))
    U = task.num_users
    graph = task.training_graph(users, pos)
    full = _pairs(task.edge_index)
    removed = {(u, U + p) for u, p in zip(users.tolist(), pos.tolist())}
    removed |= {(i, u) for u, i in removed}
    assert len(removed) == 32  # 16 distinct users, one pair each
    assert _pairs(graph) == full - removed
    assert graph.size(1) == task.edge_index.size(1) - 32
    # Without removal the model sees the whole training graph.
    plain = _task()
    assert plain.training_graph(users, pos) is plain.edge_index

    # The loss is the BPR loss of the model run on the reduced graph.
    torch.manual_seed(0)
    model = models.build('lightgcn', 'recommendation', **task.model_dims(),
                         num_layers=2, embedding_dim=8)
    emb = model(graph)
    s_pos = (emb[users] * emb[U + pos]).sum(-1)
    s_neg = (emb[users] * emb[U + neg]).sum(-1)
    e0 = model.embedding.weight
    l2 = 0.5 * (e0[users].norm(dim=1)**2 + e0[U + pos].norm(dim=1)**2
                + e0[U + neg].norm(dim=1)**2).sum() / 16
    ref = torch.log1p(torch.exp(s_neg - s_pos)).mean() + 1e-4 * l2
    assert torch.allclose(task.loss(model, (users, pos, neg)), ref)
    full_loss = plain.loss(model, (users, pos, neg))
    assert not torch.allclose(full_loss, ref)


def test_ranking_excludes_training_and_validation_items():
    task = _task(eval_batch_size=7 * 60)  # blocks of 7 users
    model = _Table(task.num_users, task.num_items)
    split, U = task.split, task.num_users
    emb = model(task.edge_index).detach()
    train, valid = _pairs(split.train_index), _pairs(split.valid_index)
    seen_items = set(split.train_index[1].tolist())
    scores = emb[:U] @ emb[U:].t()
    for which, removed in (('valid', train), ('test', train | valid)):
        ranked, truth = task.rank(emb, which, 20)
        users = sorted(set(split.index(which)[0].tolist()))
        assert ranked.shape == (len(users), 20)
        assert {(users[r], i) for r, i in truth.t().tolist()} == \
            _pairs(split.index(which))
        for row, u in enumerate(users):
            allowed = [i for i in seen_items if (u, i) not in removed]
            best = sorted(allowed, key=lambda i: -float(scores[u, i]))[:20]
            assert ranked[row].tolist() == best
            assert not {(u, i) for i in ranked[row].tolist()} & removed


def test_evaluate_reports_every_metric_and_is_block_independent():
    task = _task()
    torch.manual_seed(0)
    model = _Table(task.num_users, task.num_items)
    res = task.evaluate(model)
    for which in ('valid', 'test'):
        for k in (10, 20):
            for m in ('recall', 'precision', 'f1', 'ndcg'):
                assert 0 <= res[f'{which}_{m}@{k}'] <= 1
        assert res[which] == res[f'{which}_ndcg@10']
    assert res['valid_loss'] > 0
    small = _task(eval_batch_size=1)
    assert small.evaluate(model) == pytest.approx(res)


def test_evaluate_matches_naive_reference():
    task = _task()
    torch.manual_seed(1)
    model = _Table(task.num_users, task.num_items)
    res = task.evaluate(model)
    split, U = task.split, task.num_users
    emb = model.embedding.weight.detach()
    scores = emb[:U] @ emb[U:].t()
    seen = set(split.train_index[1].tolist())
    removed = _pairs(split.train_index) | _pairs(split.valid_index)
    truth = {}
    for u, i in split.test_index.t().tolist():
        truth.setdefault(u, set()).add(i)
    ranked = {}
    for u in truth:
        allowed = [i for i in seen if (u, i) not in removed]
        ranked[u] = sorted(allowed, key=lambda i: -float(scores[u, i]))
    for k in (10, 20):
        ref = _naive_metrics(ranked, truth, k)
        for name, value in ref.items():
            assert res[f'test_{name}'] == pytest.approx(value, rel=1e-5)


def test_split_with_unseen_users_is_rejected():
    pairs = torch.tensor([[0, 0, 1, 2], [0, 1, 1, 2]])
    bundle = _bundle()
    bundle.random_split = lambda s: RecommendationSplit(
        pairs[:, :3], pairs[:, 3:], pairs[:, :0])
    task = make_task(bundle)
    with pytest.raises(ValueError, match='seen in training'):
        task.setup(bundle.split_for_run(0, 0))
    with pytest.raises(ValueError, match='outside'):
        task.setup(RecommendationSplit(torch.tensor([[0], [99]]),
                                       pairs[:, :0], pairs[:, :0]))


# ----------------------------------------------------------------------------
# LightGCN
# ----------------------------------------------------------------------------


def test_lightgcn_contract_and_pyg_equivalence():
    task = _task()
    torch.manual_seed(0)
    model = models.build('lightgcn', 'recommendation', **task.model_dims(),
                         embedding_dim=16, num_layers=3)
    assert isinstance(model, LightGCN)
    assert isinstance(model.embedding, torch.nn.Embedding)
    assert model.embedding.num_embeddings == 80 + 60
    assert repr(model) == ('LightGCN(num_users=80, num_items=60, '
                           'embedding_dim=16, num_layers=3)')
    out = model(task.edge_index)
    assert out.shape == (140, 16)
    # Same numbers as PyG's edge-wise LightGCN with tied weights.
    ref = PyGLightGCN(140, 16, 3)
    ref.embedding.weight.data.copy_(model.embedding.weight.data)
    assert torch.allclose(out, ref.get_embedding(task.edge_index),
                          atol=1e-6)
    # Every parameter gets a gradient.
    out.pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for p in model.parameters())


def test_lightgcn_cache_and_init():
    task = _task()
    model = LightGCN(80, 60, 8, 2, cached=True)
    ei = task.edge_index
    assert model.propagation_matrix(ei) is model.propagation_matrix(ei)
    other = ei[:, :10].clone()
    assert model.propagation_matrix(other)._nnz() == 10
    model.reset_parameters()
    assert model._cache is None
    torch.manual_seed(0)
    normal = LightGCN(200, 300, 64, init_std=0.1)
    assert normal.embedding.weight.std().item() == pytest.approx(0.1,
                                                                 rel=0.05)
    xavier = LightGCN(200, 300, 64)
    bound = math.sqrt(6 / (500 + 64))
    assert xavier.embedding.weight.abs().max() <= bound
    with pytest.raises(ValueError, match='num_users >= 1'):
        LightGCN(0, 5)
    with pytest.raises(ValueError, match='refers to node'):
        LightGCN(2, 2)(torch.tensor([[0], [9]]))
    with pytest.raises(ValueError, match='Unknown model|does not support'):
        models.build('lightgcn', 'node', in_channels=3, out_channels=2)


def test_task_rejects_model_without_embedding():
    task = _task()

    class NoTable(torch.nn.Module):
        def forward(self, edge_index):
            return torch.zeros(140, 4, requires_grad=True)

    with pytest.raises(TypeError, match="attribute 'embedding'"):
        task.loss(NoTable(), task.sample(8, epoch_generator(0, 1)))


# ----------------------------------------------------------------------------
# End to end through the one fit loop
# ----------------------------------------------------------------------------


def test_fit_lightgcn_improves_over_untrained(tmp_path):
    bundle = _bundle()
    cfg = RunConfig(
        data=DataConfig(name='toy-rec'),
        model=ModelConfig(name='lightgcn', num_layers=2, embedding_dim=16),
        optim=OptimConfig(lr=0.05),
        train=TrainConfig(epochs=15, runs=1, batch_size=64, progress=False),
        out=str(tmp_path / 'out'))
    summary = fit(cfg, bundle=bundle)
    # The untrained model of the same run (same seed, same split).
    from torch_geometric import seed_everything
    seed_everything(0)
    task = make_task(bundle)
    task.setup(bundle.split_for_run(0, 0))
    untrained = models.build('lightgcn', 'recommendation',
                             **task.model_dims(), **cfg.model.hparams())
    before = task.evaluate(untrained)
    assert summary.test_mean > before['test'] + 0.2
    assert summary.metric == 'ndcg@10'
    record = read_records(tmp_path / 'out' / 'runs.jsonl')[0]
    best = [h for h in record.history if h['epoch'] == record.best_epoch][0]
    assert best['test'] == record.test == best['test_ndcg@10']
    assert best['test_recall@20'] > before['test_recall@20']
