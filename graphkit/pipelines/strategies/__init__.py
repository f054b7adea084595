r"""Training strategies: how a step updates parameters."""
from __future__ import annotations

from graphkit.pipelines.strategies.backprop import Backprop, NonFiniteLossError
from graphkit.pipelines.strategies.base import Strategy, build_optimizer
from graphkit.pipelines.strategies.forward import (ForwardFFLA, ForwardFFVN,
                                                  ForwardLearning, ForwardSF,
                                                  ForwardTopDown,
                                                  ForwardTopDownLoss)
from graphkit.pipelines.strategies.mowst import MowstStrategy

__all__ = ['Strategy', 'Backprop', 'MowstStrategy', 'ForwardLearning',
           'ForwardSF', 'ForwardFFVN', 'ForwardFFLA', 'ForwardTopDown',
           'ForwardTopDownLoss',
           'NonFiniteLossError',
           'build_optimizer',
           'STRATEGIES', 'resolve_strategy']

STRATEGIES: dict[str, type[Strategy]] = {'backprop': Backprop,
                                         'mowst': MowstStrategy,
                                         'forward-sf': ForwardSF,
                                         'forward-ff-vn': ForwardFFVN,
                                         'forward-ff-la': ForwardFFLA,
                                         'forward-topdown': ForwardTopDown,
                                         'forward-topdown-loss':
                                             ForwardTopDownLoss}


def resolve_strategy(name: str) -> type[Strategy]:
    key = name.strip().lower()
    if key not in STRATEGIES:
        raise ValueError(f"Unknown strategy '{name}'. Valid: "
                         f"{', '.join(sorted(STRATEGIES))}")
    return STRATEGIES[key]
