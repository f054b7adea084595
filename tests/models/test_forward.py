import pytest
import torch
import torch.nn.functional as F
from torch_geometric.nn import GATConv, GCNConv, SAGEConv

from graphkit.layers.forward import (add_class_virtual_nodes,
                                     cached_propagation, ff_loss, goodness,
                                     prototype_loss, row_normalize)
from graphkit.models.forward import ForwardLearner
from graphkit.pipelines import (DataConfig, ModelConfig, OptimConfig,
                                RunConfig, TrainConfig, fit)
from graphkit.pipelines.strategies import ForwardFFVN, ForwardSF
from graphkit.testing import permute_graph, tiny_graph
from graphkit.testing.dense import dense_gcn_layer


class _Task:
    r"""A minimal full-batch node task on a tiny graph."""
    kind = 'node'
    higher_is_better = True

    def __init__(self, data, train):
        self.data = data
        self.masks = {'train': train}


def _learner(convs, data, classes=2, tau=1.0):
    torch.manual_seed(0)
    return ForwardLearner(torch.nn.ModuleList(convs), data.x.size(1),
                          classes, tau=tau)


def test_virtual_nodes_add_c_nodes_and_both_edge_directions():
    data = tiny_graph()
    virtual = torch.randn(3, 3)
    nodes, classes = torch.tensor([0, 3, 4]), torch.tensor([0, 1, 2])
    x, ei = add_class_virtual_nodes(data.x, data.edge_index, virtual, nodes,
                                    classes)
    assert x.shape == (6 + 3, 3) and torch.equal(x[6:], virtual)
    assert torch.equal(ei[:, :data.edge_index.size(1)], data.edge_index)
    extra = {tuple(e) for e in ei[:, data.edge_index.size(1):].t().tolist()}
    assert ei.size(1) == data.edge_index.size(1) + 2 * 3
    assert extra == {(0, 6), (6, 0), (3, 7), (7, 3), (4, 8), (8, 4)}
    with pytest.raises(ValueError, match=r'classes must lie in \[0, 3\)'):
        add_class_virtual_nodes(data.x, data.edge_index, virtual, nodes,
                                torch.tensor([0, 1, 3]))
    with pytest.raises(ValueError, match='virtual node features'):
        add_class_virtual_nodes(data.x, data.edge_index, torch.randn(3, 2),
                                nodes, classes)


@pytest.mark.parametrize('make', [
    lambda: GCNConv(3, 4),
    lambda: GCNConv(3, 4, normalize=False),
    lambda: GCNConv(3, 4, add_self_loops=False, bias=False),
    lambda: SAGEConv(3, 4),
    lambda: SAGEConv(3, 4, aggr='sum', normalize=True),
    lambda: SAGEConv(3, 4, root_weight=False)])
def test_cached_propagation_equals_the_layer(make):
    torch.manual_seed(0)
    conv = make()
    data = tiny_graph()
    x = torch.randn(6, 3)
    ei = torch.cat([data.edge_index, torch.tensor([[0], [1]])], 1)  # dup
    fn = cached_propagation(conv, x, ei)
    assert fn is not None
    assert torch.allclose(fn(), conv(x, ei), atol=1e-6)
    # after a weight update the cache still gives the layer's output
    with torch.no_grad():
        for p in conv.parameters():
            p.add_(0.1)
    assert torch.allclose(fn(), conv(x, ei), atol=1e-6)
    # not cacheable: attention depends on the weights
    assert cached_propagation(GATConv(3, 4), x, ei) is None


@pytest.mark.parametrize('make', [lambda f: GCNConv(f, 4),
                                  lambda f: SAGEConv(f, 4)])
def test_wide_cached_propagation_by_column_blocks_and_in_place(make):
    # 600 input columns: three column blocks of the aggregation
    torch.manual_seed(0)
    conv = make(600)
    data = tiny_graph()
    x = torch.randn(6, 600)
    ref = conv(x, data.edge_index)
    fn = cached_propagation(conv, x.clone(), data.edge_index)
    assert torch.allclose(fn(), ref, atol=1e-5)
    fresh = x.clone()
    fn = cached_propagation(conv, fresh, data.edge_index, inplace=True)
    assert torch.allclose(fn(), ref, atol=1e-5)
    if isinstance(conv, GCNConv):   # the aggregation took x's buffer
        assert not torch.equal(fresh, x)


