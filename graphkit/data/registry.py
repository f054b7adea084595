r"""Dataset name -> spec, and :func:`load`, which returns a
:class:`DatasetBundle`.

Every loader is PyG's or OGB's own dataset class; graphkit only decides where
its raw files come from (:mod:`graphkit.data.sources`) and which split is
used (:mod:`graphkit.data.splits`).
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import torch

from graphkit.data import splits as S
from graphkit.data.sources import (DatasetNotAvailableError, RawLayout,
                                   resolve_mirror, resolve_root,
                                   stage_raw_files)

log = logging.getLogger(__name__)

# OGB checks PyPI for a newer release when imported; skip that network call.
os.environ.setdefault('OUTDATED_IGNORE', '1')

__all__ = ['DatasetBundle', 'DatasetSpec', 'load', 'dataset_names',
           'get_spec', 'TASK_KINDS', 'lower_is_better']

TASK_KINDS = ('node', 'link', 'graph', 'recommendation')

# Metrics where a lower value is better.
_LOWER_IS_BETTER = {'rmse', 'mae', 'mse'}


def lower_is_better(metric: str) -> bool:
    r"""Whether a smaller value of ``metric`` is better (errors)."""
    return metric.split('@')[0].lower() in _LOWER_IS_BETTER


@dataclass
class DatasetBundle:
    r"""What :func:`load` returns.

    Attributes:
        name (str): canonical dataset name.
        task (str): one of ``node``, ``link``, ``graph``, ``recommendation``.
        data: the PyG :class:`~torch_geometric.data.Data` (node / link /
            recommendation tasks) or the graph :class:`Dataset` (graph
            tasks).
        metric (str): the metric name, e.g. ``accuracy``, ``hits@20``.
        evaluator: OGB's :class:`Evaluator` for OGB names, else :obj:`None`.
        split_kind (str): ``public``, ``geom-gcn``, ``random`` or ``ogb``.
        fixed_splits (list): the fixed splits (empty for random splits, which
            are drawn per run by :meth:`split_for_run`).
        num_features (int): input feature dimension (0 if featureless).
        num_classes (int): number of output channels of the task head.
        task_type (str): ``multiclass``, ``binary`` (multi-task binary),
            ``regression`` or ``ranking``.
    """
    name: str
    task: str
    data: Any
    metric: str
    split_kind: str
    num_features: int
    num_classes: int
    task_type: str = 'multiclass'
    evaluator: Any = None
    fixed_splits: list = field(default_factory=list)
    random_split: Callable[[int], Any] | None = None
    info: dict = field(default_factory=dict)

    @property
    def higher_is_better(self) -> bool:
        return not lower_is_better(self.metric)

    @property
    def num_splits(self) -> int | None:
        r"""Number of fixed splits, or :obj:`None` for per-run random
        splits."""
        return len(self.fixed_splits) if self.fixed_splits else None

    def split_for_run(self, run: int, seed: int) -> Any:
        r"""The split of run ``run``: fixed split ``run % num_splits``, or a
        fresh random split drawn with ``seed``."""
        if self.fixed_splits:
            return self.fixed_splits[run % len(self.fixed_splits)]
        if self.random_split is None:
            raise RuntimeError(f"Dataset '{self.name}' has no split")
        return self.random_split(seed)

    def __repr__(self) -> str:
        return (f"DatasetBundle({self.name}, task={self.task}, "
                f"metric={self.metric}, split={self.split_kind}, "
                f"features={self.num_features}, classes={self.num_classes})")


@dataclass(frozen=True)
class DatasetSpec:
    r"""How to load one dataset name."""
    name: str
    task: str
    family: str
    layout: Callable[[str], RawLayout] | None
    build: Callable[..., DatasetBundle]
    tasks: tuple[str, ...] = ()
    splits: tuple[str, ...] = ()
    description: str = ''

    @property
    def supported_tasks(self) -> tuple[str, ...]:
        return self.tasks or (self.task, )


_SPECS: dict[str, DatasetSpec] = {}


def _register(spec: DatasetSpec) -> None:
    _SPECS[spec.name] = spec


# ----------------------------------------------------------------------------
# OGB helpers
# ----------------------------------------------------------------------------


@contextlib.contextmanager
def _ogb_safe_globals() -> Iterator[None]:
    r"""Allow-lists, only while OGB loads its files, the few classes its
    legacy pickles contain, so ``torch.load(weights_only=True)`` (the default
    since torch 2.6) accepts them. Nothing else is unpickled."""
    import numpy as np
    from torch_geometric.data.data import DataEdgeAttr, DataTensorAttr
    from torch_geometric.data.storage import GlobalStorage

    allowed: list[Any] = [DataEdgeAttr, DataTensorAttr, GlobalStorage,
                          np.ndarray, np.dtype]
    core = getattr(np, '_core', None) or np.core
    allowed.append((core.multiarray._reconstruct,
                    'numpy.core.multiarray._reconstruct'))
    allowed += [type(np.dtype(t)) for t in (np.int64, np.int32, np.float32,
                                            np.float64, np.bool_)]
    if not hasattr(torch.serialization, 'safe_globals'):
        yield  # torch < 2.4 loads with weights_only=False by default.
        return
    with torch.serialization.safe_globals(allowed):
        yield


@functools.lru_cache(maxsize=1)
def _ogb_master() -> dict[str, dict]:
    import pandas as pd
    out = {}
    for sub in ('nodeproppred', 'linkproppred', 'graphproppred'):
        mod = __import__(f'ogb.{sub}', fromlist=['x'])
        path = Path(mod.__file__).parent / 'master.csv'
        master = pd.read_csv(path, index_col=0, keep_default_na=False)
        for name in master.keys():
            out[name] = dict(master[name])
    return out


def _ogb_layout(name: str) -> RawLayout:
    meta = _ogb_master()[name]
    folder = 'ogb/' + '_'.join(name.split('-'))
    release = f"{folder}/RELEASE_v{meta['version']}.txt"

    def no_prompt(root: Path) -> None:
        # OGB asks on stdin whether to delete a folder without the release
        # marker; never let it get there.
        if (root / folder).is_dir() and not (root / release).is_file():
            raise DatasetNotAvailableError(
                f"Dataset '{name}': the folder {root / folder} exists but "
                f"its release marker {root / release} is missing. OGB would "
                f"stop to ask whether to delete and re-download it. Restore "
                f"the marker file (or move the folder away) and try again; "
                f"graphkit never deletes it for you.")

    return RawLayout(dirs=[folder], files=[release, f'{folder}/raw/',
                                           f'{folder}/split/'],
                     url=meta.get('url'), guards=(no_prompt, ))


def _ogb_evaluator(name: str):
    kind = name.split('-')[0]
    mod = {'ogbn': 'ogb.nodeproppred', 'ogbl': 'ogb.linkproppred',
           'ogbg': 'ogb.graphproppred'}[kind]
    return __import__(mod, fromlist=['Evaluator']).Evaluator(name)


def _build_ogb(name: str, root: Path, split: str | None, seed: int,
               task: str, dataset_kwargs=None, **_: Any) -> DatasetBundle:
    if split not in (None, 'ogb', 'official'):
        raise ValueError(f"Dataset '{name}' only has its official OGB split; "
                         f"got split='{split}'")
    kind = name.split('-')[0]
    pre_transform = (dataset_kwargs or {}).get('pre_transform')
    evaluator = _ogb_evaluator(name)
    meta = _ogb_master()[name]
    with _ogb_safe_globals():
        if kind == 'ogbn':
            from ogb.nodeproppred import PygNodePropPredDataset
            ds = PygNodePropPredDataset(name, root=str(root / 'ogb'),
                                        pre_transform=pre_transform)
            idx = ds.get_idx_split()
        elif kind == 'ogbl':
            from ogb.linkproppred import PygLinkPropPredDataset
            ds = PygLinkPropPredDataset(name, root=str(root / 'ogb'),
                                        pre_transform=pre_transform)
            idx = ds.get_edge_split()
        else:
            from ogb.graphproppred import PygGraphPropPredDataset
            ds = PygGraphPropPredDataset(name, root=str(root / 'ogb'),
                                         pre_transform=pre_transform)
            idx = ds.get_idx_split()
    task_type = {'multiclass classification': 'multiclass',
                 'binary classification': 'binary',
                 'regression': 'regression',
                 'link prediction': 'ranking'}.get(meta['task type'],
                                                   'multiclass')
    metric = evaluator.eval_metric
    if kind == 'ogbn':
        data = ds[0]
        n = data.num_nodes
        masks = []
        for key in ('train', 'valid', 'test'):
            m = torch.zeros(n, dtype=torch.bool)
            m[idx[key]] = True
            masks.append(m)
        if task_type == 'multiclass':
            data.y = data.y.view(-1)
        num_classes = (ds.num_classes if task_type == 'multiclass' else
                       int(meta['num tasks']))
        return DatasetBundle(
            name=name, task='node', data=data, metric=metric,
            split_kind='ogb', num_features=ds.num_features,
            num_classes=num_classes, task_type=task_type,
            evaluator=evaluator,
            fixed_splits=[S.NodeSplit(*masks, name='ogb-official')])
    if kind == 'ogbl':
        data = ds[0]
        if data.num_nodes is None:
            data.num_nodes = int(data.edge_index.max()) + 1
        link = S.ogb_link_split(idx, data.num_nodes, data.edge_index)
        if metric.startswith('hits@'):
            metric = f'hits@{evaluator.K}'
        return DatasetBundle(
            name=name, task='link', data=data, metric=metric,
            split_kind='ogb',
            num_features=0 if data.x is None else data.x.size(-1),
            num_classes=1, task_type='ranking', evaluator=evaluator,
            fixed_splits=[link])
    gsplit = S.GraphSplit(idx['train'], idx['valid'], idx['test'],
                          name='ogb-official')
    num_tasks = int(meta['num tasks'])
    return DatasetBundle(
        name=name, task='graph', data=ds, metric=metric, split_kind='ogb',
        num_features=ds.num_features,
        num_classes=(ds.num_classes
                     if task_type == 'multiclass' else num_tasks),
        task_type=task_type, evaluator=evaluator, fixed_splits=[gsplit],
        info={'atom_features': name.startswith('ogbg-mol')})


# ----------------------------------------------------------------------------
# Node-level datasets (Planetoid, WikipediaNetwork, WebKB, Actor, ...)
# ----------------------------------------------------------------------------

_PLANETOID = {'cora': 'Cora', 'citeseer': 'CiteSeer', 'pubmed': 'PubMed'}
_WIKI = {'chameleon': 'chameleon', 'squirrel': 'squirrel'}
_WEBKB = {'cornell': 'cornell', 'texas': 'texas', 'wisconsin': 'wisconsin'}
_AMAZON = {'amazon-computers': ('Amazon', 'Computers',
                                'amazon_electronics_computers.npz'),
           'amazon-photo': ('Amazon', 'Photo', 'amazon_electronics_photo.npz'),
           'coauthor-cs': ('Coauthor', 'CS', 'ms_academic_cs.npz'),
           'coauthor-physics': ('Coauthor', 'Physics', 'ms_academic_phy.npz')}
_TU = {'proteins': 'PROTEINS', 'mutag': 'MUTAG', 'nci1': 'NCI1',
       'imdb-binary': 'IMDB-BINARY'}


def _geom_split_files(prefix: str, rel_dir: str) -> list[str]:
    return [f'{rel_dir}/{prefix}_split_0.6_0.2_{i}.npz' for i in range(10)]


def _planetoid_layout(name: str, split: str | None) -> RawLayout:
    from torch_geometric.datasets import Planetoid
    cap = _PLANETOID[name]
    geom = split in ('geom-gcn', 'fixed')
    rel = f"Planetoid/{cap}/{'geom-gcn/raw' if geom else 'raw'}"
    files = [f'{rel}/ind.{name}.{ext}' for ext in
             ('x', 'tx', 'allx', 'y', 'ty', 'ally', 'graph', 'test.index')]
    if geom:
        files += _geom_split_files(name, rel)
    return RawLayout(dirs=[rel], files=files, url=Planetoid.url)


def _geom_gcn_layout(rel: str, prefix: str, url: str) -> RawLayout:
    r"""Geom-GCN's raw files: edges, features + labels, and 10 splits."""
    files = [f'{rel}/out1_graph_edges.txt',
             f'{rel}/out1_node_feature_label.txt']
    return RawLayout(dirs=[rel], files=files + _geom_split_files(prefix, rel),
                     url=url)


