r"""Whole networks registered by name, built by a resolver."""
from graphkit.models import basic  # noqa: F401  (registers the baselines)
from graphkit.models.heads import GraphModel, LinkModel, NodeModel
from graphkit.models.registry import (ModelEntry, build, build_encoder,
                                      model_names, register, resolve)

__all__ = ['build', 'build_encoder', 'register', 'resolve', 'model_names',
           'ModelEntry', 'NodeModel', 'LinkModel', 'GraphModel']