def test_normalized_input_propagation_equals_the_layer_and_its_gradient():
    # conv(row_normalize(cat([x, v]))) without stacking: same values and
    # the same weight gradients, with and without GCN normalisation
    from graphkit.layers.forward import normalized_input_propagation
    data = tiny_graph()
    ei = torch.cat([data.edge_index, torch.tensor([[6, 0], [0, 6]])], 1)
    x, v = torch.randn(6, 20), torch.randn(2, 20)
    x[2] = 0.0                                        # a zero row
    for kwargs in ({}, {'normalize': False}, {'add_self_loops': False}):
        torch.manual_seed(0)
        conv = GCNConv(20, 4, **kwargs)
        ref = conv(row_normalize(torch.cat([x, v])), ei)
        ref.square().sum().backward()
        grads = [p.grad.clone() for p in conv.parameters()]
        conv.zero_grad()
        out = normalized_input_propagation(conv, [x, v], ei)()
        assert torch.allclose(out, ref, atol=1e-5), kwargs
        out.square().sum().backward()
        for g, p in zip(grads, conv.parameters()):
            assert torch.allclose(p.grad, g, atol=1e-5), kwargs
    assert normalized_input_propagation(SAGEConv(20, 4), [x, v], ei) is None


def test_wide_input_training_matches_the_uncached_stack():
    # 20 features into 8 channels: SF's first layer runs on the unstacked
    # input; the losses, the weights and the cached evaluation must match
    # training without any cache
    torch.manual_seed(0)
    data = tiny_graph()
    data.x = torch.randn(6, 20)
    train = torch.tensor([True, True, False, True, True, False])
    runs = {}
    for cache in (True, False):
        torch.manual_seed(1)
        model = _learner([GCNConv(20, 8), GCNConv(8, 8)], data)
        s = ForwardSF(model, lr=0.05, epochs=100, layer_epochs=4,
                      patience=0, cache=cache)
        task = _Task(data, train)
        task.batch_size = None
        task.predict = lambda m, call: call(data.x, data.edge_index)
        trace, preds = [], []
        for epoch in range(1, 9):
            trace.append(s.step(task, None)['loss'])
            if cache:
                assert s._input[0][0][0] is None or s.current > 0
            model.eval()
            preds.append(model.task_predict(task))
            s.end_epoch(epoch, {'valid': float(epoch)})
        runs[cache] = (torch.tensor(trace), torch.stack(preds),
                       [p.detach().clone() for p in model.parameters()])
    assert torch.allclose(runs[True][0], runs[False][0], atol=1e-5)
    assert torch.allclose(runs[True][1], runs[False][1], atol=1e-5)
    for a, b in zip(runs[True][2], runs[False][2]):
        assert torch.allclose(a, b, atol=1e-5)


def test_layer_against_dense_reference_and_losses_by_hand():
    data = tiny_graph()
    conv = GCNConv(3, 4)
    model = _learner([conv], data)
    model.set_labels(torch.tensor([0, 4]), torch.tensor([0, 1]))
    xa, ea = model.augment(data.x, data.edge_index)
    h = model.layer(0, xa, ea)
    ref = F.relu(dense_gcn_layer(row_normalize(xa), ea, conv.lin.weight,
                                 conv.bias))
    assert torch.allclose(h, ref, atol=1e-5)
    # SF loss: softmax cross-entropy of <h_i, c_k>
    logits = h[[0, 4]] @ h[6:].t()
    manual = -(logits.log_softmax(-1)[[0, 1], [0, 1]]).mean()
    assert torch.allclose(prototype_loss(h[[0, 4]], h[6:],
                                         torch.tensor([0, 1])), manual)
    # FF loss: BCE on the goodness minus theta
    hp, hn = torch.randn(5, 4), torch.randn(5, 4)
    g_pos, g_neg = (hp ** 2).sum(1) - 2.0, (hn ** 2).sum(1) - 2.0
    manual = (-F.logsigmoid(g_pos).mean() - F.logsigmoid(-g_neg).mean())
    assert torch.allclose(goodness(hp), (hp ** 2).sum(1))
    assert torch.allclose(ff_loss(hp, [hn]), manual, atol=1e-6)


