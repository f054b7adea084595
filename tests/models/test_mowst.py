import math

import pytest
import torch
import torch.nn.functional as F

from graphkit.cli import main
from graphkit.layers.mowst import (ConfidenceGate, ExpertOutputs, dispersion,
                                   mixture_log_probs, mowst_loss)
from graphkit.models import Mowst, build
from graphkit.pipelines import (DataConfig, ModelConfig, OptimConfig,
                                RunConfig, TrainConfig, fit)
from graphkit.pipelines.strategies import MowstStrategy
from graphkit.testing import permute_graph, tiny_graph


def test_dispersion_and_confidence_range():
    k = 4
    uniform = torch.zeros(3, k)
    assert torch.allclose(dispersion(uniform), torch.zeros(3, 2), atol=1e-6)
    peaked = torch.tensor([[60.0, 0, 0, 0]])
    assert torch.allclose(dispersion(peaked), torch.ones(1, 2), atol=1e-5)
    # variance dispersion by hand: Var(p) / Var(e_1)
    z = torch.tensor([[1.0, 0.0, -1.0, 2.0]])
    p = z.softmax(-1)[0]
    var = ((p - 1 / k) ** 2).mean() / ((k - 1) / k ** 2)
    ent = 1 + (p * p.log()).sum() / math.log(k)
    assert torch.allclose(dispersion(z)[0], torch.stack([var, ent]))
    gate = ConfidenceGate(8, 2).eval()
    c = gate(torch.randn(50, k) * 5)
    assert c.shape == (50, ) and bool((c >= 0).all() and (c <= 1).all())
    with pytest.raises(ValueError, match=r'\[N, K >= 2\]'):
        dispersion(torch.randn(5))


def test_loss_on_five_node_toy_by_hand():
    zw = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0], [3.0, -1.0],
                       [0.5, 0.0]])
    zs = torch.tensor([[0.0, 2.0], [1.0, 0.0], [2.0, 0.0], [0.0, 0.0],
                       [-1.0, 1.0]])
    c = torch.tensor([0.9, 0.2, 0.5, 1.0, 0.0])
    y = torch.tensor([0, 1, 0, 1, 1])
    total = 0.0
    for v in range(5):
        w, s_, t = zw[v].tolist(), zs[v].tolist(), int(y[v])
        pw = math.exp(w[t]) / sum(math.exp(a) for a in w)
        ps = math.exp(s_[t]) / sum(math.exp(a) for a in s_)
        cv = float(c[v])
        total += cv * -math.log(pw) + (1 - cv) * -math.log(ps)
    out = ExpertOutputs.from_confidence(zw, zs, c)
    assert float(mowst_loss(out, y)) == pytest.approx(total / 5, rel=1e-6)
    # Mowst*: one loss on the mixture; Jensen gives L >= L*
    star = F.nll_loss(mixture_log_probs(out), y)
    mix = c[:, None] * zw.softmax(-1) + (1 - c[:, None]) * zs.softmax(-1)
    assert float(star) == pytest.approx(
        float(-mix[torch.arange(5), y].log().mean()), rel=1e-6)
    assert float(mowst_loss(out, y)) >= float(star)
    # a saturated gate keeps finite gradients through the mixture
    t = torch.tensor([40.0, -40.0, 0.0, 200.0, -200.0], requires_grad=True)
    sat = ExpertOutputs.from_logit(zw, zs, t)
    F.nll_loss(mixture_log_probs(sat), y).backward()
    assert bool(torch.isfinite(t.grad).all())


def _model(star=False, **kw):
    torch.manual_seed(0)
    return build('mowst-star' if star else 'mowst', 'node', in_channels=3,
                 out_channels=3, hidden_channels=8, dropout=0.0, **kw)