def _wiki_layout(name: str, split: str | None) -> RawLayout:
    from torch_geometric.datasets import WikipediaNetwork
    return _geom_gcn_layout(f'WikipediaNetwork/{name}/geom_gcn/raw', name,
                            WikipediaNetwork.raw_url)


def _webkb_layout(name: str, split: str | None) -> RawLayout:
    from torch_geometric.datasets import WebKB
    return _geom_gcn_layout(f'WebKB/{name}/raw', name, WebKB.url)


def _actor_layout(name: str, split: str | None) -> RawLayout:
    from torch_geometric.datasets import Actor
    return _geom_gcn_layout('Actor/raw', 'film', Actor.url)


def _amazon_layout(name: str, split: str | None) -> RawLayout:
    from torch_geometric.datasets import Amazon
    family, cap, fname = _AMAZON[name]
    rel = f'{family}/{cap}/raw'
    return RawLayout(dirs=[rel], files=[f'{rel}/{fname}'], url=Amazon.url)


def _node_bundle(name: str, data, split: str | None, seed: int,
                 fixed: list[S.NodeSplit], split_kind_default: str,
                 ratios: Sequence[float] | None) -> DatasetBundle:
    data.y = data.y.view(-1)
    num_classes = int(data.y.max()) + 1
    kind = split or split_kind_default
    if kind == 'fixed':
        kind = 'geom-gcn'
    bundle = DatasetBundle(name=name, task='node', data=data,
                           metric='accuracy', split_kind=kind,
                           num_features=data.num_features,
                           num_classes=num_classes)
    if kind in ('public', 'geom-gcn'):
        bundle.fixed_splits = fixed
    elif kind == 'random':
        tr, va = (ratios or (0.6, 0.2, 0.2))[:2]
        y = data.y
        bundle.random_split = lambda s: S.class_balanced_split(
            y, tr, va, seed=s, num_classes=num_classes)
    else:
        raise ValueError(f"Unknown split '{split}' for dataset '{name}'")
    return bundle