def _assert_equivariant(model, data, train, classes=2):
    r"""Relabelling the nodes permutes the predictions alike."""
    model.set_labels(train, data.y[train])
    model.eval()
    out = model(data.x, data.edge_index)
    assert out.shape == (6, classes)
    assert torch.allclose(out.exp().sum(-1), torch.ones(6), atol=1e-5)
    perm = torch.randperm(6, generator=torch.Generator().manual_seed(3))
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(6)
    pdata = permute_graph(data, perm)
    model.set_labels(inv[train], data.y[train])
    assert torch.allclose(model(pdata.x, pdata.edge_index), out[perm],
                          atol=1e-5)
    model.set_labels(train, data.y[train])
    return out


def test_permutation_equivariance():
    data = tiny_graph()
    model = _learner([GCNConv(3, 8), SAGEConv(8, 8)], data)
    _assert_equivariant(model, data, torch.tensor([0, 1, 3, 4]))


def test_each_layer_learns_only_from_its_own_loss():
    data = tiny_graph()
    train = torch.tensor([True, True, False, True, True, False])
    model = _learner([GCNConv(3, 8), GCNConv(8, 8), GCNConv(8, 8)], data)
    strategy = ForwardSF(model, lr=0.01, epochs=30, patience=0, cache=False)
    task = _Task(data, train)
    strategy.current = 1
    model.active.fill_(2)
    # the layer below computes NaN from now on: had a gradient (or a
    # value needing one) flowed into it, layer 1 would see NaN
    strategy._prepare(task)
    with torch.no_grad():
        for p in model.convs[0].parameters():
            p.fill_(float('nan'))
    for p in model.parameters():
        p.grad = None
    before = [p.detach().clone() for p in model.convs[1].parameters()]
    out = strategy.step(task, None)
    assert torch.isfinite(torch.tensor(out['loss']))
    assert all(p.grad is None for p in model.convs[0].parameters())
    assert all(p.grad is None for p in model.convs[2].parameters())
    grads = [p.grad.clone() for p in model.convs[1].parameters()]
    assert all(torch.isfinite(g).all() for g in grads)
    # the gradient is exactly that of layer 1's local loss on its input
    copies, n = strategy._input
    h, ea, _ = copies[0]
    with torch.no_grad():
        for p, b in zip(model.convs[1].parameters(), before):
            p.copy_(b)
    local = F.relu(model.convs[1](h, ea))
    nodes = train.nonzero().view(-1)
    loss = prototype_loss(local[nodes], local[n:], data.y[nodes])
    ref = torch.autograd.grad(loss, list(model.convs[1].parameters()))
    assert all(torch.allclose(g, r, atol=1e-6) for g, r in zip(grads, ref))


def test_cached_and_uncached_training_agree():
    data = tiny_graph()
    train = torch.tensor([True, True, False, True, True, False])
    losses = {}
    for cache in (True, False):
        model = _learner([GCNConv(3, 8), SAGEConv(8, 8)], data)
        s = ForwardSF(model, lr=0.05, epochs=8, patience=0, cache=cache)
        task = _Task(data, train)
        trace = []
        for epoch in range(1, 9):
            trace.append(s.step(task, None)['loss'])
            s.end_epoch(epoch, None)
        losses[cache] = torch.tensor(trace)
    assert torch.allclose(losses[True], losses[False], atol=1e-5)