def test_forced_confidence_gives_each_expert():
    data = tiny_graph()
    model = _model()
    assert isinstance(model, Mowst)
    model.eval()
    out = model.experts(data.x, data.edge_index)
    model.force_confidence = 1.0
    assert torch.allclose(model(data.x, data.edge_index),
                          out.weak.log_softmax(-1), atol=1e-6)
    model.force_confidence = 0.0
    assert torch.allclose(model(data.x, data.edge_index),
                          out.strong.log_softmax(-1), atol=1e-6)
    # sampling mode picks per node; with C forced it is deterministic too
    model.inference = 'sample'
    assert torch.allclose(model(data.x, data.edge_index),
                          out.strong.log_softmax(-1), atol=1e-6)
    model.force_confidence = None
    sampled = model(data.x, data.edge_index)
    for v in range(data.num_nodes):
        assert (torch.allclose(sampled[v], out.weak[v].log_softmax(-1))
                or torch.allclose(sampled[v], out.strong[v].log_softmax(-1)))


@pytest.mark.parametrize('star', [False, True])
def test_permutation_equivariance_and_probabilities(star):
    data = tiny_graph()
    model = _model(star, encoder='sage').eval()
    out = model(data.x, data.edge_index)
    assert torch.allclose(out.exp().sum(-1), torch.ones(data.num_nodes),
                          atol=1e-5)      # one softmax: a distribution
    perm = torch.randperm(data.num_nodes,
                          generator=torch.Generator().manual_seed(1))
    pdata = permute_graph(data, perm)
    assert torch.allclose(model(pdata.x, pdata.edge_index), out[perm],
                          atol=1e-5)


class _FullBatch:
    r"""A minimal node task for strategy steps on a tiny graph."""
    def __init__(self, data):
        self.data = data
        self.masks = {'train': torch.ones(data.num_nodes, dtype=torch.bool)}

    def train_outputs(self, model, batch, call=None):
        out = (call or model)(self.data.x, self.data.edge_index)
        return out, self.data.y


def _params(params):
    return [p.detach().clone() for p in params]


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


def test_frozen_expert_does_not_change_in_each_phase():
    data = tiny_graph()
    model = _model()
    strategy = MowstStrategy(model, lr=0.05, pretrain_epochs=1,
                             turn_epochs=2)
    assert [strategy.phase(e) for e in range(1, 7)] == [
        'pretrain', 'weak', 'weak', 'strong', 'strong', 'weak']
    task = _FullBatch(data)
    for epoch, frozen, moving in ((1, 'weak', 'strong'),
                                  (2, 'strong', 'weak'),
                                  (4, 'weak', 'strong')):
        strategy.begin_epoch(epoch)
        before_f = _params(getattr(model, f'{frozen}_parameters')())
        before_m = _params(getattr(model, f'{moving}_parameters')())
        assert math.isfinite(strategy.step(task, None)['loss'])
        assert _same(before_f, getattr(model, f'{frozen}_parameters')())
        assert not _same(before_m, getattr(model, f'{moving}_parameters')())
    with pytest.raises(ValueError, match="'mowst' strategy trains a Mowst"):
        MowstStrategy(_model(star=True))


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _equal_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_validated_turns_restore_best_and_roll_back():
    data = tiny_graph()
    model = _model()
    task = _FullBatch(data)
    s = MowstStrategy(model, lr=0.05, pretrain_epochs=5, turn_epochs=10,
                      turn_patience=2, big_patience=1)

    def epoch(e, valid):
        s.begin_epoch(e)
        s.step(task, None)
        snap = _state(model)
        return snap, s.end_epoch(e, {'valid': valid})

    # pretraining: evaluated as the strong expert alone, never selectable
    assert s.phase() == 'pretrain' and not s.selectable
    assert model.expert_only == 'strong'
    best_pre, _ = epoch(1, 0.6)
    epoch(2, 0.5)
    _, stop = epoch(3, 0.55)             # 2 evaluations without improvement
    assert not stop and s.phase() == 'weak' and s.selectable
    assert model.expert_only is None
    assert _equal_state(_state(model), best_pre)      # best weights restored
    # first weak turn: accepted, its best (second) epoch kept
    epoch(4, 0.3)
    best_weak, _ = epoch(5, 0.7)
    epoch(6, 0.65)
    epoch(7, 0.6)
    assert s.phase() == 'strong'
    assert _equal_state(_state(model), best_weak)
    assert s.turns[-1] == {'phase': 'weak', 'epochs': 4, 'best_valid': 0.7,
                           'accepted': True}
    # strong turn below 0.7: rolled back to the accepted weak turn
    epoch(8, 0.69)
    epoch(9, 0.5)
    _, stop = epoch(10, 0.5)
    assert _equal_state(_state(model), best_weak)
    assert not s.turns[-1]['accepted'] and s.phase() == 'weak'
    assert not stop          # that round had an accepted (weak) turn
    # a whole round without an accepted turn ends the run (big_patience=1)
    for e, v in ((11, 0.1), (12, 0.1), (13, 0.1)):
        _, stop = epoch(e, v)
    assert not stop and s.phase() == 'strong'
    for e, v in ((14, 0.2), (15, 0.2), (16, 0.2)):
        _, stop = epoch(e, v)
    assert stop and _equal_state(_state(model), best_weak)
    # the schedule survives a checkpoint
    clone = MowstStrategy(_model(), lr=0.05, pretrain_epochs=5,
                          turn_epochs=10, turn_patience=2, big_patience=1)
    clone.load_state_dict(s.state_dict())
    assert clone.phase() == s.phase() and clone.turns == s.turns
    assert clone.accepted == 0.7 and clone.bad_rounds == 1
    # turns also end at turn_epochs without running out of patience
    s2 = MowstStrategy(_model(), lr=0.05, turn_epochs=2, turn_patience=5)
    s2.end_epoch(1, {'valid': 0.1})
    s2.end_epoch(2, {'valid': 0.2})
    assert s2.phase() == 'strong' and s2.turns[0]['epochs'] == 2