def _link_bundle(name: str, data, split: str | None,
                 ratios: Sequence[float] | None) -> DatasetBundle:
    if split not in (None, 'random'):
        raise ValueError(f"Link prediction on '{name}' uses seeded random "
                         f"edge splits (split='random'); got '{split}'")
    ratios = tuple(ratios or (0.7, 0.1, 0.2))
    if len(ratios) != 3 or abs(sum(ratios) - 1) > 1e-6:
        raise ValueError(f"Link split ratios must be train/val/test summing "
                         f"to 1, got {ratios}")
    _, va, te = ratios
    return DatasetBundle(
        name=name, task='link', data=data, metric='hits@100',
        split_kind='random', num_features=data.num_features, num_classes=1,
        task_type='ranking',
        random_split=lambda s: S.random_link_split(data, va, te, seed=s),
        info={'ratios': ratios})


def _build_planetoid(name: str, root: Path, split: str | None, seed: int,
                     task: str, ratios=None, dataset_kwargs=None,
                     **_: Any) -> DatasetBundle:
    from torch_geometric.datasets import Planetoid
    geom = split in ('geom-gcn', 'fixed') and task == 'node'
    ds = Planetoid(str(root / 'Planetoid'), _PLANETOID[name],
                   split='geom-gcn' if geom else 'public',
                   **(dataset_kwargs or {}))
    data = ds[0]
    if task == 'link':
        return _link_bundle(name, data, split, ratios)
    fixed = S.masks_from_columns(data.train_mask, data.val_mask,
                                 data.test_mask,
                                 'geom-gcn' if geom else 'public')
    return _node_bundle(name, data, split, seed, fixed, 'public', ratios)