def test_greedy_schedule_restores_best_and_finishes():
    data = tiny_graph()
    train = torch.tensor([True, True, False, True, True, False])
    model = _learner([GCNConv(3, 8), GCNConv(8, 8)], data)
    s = ForwardSF(model, lr=0.05, epochs=100, layer_epochs=10, patience=2)
    task = _Task(data, train)
    assert s.current == 0 and int(model.active) == 1 and not s.selectable
    snaps = []
    for epoch, valid in enumerate((0.5, 0.8, 0.7, 0.6), 1):
        s.step(task, None)
        snaps.append({k: v.clone()
                      for k, v in model.convs[0].state_dict().items()})
        done = s.end_epoch(epoch, {'valid': valid})
    assert not done and s.current == 1 and int(model.active) == 2
    assert s.selectable
    # the frozen layer keeps no gradients or optimiser moments
    assert all(p.grad is None for p in model.convs[0].parameters())
    assert not s.opts[0].state and s.opts[1].state == {}
    s.step(task, None)
    assert s.opts[1].state and not s.opts[0].state
    # layer 1's input came from one pass of layer 0 over its own input:
    # the same as running the frozen stack from scratch
    incremental = s._input[0][0][2]()
    s._input = None
    s._prepare(task)
    assert torch.allclose(incremental, s._input[0][0][2](), atol=1e-5)
    assert all(torch.equal(v, snaps[1][k])
               for k, v in model.convs[0].state_dict().items())
    assert s.layers_log[0] == {'layer': 0, 'epochs': 4, 'best_valid': 0.8}
    clone = ForwardSF(_learner([GCNConv(3, 8), GCNConv(8, 8)], data),
                      layer_epochs=10, patience=2)
    clone.load_state_dict(s.state_dict())
    assert clone.current == 1 and int(clone.model.active) == 2
    for epoch in range(5, 15):
        s.step(task, None)
        done = s.end_epoch(epoch, None)       # no evaluations: 10 epochs
        if done:
            break
    assert done and epoch == 14 and len(s.layers_log) == 2


def test_cached_evaluation_equals_the_full_forward():
    # While a layer trains, SF's evaluation reuses the frozen layers'
    # probabilities and the current layer's cached input; it must give
    # exactly what running the whole stack gives, for cached (GCN, SAGE)
    # and uncached (GAT) layers, and only on the graph it was built from.
    data = tiny_graph()
    train = torch.tensor([True, True, False, True, True, False])
    model = _learner([GCNConv(3, 8), SAGEConv(8, 8), GATConv(8, 8)], data,
                     classes=3)
    s = ForwardSF(model, lr=0.05, epochs=100, layer_epochs=3, patience=0)
    task = _Task(data, train)
    task.batch_size = None
    task.predict = lambda m, call: call(task.data.x, task.data.edge_index)
    seen = set()
    for epoch in range(1, 10):
        s.step(task, None)
        assert model.eval_cache is not None
        model.eval()
        cached = model.task_predict(task)
        assert torch.allclose(cached, model(data.x, data.edge_index),
                              atol=1e-5)
        seen.add(s.current)
        done = s.end_epoch(epoch, {'valid': float(epoch)})
    assert done and seen == {0, 1, 2} and model.eval_cache is None
    # another graph (same shapes, other tensors) is never served the cache
    s2 = ForwardSF(model, lr=0.05, epochs=100, layer_epochs=3, patience=0)
    s2.step(task, None)
    other = _Task(data.clone(), train)
    other.batch_size = None
    other.data.edge_index = data.edge_index[:, :4]
    other.predict = lambda m, call: call(other.data.x,
                                         other.data.edge_index)
    model.eval()
    assert torch.allclose(model.task_predict(other),
                          model(other.data.x, other.data.edge_index))
    assert not torch.allclose(model.task_predict(other),
                              model.task_predict(task))


def test_pipeline_cli_flags_and_determinism(tmp_path):
    def run(out, strategy='forward-sf', model='gcn'):
        cfg = RunConfig(
            data=DataConfig(name='csbm'),
            model=ModelConfig(name=model, hidden_channels=16, num_layers=2),
            optim=OptimConfig(lr=0.01, weight_decay=5e-4),
            train=TrainConfig(epochs=40, runs=1, strategy=strategy,
                              forward_patience=5, progress=False),
            out=str(tmp_path / out))
        return fit(cfg)
    a, b = run('a'), run('b')
    assert a.test_mean == b.test_mean and a.test_mean > 0.7, a.line()
    assert a.records[0].history == b.records[0].history
    assert run('sage', model='sage').test_mean > 0.7
    with pytest.raises(ValueError, match="has none"):
        run('mlp', model='mlp')


