r"""Shared data loaders: dataset registry, offline mirror, splits, batch
iterators and synthetic graphs."""
from graphkit.data.registry import (DatasetBundle, DatasetSpec, TASK_KINDS,
                                    dataset_names, get_spec, load)
from graphkit.data.sources import (DatasetNotAvailableError, resolve_mirror,
                                   resolve_root)
from graphkit.data.splits import GraphSplit, LinkSplit, NodeSplit
from graphkit.data.synthetic import csbm, edge_homophily, sbm

__all__ = [
    'load',
    'DatasetBundle',
    'DatasetSpec',
    'TASK_KINDS',
    'dataset_names',
    'get_spec',
    'DatasetNotAvailableError',
    'resolve_root',
    'resolve_mirror',
    'NodeSplit',
    'LinkSplit',
    'GraphSplit',
    'csbm',
    'sbm',
    'edge_homophily',
]
