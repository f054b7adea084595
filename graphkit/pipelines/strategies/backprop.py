r"""End-to-end backpropagation, the default strategy."""
from __future__ import annotations

from typing import Any

import torch

from graphkit.pipelines.strategies.base import Strategy, train_mode

__all__ = ['Backprop', 'NonFiniteLossError']


class NonFiniteLossError(FloatingPointError):
    r"""Raised when a training loss is NaN or infinite."""


class Backprop(Strategy):
    r"""Minimises the task loss end to end with one optimizer."""
    name = 'backprop'

    def step(self, task, batch: Any) -> dict[str, float]:
        train_mode(self.model)
        self.optimizer.zero_grad(set_to_none=True)
        loss = task.loss(self.model, batch)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"non-finite training loss "
                                     f"({float(loss.detach())})")
        loss.backward()
        self.clip_gradients()
        self.optimizer.step()
        return {'loss': float(loss.detach())}