def test_errors():
    data = tiny_graph()
    with pytest.raises(TypeError, match='trains a ForwardLearner'):
        ForwardSF(torch.nn.Linear(2, 2))
    model = _learner([GCNConv(3, 8)], data)
    s = ForwardSF(model)
    with pytest.raises(ValueError, match='full-batch'):
        s.step(_Task(data, torch.ones(6, dtype=torch.bool)), object())


def test_ff_inputs_and_negative_copies():
    data = tiny_graph()
    torch.manual_seed(0)
    la = ForwardLearner(torch.nn.ModuleList([GCNConv(3 + 3, 8)]), 3, 3,
                        variant='ff-la')
    la.set_labels(torch.tensor([0, 3]), torch.tensor([2, 1]))
    x, ei = la.inputs(data.x, data.edge_index)
    assert x.shape == (6, 6) and torch.equal(ei, data.edge_index)
    assert torch.equal(x[:, :3], data.x)
    assert torch.equal(x[0, 3:], torch.tensor([0., 0., 1.]))
    assert torch.equal(x[3, 3:], torch.tensor([0., 1., 0.]))
    assert torch.allclose(x[1, 3:], torch.full((3, ), 1 / 3))
    vn = ForwardLearner(torch.nn.ModuleList([GCNConv(3, 8)]), 3, 3,
                        variant='ff-vn')
    vn.set_labels(torch.tensor([0, 3]), torch.tensor([2, 1]))
    s = ForwardFFVN(vn, epochs=5)
    known = vn.known(6)
    copies = s._assignments(known)
    assert len(copies) == 3 and torch.equal(copies[0], known)
    for node, y in ((0, 2), (3, 1)):
        wrong = {int(c[node]) for c in copies[1:]}
        assert wrong == set(range(3)) - {y}   # every wrong class once
    for c in copies[1:]:         # unlabelled nodes stay unassigned
        assert torch.equal(c[[1, 2, 4, 5]], known[[1, 2, 4, 5]])
    with pytest.raises(ValueError, match='Unknown forward-learning variant'):
        ForwardLearner(torch.nn.ModuleList([GCNConv(3, 8)]), 3, 3,
                       variant='ff')


@pytest.mark.parametrize('variant', ['ff-vn', 'ff-la'])
def test_ff_prediction_is_equivariant_and_uses_goodness(variant):
    data = tiny_graph()
    torch.manual_seed(0)
    first = 3 + 2 if variant == 'ff-la' else 3
    model = ForwardLearner(torch.nn.ModuleList(
        [GCNConv(first, 8), GCNConv(8, 8)]), 3, 2, variant=variant)
    out = _assert_equivariant(model, data, torch.tensor([0, 4]))
    # class 1's score: the goodness with every unlabelled node assigned 1
    assign = torch.tensor([0, 1, 1, 1, 1, 1])
    score = sum(h[:6].pow(2).mean(-1) - 2.0 for h in
                model.states(data.x, data.edge_index, 2, assign))
    assign[[1, 2, 3, 5]] = 0
    score0 = sum(h[:6].pow(2).mean(-1) - 2.0 for h in
                 model.states(data.x, data.edge_index, 2, assign))
    assert torch.allclose(out, torch.stack([score0, score], 1)
                          .log_softmax(-1), atol=1e-5)


def test_link_form_scores_and_pipeline(tmp_path):
    from graphkit.models.forward import ForwardLinkLearner
    data = tiny_graph()
    torch.manual_seed(0)
    model = ForwardLinkLearner(torch.nn.ModuleList(
        [GCNConv(3, 8), GCNConv(8, 8)]), 'ce')
    h = model.encode(data.x, data.edge_index)
    assert h.shape == (2, 6, 8)
    pairs = torch.tensor([[0, 1, 5], [2, 4, 3]])
    p = torch.stack([torch.sigmoid((z[pairs[0]] * z[pairs[1]]).sum(-1))
                     for z in h]).mean(0)
    assert torch.allclose(torch.sigmoid(model.decode(h, pairs)), p,
                          atol=1e-5)
    ff = ForwardLinkLearner(model.convs, 'ff', theta=2.0)
    z = h[0]
    assert torch.allclose(ff.pair_scores(z, pairs),
                          ((z[pairs[0]] * z[pairs[1]]) ** 2).sum(-1) - 2.0)
    cfg = RunConfig(
        data=DataConfig(name='csbm', task='link', metric='auc'),
        model=ModelConfig(name='gcn', hidden_channels=32, num_layers=2,
                          dropout=0.0),
        optim=OptimConfig(lr=0.01, weight_decay=5e-4),
        train=TrainConfig(epochs=30, runs=1, strategy='forward-sf',
                          forward_patience=0, progress=False),
        out=str(tmp_path))
    s = fit(cfg)
    assert s.test_mean > 0.7, s.line()