def _build_heterophilous(name: str, root: Path, split: str | None, seed: int,
                         task: str, ratios=None, dataset_kwargs=None,
                         **_: Any) -> DatasetBundle:
    from torch_geometric.datasets import Actor, WebKB, WikipediaNetwork
    kw = dataset_kwargs or {}
    if name in _WIKI:
        ds = WikipediaNetwork(str(root / 'WikipediaNetwork'), name, **kw)
    elif name in _WEBKB:
        ds = WebKB(str(root / 'WebKB'), name, **kw)
    else:
        ds = Actor(str(root / 'Actor'), **kw)
    data = ds[0]
    if task == 'link':
        return _link_bundle(name, data, split, ratios)
    fixed = S.masks_from_columns(data.train_mask, data.val_mask,
                                 data.test_mask, 'geom-gcn')
    return _node_bundle(name, data, split, seed, fixed, 'geom-gcn', ratios)


def _build_amazon(name: str, root: Path, split: str | None, seed: int,
                  task: str, ratios=None, dataset_kwargs=None,
                  **_: Any) -> DatasetBundle:
    from torch_geometric.datasets import Amazon, Coauthor
    family, cap, _f = _AMAZON[name]
    cls = Amazon if family == 'Amazon' else Coauthor
    data = cls(str(root / family), cap, **(dataset_kwargs or {}))[0]
    if task == 'link':
        return _link_bundle(name, data, split, ratios)
    if split not in (None, 'random'):
        raise ValueError(f"Dataset '{name}' has only random splits; got "
                         f"split='{split}'")
    return _node_bundle(name, data, 'random', seed, [], 'random', ratios)


def _build_karate(name: str, root: Path, split: str | None, seed: int,
                  task: str, ratios=None, dataset_kwargs=None,
                  **_: Any) -> DatasetBundle:
    import networkx as nx
    from torch_geometric.utils import from_networkx
    g = nx.karate_club_graph()
    data = from_networkx(g)
    clubs = sorted({g.nodes[v]['club'] for v in g.nodes})
    data.y = torch.tensor([clubs.index(g.nodes[v]['club']) for v in g.nodes])
    data.x = torch.eye(g.number_of_nodes())
    for key in ('club', 'weight', 'name'):
        if key in data:
            del data[key]
    data = _apply(dataset_kwargs, data)
    if task == 'link':
        return _link_bundle(name, data, split, ratios)
    if split not in (None, 'random'):
        raise ValueError(f"'karate' has only random splits; got '{split}'")
    return _node_bundle(name, data, 'random', seed, [], 'random', ratios)