def test_pretraining_has_its_own_patience():
    s = MowstStrategy(_model(), lr=0.05, pretrain_epochs=100,
                      turn_epochs=100, turn_patience=2, pretrain_patience=4)
    # pretraining ends after 4 evaluations without improvement, not 2
    for e, v in enumerate((0.5, 0.4, 0.4, 0.4), start=1):
        s.end_epoch(e, {'valid': v})
    assert s.phase() == 'pretrain'
    s.end_epoch(5, {'valid': 0.4})
    assert s.phase() == 'weak' and s.turns[0]['epochs'] == 5
    # the turns keep turn_patience
    for e in (6, 7):
        s.end_epoch(e, {'valid': 0.6 if e == 6 else 0.5})
    assert s.phase() == 'weak'
    s.end_epoch(8, {'valid': 0.5})
    assert s.phase() == 'strong' and s.turns[1]['epochs'] == 3
    # unset, pretraining uses turn_patience
    d = MowstStrategy(_model(), lr=0.05, pretrain_epochs=100,
                      turn_epochs=100, turn_patience=2)
    assert d.pretrain_patience == 2
    for e in (1, 2, 3):
        d.end_epoch(e, {'valid': 0.5})
    assert d.phase() == 'weak'
    for bad in ({'pretrain_patience': 0, 'turn_patience': 2},
                {'pretrain_patience': 3, 'turn_patience': 0}):
        with pytest.raises(ValueError, match='pretrain_patience'):
            MowstStrategy(_model(), pretrain_epochs=5, **bad)


