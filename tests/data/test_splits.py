import pytest
import torch

from graphkit.data import csbm, load
from graphkit.data.splits import (class_balanced_split, filter_unseen,
                                  holdout_interaction_split,
                                  random_graph_split,
                                  random_interaction_split,
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


def _pairs(index):
    return set(map(tuple, index.t().tolist()))


def _interactions(seed=0, users=40, items=30, n=400):
    gen = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(users, (n, ), generator=gen),
                        torch.randint(items, (n, ), generator=gen)])


def test_random_interaction_split_sizes_and_filters():
    raw = _interactions()
    # Users 100 and 101 (and item 50) have one interaction each: wherever
    # they land outside training, they are filtered out.
    raw = torch.cat([raw, torch.tensor([[100, 101], [0, 50]])], dim=1)
    unique = _pairs(raw)
    s = random_interaction_split(raw, (0.8, 0.1, 0.1), seed=3)
    train, valid, test = (_pairs(s.train_index), _pairs(s.valid_index),
                          _pairs(s.test_index))
    n = len(unique)
    assert len(train) == s.train_index.size(1) == round(0.8 * n)
    assert not (train & valid) and not (train & test) and not (valid & test)
    assert train | valid | test <= unique
    assert s.valid_index.size(1) <= round(0.1 * n)
    # Filtering drops exactly the pairs with an unseen user or item.
    users = {u for u, _ in train}
    items = {i for _, i in train}
    assert all(u in users and i in items for u, i in valid | test)
    perm = torch.randperm(len(unique),
                          generator=torch.Generator().manual_seed(3))
    ordered = sorted(unique)
    rest = {ordered[j] for j in perm[round(0.8 * n):].tolist()}
    assert valid | test == {(u, i) for u, i in rest
                            if u in users and i in items}
    again = random_interaction_split(raw, (0.8, 0.1, 0.1), seed=3)
    assert torch.equal(again.test_index, s.test_index)
    other = random_interaction_split(raw, seed=4)
    assert not torch.equal(other.train_index, s.train_index)
    assert s.name == 'random(0.8/0.1/0.1, seed=3)'


def test_random_interaction_split_ignores_input_order_and_repeats():
    raw = _interactions()
    shuffled = raw[:, torch.randperm(raw.size(1))]
    doubled = torch.cat([raw, raw], dim=1)
    a = random_interaction_split(raw, seed=0)
    for other in (shuffled, doubled):
        b = random_interaction_split(other, seed=0)
        assert torch.equal(a.train_index, b.train_index)
        assert torch.equal(a.test_index, b.test_index)


def test_filter_unseen():
    train = torch.tensor([[0, 1], [5, 6]])
    other = torch.tensor([[0, 1, 2, 0], [6, 7, 5, 5]])
    assert filter_unseen(train, other).tolist() == [[0, 0], [6, 5]]


def test_holdout_interaction_split():
    base, test = _interactions(0), _interactions(1, n=100)
    s = holdout_interaction_split(base, test, val_ratio=0.2, seed=1,
                                  name='u1')
    unique = _pairs(base)
    train, valid = _pairs(s.train_index), _pairs(s.valid_index)
    assert not train & valid and train | valid <= unique
    assert len(train) == len(unique) - round(0.2 * len(unique))
    # Test pairs repeating a training pair are dropped, the others kept if
    # their user and item are seen in training.
    users = {u for u, _ in train}
    items = {i for _, i in train}
    expected = {(u, i) for u, i in _pairs(test) - unique
                if u in users and i in items}
    assert _pairs(s.test_index) == expected
    assert s.name == 'u1(val=0.2, seed=1)'
    again = holdout_interaction_split(base, test, val_ratio=0.2, seed=2)
    assert not torch.equal(again.valid_index, s.valid_index)


def test_interaction_split_errors():
    with pytest.raises(ValueError, match='summing to 1'):
        random_interaction_split(_interactions(), (0.8, 0.3, 0.1))
    with pytest.raises(ValueError, match=r'shape \[2, num_interactions\]'):
        random_interaction_split(torch.zeros(3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match='val_ratio'):
        holdout_interaction_split(_interactions(), _interactions(), 1.0)