def _build_synthetic(name: str, root: Path, split: str | None, seed: int,
                     task: str, ratios=None, options=None,
                     dataset_kwargs=None, **_: Any) -> DatasetBundle:
    from graphkit.data import synthetic
    fn = synthetic.csbm if name == 'csbm' else synthetic.sbm
    data = _apply(dataset_kwargs, fn(seed=seed, **(options or {})))
    if task == 'link':
        return _link_bundle(name, data, split, ratios)
    if split not in (None, 'random'):
        raise ValueError(f"'{name}' has only random splits; got '{split}'")
    bundle = _node_bundle(name, data, 'random', seed, [], 'random', ratios)
    bundle.info['homophily'] = synthetic.edge_homophily(data.edge_index,
                                                        data.y)
    return bundle


# ----------------------------------------------------------------------------
# Graph-level (TU) and recommendation (MovieLens) datasets
# ----------------------------------------------------------------------------


def _tu_layout(name: str, split: str | None) -> RawLayout:
    from torch_geometric.datasets import TUDataset
    cap = _TU[name]
    rel = f'TUDataset/{cap}/raw'
    files = [f'{rel}/{cap}_{k}.txt' for k in ('A', 'graph_indicator',
                                              'graph_labels')]
    return RawLayout(dirs=[rel], files=files, url=TUDataset.url)


def _build_tu(name: str, root: Path, split: str | None, seed: int,
              task: str, ratios=None, dataset_kwargs=None,
              **_: Any) -> DatasetBundle:
    import torch_geometric.transforms as T
    from torch_geometric.datasets import TUDataset
    if split not in (None, 'random', '10-fold'):
        raise ValueError(f"'{name}' has seeded random splits ('random') and "
                         f"stratified 10-fold cross-validation ('10-fold'); "
                         f"got '{split}'")
    cap = _TU[name]
    transform = T.OneHotDegree(135) if cap == 'IMDB-BINARY' else None
    ds = TUDataset(str(root / 'TUDataset'), cap, transform=transform,
                   **(dataset_kwargs or {}))
    y = ds.y
    if split == '10-fold':
        return DatasetBundle(
            name=name, task='graph', data=ds, metric='accuracy',
            split_kind='10-fold', num_features=ds.num_features,
            num_classes=ds.num_classes, task_type='multiclass',
            fixed_splits=S.kfold_graph_splits(y, 10, seed=0))
    ratios = tuple(ratios or (0.8, 0.1, 0.1))
    return DatasetBundle(
        name=name, task='graph', data=ds, metric='accuracy',
        split_kind='random', num_features=ds.num_features,
        num_classes=ds.num_classes, task_type='multiclass',
        random_split=lambda s: S.random_graph_split(y, ratios, seed=s))





# PATTERN / CLUSTER: (generator, train / valid / test graphs of the paper).
_SBM_BENCH = {'pattern': ('sbm_pattern', (10000, 2000, 2000)),
              'cluster': ('sbm_cluster', (10000, 1000, 1000))}


def _build_sbm_benchmark(name: str, root: Path, split: str | None,
                         seed: int, task: str, ratios=None, options=None,
                         dataset_kwargs=None, **_: Any) -> DatasetBundle:
    r"""PATTERN / CLUSTER drawn by :mod:`graphkit.data.synthetic`: node
    classification over many small graphs, trained inductively on whole
    graphs. Options: ``num_train``, ``num_valid``, ``num_test`` (the paper's
    sizes by default) and the generator's own arguments. The samples are
    graphkit's own draws of the published procedure."""
    from torch_geometric.data import InMemoryDataset

    from graphkit.data import synthetic
    if split not in (None, 'fixed'):
        raise ValueError(f"'{name}' has one fixed train/valid/test split of "
                         f"graphs; got '{split}'")
    fn_name, sizes = _SBM_BENCH[name]
    opts = dict(options or {})
    sizes = tuple(int(opts.pop(k, d)) for k, d in
                  zip(('num_train', 'num_valid', 'num_test'), sizes))
    graphs = getattr(synthetic, fn_name)(num_graphs=sum(sizes),
                                         seed=opts.pop('seed', seed), **opts)
    transform = (dataset_kwargs or {}).get('pre_transform')
    if transform is not None:
        graphs = [transform(g) for g in graphs]
    ds = InMemoryDataset()
    ds.data, ds.slices = ds.collate(graphs)
    bounds = torch.tensor(sizes).cumsum(0).tolist()
    split_obj = S.GraphSplit(torch.arange(0, bounds[0]),
                             torch.arange(bounds[0], bounds[1]),
                             torch.arange(bounds[1], bounds[2]),
                             name='fixed')
    num_classes = int(ds._data.y.max()) + 1
    return DatasetBundle(
        name=name, task='node', data=ds, metric='balanced_accuracy',
        split_kind='fixed', num_features=ds.num_features,
        num_classes=num_classes, task_type='multiclass',
        fixed_splits=[split_obj],
        info={'inductive': True, 'class_weighted': True,
              'graphs': list(sizes)})