@pytest.mark.parametrize('pretrain', ['weak', 'both'])
def test_pretraining_choice_trains_each_expert_alone(pretrain):
    data = tiny_graph()
    task = _FullBatch(data)
    model = _model()
    # fixed schedule: pretrain_epochs per pretrained expert, strong first
    s = MowstStrategy(model, lr=0.05, pretrain=pretrain, pretrain_epochs=2,
                      turn_epochs=1)
    experts = ['strong', 'strong', 'weak', 'weak'] if pretrain == 'both' \
        else ['weak', 'weak']
    n = len(experts)
    assert [s.pretrain_expert(e) for e in range(1, n + 2)] == experts + [
        None]
    assert [s.phase(e) for e in range(n, n + 3)] == [
        'pretrain', 'weak', 'strong']
    gate = _params(model.gate.parameters())
    for e, expert in enumerate(experts, start=1):
        s.begin_epoch(e)
        assert model.expert_only == expert
        other = 'weak' if expert == 'strong' else 'strong'
        before_o = _params(getattr(model, f'{other}_parameters')())
        before_e = _params(getattr(model, expert).parameters())
        # each expert is trained on its own cross-entropy (no dropout here)
        model.train()
        with torch.no_grad():
            own = (model.weak(data.x) if expert == 'weak' else
                   model.strong(data.x, data.edge_index))
        loss = s.step(task, None)['loss']
        assert loss == pytest.approx(float(F.cross_entropy(own, data.y)),
                                     rel=1e-5)
        assert _same(before_o, getattr(model, f'{other}_parameters')())
        assert not _same(before_e, getattr(model, expert).parameters())
    # the gate is not trained while the weak expert is pretrained
    assert _same(gate, model.gate.parameters())
    s.begin_epoch(n + 1)
    assert model.expert_only is None
    # validated schedule: one logged phase per pretrained expert
    v = MowstStrategy(_model(), lr=0.05, pretrain=pretrain,
                      pretrain_epochs=2, turn_epochs=5, turn_patience=5)
    for e in range(1, n + 1):
        v.end_epoch(e, {'valid': 0.5})
    assert [t.get('expert') for t in v.turns] == experts[::2]
    assert v.phase() == 'weak'
    with pytest.raises(ValueError, match="Unknown Mowst pretraining 'gnn'"):
        MowstStrategy(_model(), pretrain='gnn', pretrain_epochs=1)


def _dropouts(model):
    return sorted({m.p for m in model.modules()
                   if isinstance(m, torch.nn.Dropout)} |
                  {p for m in model.modules()
                   for p in (m.__dict__.get('dropout') or [])[:-1]})


@pytest.mark.parametrize('validated', [False, True])
def test_dropout_switches_after_pretraining(validated):
    def make():
        torch.manual_seed(0)
        return build('mowst', 'node', in_channels=3, out_channels=3,
                     hidden_channels=8, dropout=0.1, gate_dropout=0.2,
                     encoder='sage')
    model = make()
    kw = dict(turn_epochs=3, turn_patience=2) if validated else {}
    s = MowstStrategy(model, lr=0.05, pretrain_epochs=2, dropout=0.5, **kw)
    assert _dropouts(model) == [0.1, 0.2]     # pretraining: unchanged
    for e in (1, 2):
        s.begin_epoch(e)
        assert s.phase() == 'pretrain' and _dropouts(model) == [0.1, 0.2]
        s.end_epoch(e, {'valid': 0.5})
    s.begin_epoch(3)
    assert s.phase() == 'weak'
    assert _dropouts(model) == [0.5]          # both experts and the gate
    # resuming after pretraining rebuilds the model and switches it again
    state = s.state_dict()
    fresh = make()
    r = MowstStrategy(fresh, lr=0.05, pretrain_epochs=2, dropout=0.5, **kw)
    assert _dropouts(fresh) == [0.1, 0.2]
    r.load_state_dict(state)
    assert _dropouts(fresh) == [0.5]
    # unset: the model keeps its dropouts
    plain = make()
    p = MowstStrategy(plain, lr=0.05, pretrain_epochs=2)
    p.begin_epoch(3)
    assert p.phase() == 'weak' and _dropouts(plain) == [0.1, 0.2]
    with pytest.raises(ValueError, match='mowst_dropout'):
        MowstStrategy(make(), pretrain_epochs=2, dropout=1.2)