def _topdown(form, layers=2):
    from graphkit.models.forward import TopDownLearner
    torch.manual_seed(0)
    widths = TopDownLearner.input_widths(3, 8, 2, layers, form)
    convs = torch.nn.ModuleList([GCNConv(w, 8) for w in widths])
    return TopDownLearner(convs, 3, 2, 8, form=form, test_steps=4)


def test_topdown_inputs_widths_and_equivariance():
    from graphkit.models.forward import TopDownLearner
    assert TopDownLearner.input_widths(3, 8, 2, 3) == [3 + 8, 8 + 8, 8 + 2]
    assert TopDownLearner.input_widths(3, 8, 2, 3, 'loss') == [3, 8, 8]
    data = tiny_graph()
    train = torch.tensor([0, 4])
    for form in ('input', 'loss'):
        model = _topdown(form)
        model.set_labels(train, data.y[train])
        xa, ea, y = model.inputs(data.x, data.edge_index)
        assert xa.shape == (8, 3) and y.shape == (8, 2)
        assert torch.equal(y[0], torch.tensor([1., 0.]))
        assert torch.equal(y[4], torch.tensor([0., 1.]))
        assert torch.equal(y[1], torch.tensor([.5, .5]))
        assert torch.equal(y[6:], torch.eye(2))
        states = model.bottom_up(xa, ea, y)
        inp = model.layer_input(0, states, xa, y)
        assert not inp.requires_grad                    # detached input
        if form == 'input':    # [norm(x) || norm(h^1)]
            assert inp.shape == (8, 3 + 8)
            assert torch.allclose(inp[:, 3:], row_normalize(states[1]))
        _assert_equivariant(model, data, train)


@pytest.mark.parametrize('form', ['input', 'loss'])
def test_topdown_layers_keep_their_own_gradients(form):
    from graphkit.pipelines.strategies import (ForwardTopDown,
                                               ForwardTopDownLoss)
    data = tiny_graph()
    model = _topdown(form, layers=3)
    cls = ForwardTopDown if form == 'input' else ForwardTopDownLoss
    s = cls(model, lr=0.01)
    at_own_step = _spy_on_layer_steps(s, model)
    task = _Task(data, torch.tensor([True, True, False, True, True, False]))
    out = s.step(task, None)
    assert torch.isfinite(torch.tensor(out['loss']))
    assert sorted(at_own_step) == [0, 1, 2]
    # no later layer's loss added anything to an earlier layer's gradient
    for i, conv in enumerate(model.convs):
        assert all(torch.equal(p.grad, g) for p, g in
                   zip(conv.parameters(), at_own_step[i]))
    assert len(s.states) == 3 and not any(h.requires_grad for h in s.states)


def _spy_on_layer_steps(strategy, model):
    r"""Records each layer's gradients at the moment its own optimiser
    steps: ``{layer: [grads]}``."""
    at_own_step = {}
    for i, opt in enumerate(strategy.opts):
        def spy(*a, _i=i, _step=opt.step, **k):
            at_own_step[_i] = [p.grad.clone()
                               for p in model.convs[_i].parameters()]
            return _step(*a, **k)
        opt.step = spy
    return at_own_step