def _movielens_layout(name: str, split: str | None) -> RawLayout:
    from torch_geometric.datasets import MovieLens100K
    rel = 'MovieLens100K/raw'
    files = [f'{rel}/{f}' for f in ('u.item', 'u.user', 'u1.base',
                                    'u1.test')]
    return RawLayout(dirs=[rel], files=files, url=MovieLens100K.url)


# Sheaf4Rec's implicit-feedback rule: a rating of 3 or more is an interaction.
_MOVIELENS_MIN_RATING = 3


def _build_movielens(name: str, root: Path, split: str | None, seed: int,
                     task: str, ratios=None, dataset_kwargs=None,
                     **_: Any) -> DatasetBundle:
    r"""MovieLens 100K as implicit feedback (Sheaf4Rec's protocol).

    PyG's :class:`~torch_geometric.datasets.MovieLens100K` stores the
    ``u1.base`` ratings in ``edge_index`` / ``rating`` and the ``u1.test``
    ratings in ``edge_label_index`` / ``edge_label`` of ``('user', 'rates',
    'movie')``; together they are all 100,000 ratings of ``u.data``. Ratings
    of 3 or more are kept as interactions (82,520 of them; 943 users, 1,682
    movies of which 1,574 have one).

    * ``split='random'`` (default): a new seeded 80/10/10 split of all the
      interactions per run (``ratios`` changes the fractions);
    * ``split='u1'`` (or ``official``): train on ``u1.base``, test on
      ``u1.test``, and a seeded 10% of ``u1.base`` for validation.

    Validation and test keep only users and items seen in training. The
    metric is NDCG@10, the ranking-aware headline metric of Sheaf4Rec v3;
    Recall, Precision and F1 at 10 and 20 are reported alongside it.
    """
    from torch_geometric.datasets import MovieLens100K
    kind = {None: 'random', 'official': 'u1'}.get(split, split)
    if kind not in ('random', 'u1'):
        raise ValueError(f"'{name}' has split='random' (seeded 80/10/10 "
                         f"interaction splits) or split='u1' (official "
                         f"u1.base / u1.test); got '{split}'")
    data = MovieLens100K(str(root / 'MovieLens100K'),
                         **(dataset_kwargs or {}))[0]
    store = data['user', 'rates', 'movie']
    keep = _MOVIELENS_MIN_RATING
    base = store.edge_index[:, store.rating >= keep]
    test = store.edge_label_index[:, store.edge_label >= keep]
    info = {'num_users': data['user'].num_nodes,
            'num_items': data['movie'].num_nodes, 'min_rating': keep,
            'num_interactions': base.size(1) + test.size(1)}
    if kind == 'random':
        ratios = tuple(ratios or (0.8, 0.1, 0.1))
        interactions = torch.cat([base, test], dim=1)
        draw = functools.partial(S.random_interaction_split, interactions,
                                 ratios)
        info['ratios'] = ratios
    else:
        if ratios is not None:
            raise ValueError(f"'{name}' with split='u1' uses the official "
                             f"u1.base / u1.test files and a 10% validation "
                             f"set; ratios={tuple(ratios)} cannot apply "
                             f"(use split='random' for custom ratios)")
        draw = functools.partial(S.holdout_interaction_split, base, test,
                                 0.1, name='u1')
    return DatasetBundle(
        name=name, task='recommendation', data=data, metric='ndcg@10',
        split_kind=kind, num_features=0, num_classes=1,
        task_type='ranking', random_split=lambda s: draw(seed=s),
        info=info)


# ----------------------------------------------------------------------------
# The table of names
# ----------------------------------------------------------------------------

def _apply(dataset_kwargs: dict | None, data):
    r"""Applies the ``pre_transform`` of in-memory graphs (built without a
    PyG dataset class, so nothing is cached on disk)."""
    transform = (dataset_kwargs or {}).get('pre_transform')
    return transform(data) if transform is not None else data