def test_minibatch_inference_skips_the_strong_expert():
    from graphkit.data import load
    from graphkit.pipelines.tasks import NodeTask
    bundle = load('csbm')
    task = NodeTask(bundle, batch_size=64, eval_batch_size=97,
                    num_neighbors=(5, 5))
    task.setup(bundle.split_for_run(0, 0))
    torch.manual_seed(0)
    model = build('mowst', 'node', in_channels=bundle.num_features,
                  out_channels=bundle.num_classes, encoder='sage',
                  hidden_channels=16, dropout=0.0, inference='sample')
    model.eval()
    data = bundle.data
    with torch.no_grad():
        full = model.sample(model.experts(data.x, data.edge_index))
        conf = model.experts(data.x, data.edge_index).confidence
    seen = []
    model.strong.register_forward_hook(
        lambda mod, args, out: seen.append(out.size(0)))
    out = task.predict(model)                  # conditional, mini-batch
    assert torch.allclose(out, full, atol=1e-5)
    q = torch.rand(data.num_nodes,
                   generator=torch.Generator().manual_seed(0))
    share = float((conf < q).float().mean())
    assert 0.0 < share < 1.0
    assert model.last_strong_share == pytest.approx(share)
    seen.clear()
    model.force_confidence = 1.0     # the weak expert keeps every node
    out = task.predict(model)
    assert seen == [] and model.last_strong_share == 0.0
    assert torch.allclose(out, model.weak(data.x).log_softmax(-1))
    model.inference = 'expectation'  # the task's usual inference
    assert torch.allclose(task.predict(model), out, atol=1e-5)


@pytest.mark.parametrize('name,batch', [('mowst', None), ('mowst-star', None),
                                        ('mowst', 64)])
def test_mowst_through_the_pipeline(tmp_path, name, batch):
    cfg = RunConfig(
        data=DataConfig(name='csbm'),
        model=ModelConfig(name=name, encoder='sage', hidden_channels=16,
                          dropout=0.2),
        optim=OptimConfig(lr=0.01),
        train=TrainConfig(epochs=20, runs=1, batch_size=batch,
                          mowst_pretrain_epochs=4, mowst_turn_epochs=4,
                          progress=False),
        out=str(tmp_path))
    s = fit(cfg)
    assert s.test_mean > 0.7, s.line()
    share = s.extra['test_weak_share'][0]
    assert 0.0 <= share <= 1.0


def test_cli_reports_the_backbone_alone_and_plots(tmp_path, capsys):
    code = main(['run', '--model', 'mowst', '--backbone', 'sage',
                 '--dataset', 'karate', '--epochs', '6', '--runs', '2',
                 '--out', str(tmp_path), '--no-progress', '--plot',
                 '--set', 'model.hidden_channels=8'])
    assert code == 0
    out = capsys.readouterr().out
    assert '| mowst | karate | accuracy | 2 |' in out
    assert '| sage | karate | accuracy | 2 |' in out     # same run
    assert 'weak_share' in out
    assert (tmp_path / 'confidence.png').is_file()
    assert (tmp_path / 'baseline-sage' / 'runs.jsonl').is_file()


@pytest.mark.parametrize('patience', [0, 50])
def test_budget_ending_in_pretraining_is_an_error(tmp_path, patience):
    # fixed schedule: refused before training; validated: after the run,
    # instead of a result with no selected epoch (NaN accuracy)
    cfg = RunConfig(
        data=DataConfig(name='csbm'),
        model=ModelConfig(name='mowst', encoder='sage', hidden_channels=8),
        train=TrainConfig(epochs=6, runs=1, mowst_pretrain_epochs=10,
                          mowst_turn_patience=patience, progress=False),
        out=str(tmp_path))
    with pytest.raises(ValueError, match='mowst_pretrain_epochs=10'):
        fit(cfg)
    runs = tmp_path / 'runs.jsonl'
    assert not runs.is_file() or runs.read_text() == ''


def test_cli_names_the_pretraining_budget(tmp_path, capsys):
    code = main(['run', '--model', 'mowst', '--backbone', 'sage',
                 '--dataset', 'karate', '--epochs', '3', '--runs', '1',
                 '--out', str(tmp_path), '--no-progress',
                 '--set', 'train.mowst_pretrain_epochs=5'])
    assert code == 2
    err = capsys.readouterr().err
    assert 'train.epochs=3 ends inside pretraining' in err
