r"""Node, link, graph and recommendation splits.

* node: the public Planetoid masks, the 10 fixed Geom-GCN masks, and seeded
  class-balanced random splits (GPR-GNN's ``random_planetoid_splits`` rule);
* link: seeded random edge splits built on PyG's
  :class:`~torch_geometric.transforms.RandomLinkSplit`, or OGB's official
  ``get_edge_split()``;
* graph: OGB's ``get_idx_split()``, or seeded stratified random index splits;
* recommendation: seeded random splits of user-item interactions, or a fixed
  train / test hold-out with a seeded validation set carved from training;
  validation and test keep only users and items seen in training.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

__all__ = [
    'NodeSplit',
    'LinkSplit',
    'GraphSplit',
    'RecommendationSplit',
    'kfold_graph_splits',
    'class_balanced_split',
    'masks_from_columns',
    'random_link_split',
    'ogb_link_split',
    'random_graph_split',
    'random_interaction_split',
    'holdout_interaction_split',
    'filter_unseen',
]


@dataclass
class NodeSplit:
    r"""Boolean train / validation / test masks over the nodes."""
    train_mask: Tensor
    val_mask: Tensor
    test_mask: Tensor
    name: str = ''

    def sizes(self) -> tuple[int, int, int]:
        return (int(self.train_mask.sum()), int(self.val_mask.sum()),
                int(self.test_mask.sum()))

    def mask(self, which: str) -> Tensor:
        return {'train': self.train_mask, 'valid': self.val_mask,
                'val': self.val_mask, 'test': self.test_mask}[which]


@dataclass
class LinkSplit:
    r"""A link-prediction split.

    Attributes:
        edge_index (Tensor): the message-passing graph used for training
            (both directions for undirected graphs), shape :obj:`[2, E_mp]`.
        train_pos (Tensor): positive training pairs, :obj:`[2, E_train]`.
        valid_pos, valid_neg, test_pos, test_neg (Tensor): evaluation pairs,
            :obj:`[2, *]`. For OGB MRR datasets ``*_neg`` has shape
            :obj:`[num_pos, num_neg]` (target nodes of each source) and
            ``neg_layout`` is ``'per_source'``.
    """
    edge_index: Tensor
    train_pos: Tensor
    valid_pos: Tensor
    valid_neg: Tensor
    test_pos: Tensor
    test_neg: Tensor
    name: str = ''
    neg_layout: str = 'pairs'

    def pairs(self, which: str) -> tuple[Tensor, Tensor]:
        key = 'valid' if which == 'val' else which
        return getattr(self, f'{key}_pos'), getattr(self, f'{key}_neg')


@dataclass
class GraphSplit:
    r"""Graph indices of the train / validation / test sets."""
    train_idx: Tensor
    val_idx: Tensor
    test_idx: Tensor
    name: str = ''

    def sizes(self) -> tuple[int, int, int]:
        return (self.train_idx.numel(), self.val_idx.numel(),
                self.test_idx.numel())

    def index(self, which: str) -> Tensor:
        return {'train': self.train_idx, 'valid': self.val_idx,
                'val': self.val_idx, 'test': self.test_idx}[which]


@dataclass
class RecommendationSplit:
    r"""User-item interactions of the train / validation / test sets.

    Each index has shape :obj:`[2, *]`: row 0 holds user ids in
    :math:`[0, U)`, row 1 item ids in :math:`[0, I)` (0-based within the
    items, not offset by :math:`U`). Pairs are unique and the three sets are
    disjoint.
    """
    train_index: Tensor
    valid_index: Tensor
    test_index: Tensor
    name: str = ''

    def sizes(self) -> tuple[int, int, int]:
        return (self.train_index.size(1), self.valid_index.size(1),
                self.test_index.size(1))

    def index(self, which: str) -> Tensor:
        return {'train': self.train_index, 'valid': self.valid_index,
                'val': self.valid_index, 'test': self.test_index}[which]


def _generator(seed: int) -> torch.Generator:
    gen = torch.Generator()
    gen.manual_seed(int(seed))
    return gen


def class_balanced_split(y: Tensor, train_rate: float = 0.6,
                         val_rate: float = 0.2, seed: int = 0,
                         num_classes: int | None = None) -> NodeSplit:
    r"""Seeded class-balanced random split (GPR-GNN's rule, as used by HiGCN
    and BernNet).

    Each class contributes :math:`\mathrm{round}(r_{train} N / C)` random
    nodes to the training set (all of its nodes if it is smaller). The next
    :math:`\mathrm{round}(r_{val} N)` nodes of the shuffled remainder form
    the validation set and the rest is the test set.

    Args:
        y (Tensor): node labels, shape :obj:`[N]`; negative labels mark
            unlabelled nodes, which never enter any set.
        train_rate (float): fraction of nodes for training (default:
            :obj:`0.6`).
        val_rate (float): fraction of nodes for validation (default:
            :obj:`0.2`).
        seed (int): random seed; the same seed gives the same split.
        num_classes (int, optional): number of classes.
    """
    if y.dim() != 1:
        raise ValueError(f"class_balanced_split expects 1-D labels, got "
                         f"shape {tuple(y.shape)}")
    if not (0 < train_rate < 1 and 0 <= val_rate < 1
            and train_rate + val_rate < 1):
        raise ValueError(f"Invalid split rates train={train_rate}, "
                         f"val={val_rate}: expected 0 < train, 0 <= val, "
                         f"train + val < 1")
    gen = _generator(seed)
    labelled = (y >= 0).nonzero().view(-1)
    n = labelled.numel()
    c = num_classes or int(y.max()) + 1
    per_class = int(round(train_rate * n / c))
    train_parts = []
    for k in range(c):
        idx = (y == k).nonzero().view(-1)
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        train_parts.append(idx[:per_class])
    train = torch.cat(train_parts)
    rest_mask = torch.zeros(y.numel(), dtype=torch.bool)
    rest_mask[labelled] = True
    rest_mask[train] = False
    rest = rest_mask.nonzero().view(-1)
    rest = rest[torch.randperm(rest.numel(), generator=gen)]
    n_val = int(round(val_rate * n))
    masks = []
    for idx in (train, rest[:n_val], rest[n_val:]):
        m = torch.zeros(y.numel(), dtype=torch.bool)
        m[idx] = True
        masks.append(m)
    return NodeSplit(*masks, name=f'random(seed={seed})')


def masks_from_columns(train: Tensor, val: Tensor, test: Tensor,
                       prefix: str = 'fixed') -> list[NodeSplit]:
    r"""Turns masks of shape :obj:`[N]` or :obj:`[N, S]` into a list of
    :class:`NodeSplit`."""
    if train.dim() == 1:
        return [NodeSplit(train.bool(), val.bool(), test.bool(),
                          name=prefix)]
    return [
        NodeSplit(train[:, i].bool(), val[:, i].bool(), test[:, i].bool(),
                  name=f'{prefix}[{i}]') for i in range(train.size(1))
    ]


def random_link_split(data, val_ratio: float = 0.1, test_ratio: float = 0.2,
                      seed: int = 0) -> LinkSplit:
    r"""Seeded random edge split of an undirected graph, built on PyG's
    :class:`~torch_geometric.transforms.RandomLinkSplit`.

    Validation and test negatives are sampled once (as many as positives) and
    are disjoint from all positive edges; training negatives are sampled
    afresh by the task at every step. The message-passing graph holds only
    the training edges, in both directions.
    """
    from torch_geometric.data import Data
    from torch_geometric.transforms import RandomLinkSplit

    if not (0 <= val_ratio < 1 and 0 < test_ratio < 1
            and val_ratio + test_ratio < 1):
        raise ValueError(f"Invalid link split ratios val={val_ratio}, "
                         f"test={test_ratio}")
    plain = Data(edge_index=data.edge_index, num_nodes=data.num_nodes)
    transform = RandomLinkSplit(num_val=val_ratio, num_test=test_ratio,
                                is_undirected=True, split_labels=True,
                                add_negative_train_samples=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        train, val, test = transform(plain)
    return LinkSplit(
        edge_index=train.edge_index,
        train_pos=train.pos_edge_label_index,
        valid_pos=val.pos_edge_label_index,
        valid_neg=val.neg_edge_label_index,
        test_pos=test.pos_edge_label_index,
        test_neg=test.neg_edge_label_index,
        name=f'random({1 - val_ratio - test_ratio:.2f}/{val_ratio:.2f}/'
        f'{test_ratio:.2f}, seed={seed})',
    )


def ogb_link_split(split_edge: dict, num_nodes: int,
                   edge_index: Tensor) -> LinkSplit:
    r"""Converts OGB's ``get_edge_split()`` dictionary into a
    :class:`LinkSplit`.

    Both OGB layouts are handled: ``edge`` / ``edge_neg`` pairs (ddi, collab,
    ppa) and ``source_node`` / ``target_node`` / ``target_node_neg``
    (citation2, scored by MRR).
    """
    def pos(d: dict) -> Tensor:
        if 'edge' in d:
            return torch.as_tensor(d['edge']).t().long().contiguous()
        if 'source_node' in d:
            return torch.stack([torch.as_tensor(d['source_node']),
                                torch.as_tensor(d['target_node'])]).long()
        raise ValueError(f"Unsupported OGB edge split keys {sorted(d)}; "
                         f"expected 'edge' or 'source_node'/'target_node'")

    def neg(d: dict) -> Tensor:
        if 'edge_neg' in d:
            return torch.as_tensor(d['edge_neg']).t().long().contiguous()
        if 'target_node_neg' in d:
            return torch.as_tensor(d['target_node_neg']).long()
        raise ValueError(f"Unsupported OGB negative keys {sorted(d)}")

    return LinkSplit(edge_index=edge_index, train_pos=pos(split_edge['train']),
                     valid_pos=pos(split_edge['valid']),
                     valid_neg=neg(split_edge['valid']),
                     test_pos=pos(split_edge['test']),
                     test_neg=neg(split_edge['test']), name='ogb-official',
                     neg_layout=('per_source' if 'target_node_neg' in
                                 split_edge['valid'] else 'pairs'))


def random_graph_split(y: Tensor, ratios: Sequence[float] = (0.8, 0.1, 0.1),
                       seed: int = 0) -> GraphSplit:
    r"""Seeded random split of graph indices, stratified by label when the
    labels are class indices."""
    if len(ratios) != 3 or abs(sum(ratios) - 1.0) > 1e-6:
        raise ValueError(f"Graph split ratios must be three numbers summing "
                         f"to 1, got {tuple(ratios)}")
    gen = _generator(seed)
    y = y.view(y.size(0), -1)[:, 0]
    groups = ([(y == k).nonzero().view(-1) for k in y.unique()]
              if not torch.is_floating_point(y) else [torch.arange(y.numel())])
    parts: list[list[Tensor]] = [[], [], []]
    for idx in groups:
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        n_train = int(round(ratios[0] * idx.numel()))
        n_val = int(round(ratios[1] * idx.numel()))
        parts[0].append(idx[:n_train])
        parts[1].append(idx[n_train:n_train + n_val])
        parts[2].append(idx[n_train + n_val:])
    out = [torch.cat(p).sort().values for p in parts]
    return GraphSplit(*out, name=f'random(seed={seed})')


def kfold_graph_splits(y: Tensor, folds: int = 10, seed: int = 0
                       ) -> list[GraphSplit]:
    r"""Stratified :math:`k`-fold cross-validation over graphs, the TU
    protocol: split :math:`r` tests on fold :math:`r`, validates on fold
    :math:`r+1 \bmod k`, and trains on the other :math:`k-2` folds. Each
    class is dealt round-robin over the folds after a seeded shuffle, so
    fold sizes differ by at most one per class."""
    if folds < 3:
        raise ValueError(f"k-fold splits need folds >= 3, got {folds}")
    gen = _generator(seed)
    y = y.view(y.size(0), -1)[:, 0]
    fold_of = torch.empty(y.numel(), dtype=torch.long)
    offset = 0
    for k in y.unique():
        idx = (y == k).nonzero().view(-1)
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        fold_of[idx] = (torch.arange(idx.numel()) + offset) % folds
        offset += idx.numel()
    out = []
    for r in range(folds):
        test = (fold_of == r).nonzero().view(-1)
        val = (fold_of == (r + 1) % folds).nonzero().view(-1)
        train = ((fold_of != r) & (fold_of != (r + 1) % folds)
                 ).nonzero().view(-1)
        out.append(GraphSplit(train, val, test, name=f'fold {r}/{folds}'))
    return out


def _unique_pairs(index: Tensor, what: str) -> Tensor:
    r"""Checks a :obj:`[2, n]` interaction index and drops repeated pairs;
    the result is sorted by user, then item, so it does not depend on the
    order of the input."""
    from torch_geometric.utils import coalesce
    if index.dim() != 2 or index.size(0) != 2:
        raise ValueError(f"{what} must have shape [2, num_interactions] "
                         f"(user ids, item ids), got {tuple(index.shape)}")
    if index.numel() and int(index.min()) < 0:
        raise ValueError(f"{what} holds negative ids; expected 0-based user "
                         f"and item ids")
    index = index.long()
    if index.size(1) == 0:
        return index
    num = int(index.max()) + 1
    return coalesce(index, num_nodes=num)


def filter_unseen(train_index: Tensor, index: Tensor) -> Tensor:
    r"""Keeps the interactions of ``index`` whose user and item both occur
    in ``train_index`` (the recommendation protocol: models cannot rank
    users or items they never saw)."""
    if index.size(1) == 0 or train_index.size(1) == 0:
        return index[:, :0]
    users = torch.zeros(max(int(index[0].max()), int(train_index[0].max()))
                        + 1, dtype=torch.bool)
    items = torch.zeros(max(int(index[1].max()), int(train_index[1].max()))
                        + 1, dtype=torch.bool)
    users[train_index[0]] = True
    items[train_index[1]] = True
    return index[:, users[index[0]] & items[index[1]]]


def random_interaction_split(interactions: Tensor,
                             ratios: Sequence[float] = (0.8, 0.1, 0.1),
                             seed: int = 0) -> RecommendationSplit:
    r"""Seeded random split of user-item interactions (Sheaf4Rec's
    protocol).

    Repeated pairs are dropped and the pairs sorted, then shuffled with
    ``seed``. The first :math:`\mathrm{round}(r_{train} n)` pairs form the
    training set, the next :math:`\mathrm{round}(r_{val} n)` the validation
    set and the rest the test set. Validation and test pairs whose user or
    item has no training interaction are dropped (:func:`filter_unseen`), so
    they may end up slightly smaller than their ratio.

    Args:
        interactions (Tensor): user and item ids, shape :obj:`[2, n]`.
        ratios (tuple): train / validation / test fractions summing to 1
            (default: :obj:`(0.8, 0.1, 0.1)`).
        seed (int): random seed; the same seed gives the same split.
    """
    ratios = tuple(float(r) for r in ratios)
    if len(ratios) != 3 or abs(sum(ratios) - 1.0) > 1e-6 or \
            not (ratios[0] > 0 and ratios[1] >= 0 and ratios[2] > 0):
        raise ValueError(f"Interaction split ratios must be three numbers "
                         f"train > 0, val >= 0, test > 0 summing to 1, got "
                         f"{ratios}")
    pairs = _unique_pairs(interactions, 'interactions')
    n = pairs.size(1)
    perm = torch.randperm(n, generator=_generator(seed))
    n_train = int(round(ratios[0] * n))
    n_val = int(round(ratios[1] * n))
    train = pairs[:, perm[:n_train]]
    valid = pairs[:, perm[n_train:n_train + n_val]]
    test = pairs[:, perm[n_train + n_val:]]
    return RecommendationSplit(
        train, filter_unseen(train, valid), filter_unseen(train, test),
        name=f'random({ratios[0]:g}/{ratios[1]:g}/{ratios[2]:g}, '
        f'seed={seed})')


def holdout_interaction_split(train_interactions: Tensor,
                              test_interactions: Tensor,
                              val_ratio: float = 0.1,
                              seed: int = 0,
                              name: str = 'holdout') -> RecommendationSplit:
    r"""A fixed train / test hold-out (e.g. MovieLens' ``u1.base`` /
    ``u1.test``) with a seeded validation set carved from training.

    A random fraction ``val_ratio`` of the (unique) training pairs becomes
    the validation set. Test pairs that repeat a training pair are dropped,
    and validation and test pairs are filtered to users and items seen in
    the remaining training pairs (:func:`filter_unseen`).

    Args:
        train_interactions (Tensor): training user and item ids,
            :obj:`[2, n_train]`.
        test_interactions (Tensor): test user and item ids,
            :obj:`[2, n_test]`.
        val_ratio (float): fraction of the training pairs moved to the
            validation set (default: :obj:`0.1`).
        seed (int): random seed of the validation set.
        name (str): name of the split, recorded with each run.
    """
    if not 0 <= val_ratio < 1:
        raise ValueError(f"val_ratio must lie in [0, 1), got {val_ratio}")
    base = _unique_pairs(train_interactions, 'train_interactions')
    test = _unique_pairs(test_interactions, 'test_interactions')
    if test.size(1) and base.size(1):
        num_items = int(max(base[1].max(), test[1].max())) + 1
        seen = base[0] * num_items + base[1]
        key = test[0] * num_items + test[1]
        test = test[:, ~torch.isin(key, seen)]
    n = base.size(1)
    perm = torch.randperm(n, generator=_generator(seed))
    n_val = int(round(val_ratio * n))
    valid, train = base[:, perm[:n_val]], base[:, perm[n_val:]]
    return RecommendationSplit(
        train, filter_unseen(train, valid), filter_unseen(train, test),
        name=f'{name}(val={val_ratio:g}, seed={seed})')