def test_topdown_link_form_inputs_gradients_and_pipeline(tmp_path):
    from graphkit.models.forward import TopDownLinkLearner
    from graphkit.pipelines.strategies import ForwardTopDown
    assert TopDownLinkLearner.input_widths(3, 8, 3) == [11, 16, 8]
    data = tiny_graph()
    torch.manual_seed(0)
    model = TopDownLinkLearner(torch.nn.ModuleList(
        [GCNConv(11, 8), GCNConv(16, 8), GCNConv(8, 8)]), 8, test_steps=4)
    states = model.bottom_up(data.x, data.edge_index)
    # layer 1 reads [norm(z0) || norm(z2)], the top layer z1 alone
    inp = model.layer_input(1, states, data.x)
    assert torch.allclose(inp, torch.cat([row_normalize(states[0]),
                                          row_normalize(states[2])], 1))
    assert torch.allclose(model.layer_input(2, states, data.x),
                          row_normalize(states[1]))
    h = model.encode(data.x, data.edge_index)
    assert h.shape == (2 * 3, 6, 8)     # steps 2 and 3, three layers each
    # each layer's gradient comes from its own loss only
    s = ForwardTopDown(model, lr=0.01)
    assert all(g['weight_decay'] == 0.0 for o in s.opts
               for g in o.param_groups)
    at_own_step = _spy_on_layer_steps(s, model)

    class LinkTask:
        kind = 'link'
        x, adj, edge_index, num_nodes = (data.x, data.edge_index,
                                         data.edge_index, 6)
        train_pos = data.edge_index
    out = s.step(LinkTask(), torch.arange(data.edge_index.size(1)))
    assert torch.isfinite(torch.tensor(out['loss']))
    assert sorted(at_own_step) == [0, 1, 2]
    for i, conv in enumerate(model.convs):
        assert all(torch.equal(p.grad, g) for p, g in
                   zip(conv.parameters(), at_own_step[i]))
    cfg = RunConfig(
        data=DataConfig(name='csbm', task='link', metric='auc'),
        model=ModelConfig(name='gcn', hidden_channels=32, num_layers=2,
                          dropout=0.0),
        optim=OptimConfig(lr=0.01),
        train=TrainConfig(epochs=30, runs=1, strategy='forward-topdown',
                          progress=False),
        out=str(tmp_path))
    assert fit(cfg).test_mean > 0.7
    cfg.train.strategy = 'forward-topdown-loss'
    with pytest.raises(ValueError, match='node classification'):
        fit(cfg)


@pytest.mark.parametrize('strategy,epochs', [
    ('forward-ff-vn', 60), ('forward-ff-la', 60), ('forward-topdown', 40),
    ('forward-topdown-loss', 40)])
def test_ff_and_topdown_train_through_the_pipeline(tmp_path, strategy,
                                                   epochs):
    cfg = RunConfig(
        data=DataConfig(name='csbm'),
        model=ModelConfig(name='gcn', hidden_channels=32, num_layers=2),
        optim=OptimConfig(lr=0.05, weight_decay=5e-4),
        train=TrainConfig(epochs=epochs, runs=1, strategy=strategy,
                          forward_patience=0, progress=False),
        out=str(tmp_path))
    s = fit(cfg)
    assert s.test_mean > 0.8, s.line()      # 3 classes: chance is 1/3


def test_cli_uses_the_forward_protocol_and_compares_with_backprop():
    from graphkit.cli import (backprop_baseline_config, build_parser,
                              config_from_args)
    for strategy in ('forward-sf', 'forward-topdown', 'forward-ff-la'):
        args = build_parser().parse_args(
            ['run', '--model', 'sage', '--strategy', strategy, '--layers',
             '4', '--dataset', 'citeseer'])
        cfg = config_from_args(args)
        assert cfg.train.strategy == strategy
        assert (cfg.model.name, cfg.model.num_layers) == ('sage', 4)
        assert cfg.data.ratios == (0.64, 0.16, 0.2) and cfg.train.runs == 5
        base = backprop_baseline_config(cfg)
        assert base.train.strategy == 'backprop' and base.data == cfg.data
    # links: the backprop side scores pairs by a dot product, as SF does
    args = build_parser().parse_args(
        ['run', '--preset', 'forward-sf-link-citeseer', '--layers', '4'])
    base = backprop_baseline_config(config_from_args(args))
    assert base.model.decoder == 'dot' and base.data.task == 'link'
    assert base.model.num_layers == 4
