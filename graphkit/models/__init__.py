r"""Whole networks registered by name, built by a resolver."""
from graphkit.models import basic, higcn, sheaf  # noqa: F401  (registration)
from graphkit.models import mowst, ncn, recommendation  # noqa: F401
from graphkit.models import graph_transformer  # noqa: F401
from graphkit.models import deep  # noqa: F401
from graphkit.models.heads import GraphModel, LinkModel, NodeModel
from graphkit.models.higcn import HiGCN, HiGCNGraphEncoder
from graphkit.models.graph_transformer import GPS, GraphTransformer
from graphkit.models.mowst import Mowst
from graphkit.models.ncn import NCNLinkModel
from graphkit.models.sheaf import NSD
from graphkit.models.registry import (ModelEntry, build, build_encoder,
                                      model_names, pre_transform_for,
                                      register, resolve)

__all__ = ['build', 'build_encoder', 'register', 'resolve', 'model_names',
           'ModelEntry', 'NodeModel', 'LinkModel', 'GraphModel', 'HiGCN',
           'HiGCNGraphEncoder', 'NSD', 'NCNLinkModel', 'Mowst', 'GraphTransformer', 'GPS',
           'pre_transform_for']