def _stale_pre_transform(processed: Path, pre_transform: Any) -> bool:
    r"""Whether ``processed/`` was built with another ``pre_transform``
    (PyG only warns in that case; graphkit reprocesses)."""
    path = processed / 'pre_transform.pt'
    if not path.is_file():
        return False
    try:
        stored = torch.load(path, weights_only=True)
    except Exception:  # an unreadable marker: rebuild to be safe
        return True
    return stored != (repr(pre_transform) if pre_transform is not None
                      else 'None')


def _no_layout(name: str, split: str | None) -> None:
    return None


for _n in _PLANETOID:
    _register(DatasetSpec(_n, 'node', 'Planetoid', _planetoid_layout,
                          _build_planetoid, tasks=('node', 'link'),
                          splits=('public', 'geom-gcn', 'random'),
                          description='Planetoid citation graph'))
for _n in _WIKI:
    _register(DatasetSpec(_n, 'node', 'WikipediaNetwork', _wiki_layout,
                          _build_heterophilous, tasks=('node', 'link'),
                          splits=('geom-gcn', 'random'),
                          description='heterophilous Wikipedia graph'))
for _n in _WEBKB:
    _register(DatasetSpec(_n, 'node', 'WebKB', _webkb_layout,
                          _build_heterophilous, tasks=('node', 'link'),
                          splits=('geom-gcn', 'random'),
                          description='heterophilous WebKB graph'))
_register(DatasetSpec('actor', 'node', 'Actor', _actor_layout,
                      _build_heterophilous, tasks=('node', 'link'),
                      splits=('geom-gcn', 'random'),
                      description='heterophilous actor co-occurrence graph'))
for _n in _AMAZON:
    _register(DatasetSpec(_n, 'node', _AMAZON[_n][0], _amazon_layout,
                          _build_amazon, tasks=('node', 'link'),
                          splits=('random', ),
                          description='co-purchase / co-author graph'))
for _n in _TU:
    _register(DatasetSpec(_n, 'graph', 'TUDataset', _tu_layout, _build_tu,
                          splits=('random', '10-fold'),
                          description='TU graph classification'))
_register(DatasetSpec('movielens-100k', 'recommendation', 'MovieLens100K',
                      _movielens_layout, _build_movielens,
                      splits=('random', 'u1'),
                      description='user-movie ratings as implicit '
                      'feedback (rating >= 3)'))
_register(DatasetSpec('karate', 'node', 'networkx', _no_layout,
                      _build_karate, tasks=('node', 'link'),
                      splits=('random', ),
                      description="Zachary's karate club (networkx)"))
for _n in _SBM_BENCH:
    _register(DatasetSpec(_n, 'node', 'synthetic', _no_layout,
                          _build_sbm_benchmark, splits=('fixed', ),
                          description='SBM benchmark of Dwivedi et al. '
                          '(own seeded draws)'))
for _n in ('csbm', 'sbm'):
    _register(DatasetSpec(_n, 'node', 'synthetic', _no_layout,
                          _build_synthetic, tasks=('node', 'link'),
                          splits=('random', ),
                          description='seeded synthetic block model'))

_ALIASES = {'ml-100k': 'movielens-100k', 'movielens': 'movielens-100k',
            'film': 'actor', 'computers': 'amazon-computers',
            'photo': 'amazon-photo'}
_OGB_KIND = {'ogbn': 'node', 'ogbl': 'link', 'ogbg': 'graph'}


def dataset_names(include_ogb: bool = True) -> list[str]:
    r"""All dataset names: the fixed table, plus every OGB name."""
    names = sorted(_SPECS)
    if include_ogb:
        names += sorted(_ogb_master())
    return names


def get_spec(name: str) -> DatasetSpec:
    r"""Resolves a (case-insensitive) name to its :class:`DatasetSpec`."""
    if not isinstance(name, str):
        raise TypeError(f"Dataset name must be a string, got "
                        f"{type(name).__name__}")
    key = name.strip().lower().replace('_', '-')
    key = _ALIASES.get(key, key)
    if key in _SPECS:
        return _SPECS[key]
    if key.split('-')[0] in _OGB_KIND:
        if key not in _ogb_master():
            raise ValueError(
                f"Unknown OGB dataset '{name}'. Valid OGB names: "
                f"{', '.join(sorted(_ogb_master()))}")
        return DatasetSpec(key, _OGB_KIND[key.split('-')[0]], 'OGB',
                           lambda n, s: _ogb_layout(n), _build_ogb,
                           splits=('ogb', ), description='OGB benchmark')
    raise ValueError(
        f"Unknown dataset '{name}'. Valid names: "
        f"{', '.join(sorted(_SPECS))}, or any OGB name (ogbn-*, ogbl-*, "
        f"ogbg-*; see `graphkit datasets`).")


