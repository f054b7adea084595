r"""The model registry and its resolver.

Two kinds of entries exist:

* **encoders** (``kind='encoder'``) map node features to node embeddings,
  ``forward(x, edge_index, edge_weight=None) -> Tensor``. They are wrapped
  per task by :func:`build` (a classifier head for nodes, a pair decoder for
  links, pooling for graphs), so every encoder serves every task and can be
  reused inside other models (e.g. as an expert or link encoder);
* **models** (``kind='model'``) are whole task models with their own
  builder.

Builders take plain keyword arguments; :func:`build` passes each builder
only the arguments its signature accepts, and reports the rest.
"""
from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import Any, Callable

from torch.nn import Module

log = logging.getLogger(__name__)

__all__ = ['ModelEntry', 'register', 'resolve', 'model_names', 'build',
           'build_encoder', 'call_with_supported', 'pre_transform_for']


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., Module]
    kind: str  # 'encoder' or 'model'
    tasks: tuple[str, ...]
    description: str = ''
    pre_transform: Callable[..., Any] | None = None
    # Report the model named by its ``encoder`` hyperparameter, trained
    # alone, beside it (e.g. Mowst against its strong expert).
    compare_encoder: bool = False
    # Models trained beside it by default, with its own settings (e.g. NCN
    # against its GAE ablation).
    compare_with: tuple[str, ...] = ()


_REGISTRY: dict[str, ModelEntry] = {}


def register(name: str, *, kind: str = 'encoder',
             tasks: tuple[str, ...] = ('node', 'link', 'graph'),
             description: str = '',
             pre_transform: Callable[..., Any] | None = None,
             compare_encoder: bool = False,
             compare_with: tuple[str, ...] = ()) -> Callable:
    r"""Decorator that registers a builder under ``name``.

    Args:
        kind (str): ``encoder`` (wrapped per task) or ``model``.
        tasks (tuple): the tasks it serves.
        description (str): one line for ``graphkit models``.
        pre_transform (callable, optional): builds, from the model's
            hyperparameters, the transform its data needs (e.g. a simplicial
            lift); the pipeline applies it as the dataset's
            ``pre_transform``, so the result is cached.
        compare_encoder (bool): the CLI also trains the model named by the
            ``encoder`` hyperparameter alone, on the same splits and seeds,
            and reports both.
        compare_with (tuple): models the CLI also trains, by default, with
            this model's settings on the same splits and seeds (an ablation
            that shows what the model adds).
    """
    if kind not in ('encoder', 'model'):
        raise ValueError(f"kind must be 'encoder' or 'model', got '{kind}'")

    def wrap(fn: Callable[..., Module]) -> Callable[..., Module]:
        key = name.lower()
        if key in _REGISTRY:
            raise ValueError(f"Model '{key}' is already registered")
        _REGISTRY[key] = ModelEntry(key, fn, kind, tuple(tasks),
                                    description or (fn.__doc__ or '').strip()
                                    .split('\n')[0], pre_transform,
                                    compare_encoder, tuple(compare_with))
        return fn

    return wrap


def model_names(task: str | None = None, kind: str | None = None
                ) -> list[str]:
    return sorted(n for n, e in _REGISTRY.items()
                  if (task is None or task in e.tasks) and (
                      kind is None or e.kind == kind))


def resolve(name: str, task: str | None = None,
            kind: str | None = None) -> ModelEntry:
    r"""Looks ``name`` up (case-insensitive); the error lists valid names."""
    key = str(name).strip().lower()
    entry = _REGISTRY.get(key)
    if entry is None or (kind is not None and entry.kind != kind):
        what = 'encoder' if kind == 'encoder' else 'model'
        raise ValueError(f"Unknown {what} '{name}'. Valid names: "
                         f"{', '.join(model_names(kind=kind))}")
    if task is not None and task not in entry.tasks:
        raise ValueError(f"Model '{key}' does not support the '{task}' task "
                         f"(it supports {', '.join(entry.tasks)}). Models for "
                         f"'{task}': {', '.join(model_names(task))}")
    return entry


def call_with_supported(fn: Callable, kwargs: dict[str, Any],
                        owner: str = '') -> tuple[Any, set[str]]:
    r"""Calls ``fn`` with the subset of ``kwargs`` its signature accepts.
    Returns the result and the set of keys it used."""
    params = inspect.signature(fn).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return fn(**kwargs), set(kwargs)
    used = {k: v for k, v in kwargs.items() if k in params}
    missing = [n for n, p in params.items()
               if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD,
                                                      p.KEYWORD_ONLY)
               and n not in used]
    if missing:
        raise TypeError(f"{owner or fn.__name__} needs argument(s) "
                        f"{', '.join(missing)}")
    return fn(**used), set(used)


def build_encoder(name: str, in_channels: int, out_channels: int,
                  **hparams: Any) -> Module:
    r"""Builds the registered encoder ``name`` with plain arguments."""
    entry = resolve(name, kind='encoder')
    model, _ = call_with_supported(
        entry.builder, dict(hparams, in_channels=in_channels,
                            out_channels=out_channels), entry.name)
    return model


def build(name: str, task: str, in_channels: int = 0, out_channels: int = 1,
          **hparams: Any) -> Module:
    r"""Builds a whole model for ``task`` from the registry.

    Args:
        name (str): registered model or encoder name.
        task (str): ``node``, ``link`` or ``graph``.
        in_channels (int): node feature size (0 for featureless graphs).
        out_channels (int): classes (node / graph) or 1 (link).
        **hparams: hyperparameters; each builder takes the ones it knows.
    """
    from graphkit.models import heads
    entry = resolve(name, task=task)
    kwargs = dict(hparams, in_channels=in_channels, out_channels=out_channels)
    if entry.kind == 'model':
        model, used = call_with_supported(entry.builder, kwargs, entry.name)
    else:
        wrapper = heads.TASK_WRAPPERS[task]
        model, used = call_with_supported(
            wrapper, dict(kwargs, encoder=entry.name), f'{task} model')
    unused = sorted(set(hparams) - used - {'encoder'})
    if unused:
        log.debug("Model '%s' ignores hyperparameter(s): %s", entry.name,
                  ', '.join(unused))
    return model


def pre_transform_for(name: str, **hparams: Any) -> Any:
    r"""The data transform model ``name`` needs (or :obj:`None`), built from
    the same hyperparameters as the model. For a wrapper model with an
    ``encoder`` hyperparameter, the encoder's transform is used."""
    entry = resolve(name)
    if entry.pre_transform is None and hparams.get('encoder'):
        entry = resolve(hparams['encoder'])
    if entry.pre_transform is None:
        return None
    transform, _ = call_with_supported(entry.pre_transform, hparams,
                                       f'{entry.name} pre_transform')
    return transform
