import torch

from graphkit.data import csbm, load
from graphkit.data.splits import (class_balanced_split, random_graph_split,
                                  random_link_split)


def _disjoint(*masks):
    total = torch.stack(masks).sum(0)
    return bool((total <= 1).all())


def test_class_balanced_split_rule():
    y = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    s = class_balanced_split(y, 0.6, 0.2, seed=3)
    per_class = round(0.6 * 100 / 3)  # 20 per class
    assert [int(s.train_mask[y == k].sum()) for k in range(3)] == [20] * 3
    assert s.sizes() == (3 * per_class, 20, 100 - 60 - 20)
    assert _disjoint(s.train_mask, s.val_mask, s.test_mask)
    assert bool((s.train_mask | s.val_mask | s.test_mask).all())


def test_class_balanced_split_small_class_goes_to_train():
    y = torch.tensor([0] * 90 + [1] * 10)
    s = class_balanced_split(y, 0.6, 0.2, seed=0)
    assert int(s.train_mask[y == 1].sum()) == 10


def test_split_is_seeded():
    y = torch.arange(90) % 3
    a = class_balanced_split(y, seed=1)
    b = class_balanced_split(y, seed=1)
    c = class_balanced_split(y, seed=2)
    assert torch.equal(a.train_mask, b.train_mask)
    assert not torch.equal(a.train_mask, c.train_mask)


def test_random_link_split_ratios_and_disjointness():
    data = csbm(num_nodes=200, avg_degree=10, seed=0)
    num_undirected = data.edge_index.size(1) // 2
    s = random_link_split(data, 0.1, 0.2, seed=0)
    assert s.valid_pos.size(1) == int(0.1 * num_undirected)
    assert s.test_pos.size(1) == int(0.2 * num_undirected)
    assert s.valid_neg.size(1) == s.valid_pos.size(1)
    key = lambda e: set(map(tuple, e.t().sort(dim=1).values.tolist()))
    train, val, test = key(s.train_pos), key(s.valid_pos), key(s.test_pos)
    assert not (train & val) and not (train & test) and not (val & test)
    assert len(train) + len(val) + len(test) == num_undirected
    # The message-passing graph holds exactly the training edges.
    assert key(s.edge_index) == train
    # Negatives are non-edges.
    assert not (key(s.test_neg) & (train | val | test))
    again = random_link_split(data, 0.1, 0.2, seed=0)
    assert torch.equal(again.test_pos, s.test_pos)


def test_random_graph_split_stratified():
    y = torch.tensor([0] * 60 + [1] * 40)
    s = random_graph_split(y, (0.8, 0.1, 0.1), seed=0)
    assert s.sizes() == (80, 10, 10)
    assert int((y[s.train_idx] == 1).sum()) == 32
    all_idx = torch.cat([s.train_idx, s.val_idx, s.test_idx])
    assert all_idx.unique().numel() == 100


def test_bundle_random_split_per_run():
    b = load('csbm', split='random')
    s0, s1 = b.split_for_run(0, 0), b.split_for_run(1, 1)
    assert not torch.equal(s0.train_mask, s1.train_mask)
    assert torch.equal(s0.train_mask, b.split_for_run(0, 0).train_mask)