def load(name: str, root: str | Path | None = None,
         mirror: str | Path | None = None, split: str | None = None,
         seed: int = 0, task: str | None = None,
         ratios: Sequence[float] | None = None,
         normalize_features: bool = False,
         options: dict | None = None,
         pre_transform: Any = None,
         undirected: bool = False) -> DatasetBundle:
    r"""Loads a dataset by name and returns a :class:`DatasetBundle`.

    Args:
        name (str): dataset name, case-insensitive (``cora``, ``texas``,
            ``ogbl-ddi``, ``movielens-100k``, ``karate``, ``csbm``, ...).
        root (str, optional): where processed files are written; defaults to
            ``$GRAPHKIT_DATA`` or ``~/.cache/graphkit``.
        mirror (str, optional): read-only folder of raw files (laid out like
            the loaders' roots); defaults to ``$GRAPHKIT_MIRROR``.
        split (str, optional): ``public``, ``geom-gcn`` (10 fixed 48/32/20
            splits), ``random`` (seeded class-balanced 60/20/20 for nodes,
            70/10/20 for links) or ``ogb``. Defaults to the dataset's own.
        seed (int): seed of synthetic graphs (random splits are drawn per
            run by :meth:`DatasetBundle.split_for_run`).
        task (str, optional): ``node``, ``link``, ``graph`` or
            ``recommendation``; defaults to the dataset's natural task.
        ratios (tuple, optional): train/val/test ratios of random splits.
        normalize_features (bool): row-normalise node features
            (:class:`~torch_geometric.transforms.NormalizeFeatures`).
        options (dict, optional): generator options for ``csbm`` / ``sbm``.
        pre_transform (callable, optional): applied once when the dataset is
            processed and cached with it (PyG's ``pre_transform``), e.g.
            :class:`~graphkit.transforms.FlowerPetalLift`. A cache built
            with a different ``pre_transform`` is rebuilt.
        undirected (bool): add the reverse of every edge of a node-level
            graph (the Geom-GCN WebKB / Wikipedia / Actor files are
            directed; most baselines are reported on their symmetrised
            form).
    """
    spec = get_spec(name)
    task = task or spec.task
    if task not in spec.supported_tasks:
        raise ValueError(f"Dataset '{spec.name}' supports task(s) "
                         f"{', '.join(spec.supported_tasks)}; got '{task}'")
    if split is not None:
        split = split.lower()
        allowed = set(spec.splits) | {'fixed'} if 'geom-gcn' in spec.splits \
            else set(spec.splits)
        if task == 'link':
            allowed = {'random'} if spec.family != 'OGB' else {'ogb'}
        if split not in allowed | {'official'}:
            raise ValueError(f"Unknown split '{split}' for dataset "
                             f"'{spec.name}' ({task} task). Valid splits: "
                             f"{', '.join(sorted(allowed))}")
    root_path = resolve_root(root)
    layout = spec.layout(spec.name, split) if spec.layout else None
    dataset_kwargs: dict[str, Any] = {}
    if layout is not None:
        stage_raw_files(spec.name, layout, root_path, resolve_mirror(mirror))
        raw = layout.dirs[0]
        processed = root_path / (raw[:-3] + 'processed' if raw.endswith(
            '/raw') else raw + '/processed')
        stale = _stale_pre_transform(processed, pre_transform)
        if spec.family != 'OGB':
            dataset_kwargs['force_reload'] = stale
        elif stale:
            # OGB's classes take no force_reload: drop our processed cache
            # (under the writable root, never the mirror) so it is rebuilt.
            import shutil
            shutil.rmtree(processed)
    dataset_kwargs['pre_transform'] = pre_transform
    bundle = spec.build(spec.name, root=root_path, split=split, seed=seed,
                        task=task, ratios=ratios, options=options,
                        dataset_kwargs=dataset_kwargs)
    if undirected and bundle.task == 'node' and \
            not bundle.info.get('inductive'):
        from torch_geometric.utils import to_undirected
        bundle.data.edge_index = to_undirected(bundle.data.edge_index,
                                               num_nodes=bundle.data.num_nodes)
    if normalize_features and bundle.task in ('node', 'link') and \
            not bundle.info.get('inductive'):
        from torch_geometric.transforms import NormalizeFeatures
        if bundle.data.x is not None:
            bundle.data = NormalizeFeatures()(bundle.data)
    return bundle
