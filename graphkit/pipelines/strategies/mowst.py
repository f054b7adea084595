r"""Mowst's alternating training (`Zeng et al., ICLR 2024
<https://arxiv.org/abs/2311.05185>`_): the weak expert (with the
confidence gate) and the strong expert take turns on the same loss

.. math::
    \mathcal{L} = \frac{1}{|V_{train}|}\sum_v C_v\,\ell(\mathbf{p}_v, y_v)
    + (1 - C_v)\,\ell(\mathbf{p}'_v, y_v),

each with its own optimiser, while the other expert is frozen (its output
computed without gradient). Schedule: ``pretrain_epochs`` epochs of the
strong expert alone on its own cross-entropy (the reference scripts'
``pretrain_model2``), then turns of ``turn_epochs`` epochs, weak first.
Turns are counted in epochs, so the schedule works the same for full-batch
and neighbour-sampled mini-batch training.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.nn import Module

from graphkit.layers.mowst import mowst_loss
from graphkit.pipelines.strategies.backprop import NonFiniteLossError
from graphkit.pipelines.strategies.base import Strategy, build_optimizer

__all__ = ['MowstStrategy']


class MowstStrategy(Strategy):
    r"""Alternating expert training for :class:`~graphkit.models.mowst.Mowst`.

    Args:
        model (Mowst): the mixture (``star=False``).
        pretrain_epochs (int): strong-expert-only epochs first.
        turn_epochs (int): epochs per turn afterwards.
        **kwargs: optimiser settings (one optimiser of that kind per expert).
    """
    name = 'mowst'

    def __init__(self, model: Module, *, optimizer: str = 'adam',
                 lr: float = 0.01, weight_decay: float = 0.0,
                 grad_clip: float | None = None, pretrain_epochs: int = 0,
                 turn_epochs: int = 1, **_: Any) -> None:
        if not hasattr(model, 'experts') or getattr(model, 'star', True):
            raise ValueError("The 'mowst' strategy trains a Mowst model "
                             "(--model mowst); Mowst* (mowst-star) and other "
                             "models train with 'backprop'")
        if turn_epochs < 1 or pretrain_epochs < 0:
            raise ValueError(f"Need turn_epochs >= 1 and pretrain_epochs >= "
                             f"0, got {turn_epochs} and {pretrain_epochs}")
        self.model = model
        self.grad_clip = grad_clip
        self.pretrain_epochs, self.turn_epochs = pretrain_epochs, turn_epochs
        self.weak_opt = build_optimizer(model.weak_parameters(), optimizer,
                                        lr, weight_decay)
        self.strong_opt = build_optimizer(model.strong_parameters(),
                                          optimizer, lr, weight_decay)
        self.optimizer = self.strong_opt
        self.epoch = 1

    def begin_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def phase(self, epoch: int | None = None) -> str:
        r"""``pretrain``, ``weak`` or ``strong`` for an epoch (1-based)."""
        e = (self.epoch if epoch is None else epoch) - 1
        if e < self.pretrain_epochs:
            return 'pretrain'
        turn = (e - self.pretrain_epochs) // self.turn_epochs
        return 'weak' if turn % 2 == 0 else 'strong'

    def step(self, task, batch: Any) -> dict[str, float]:
        model = self.model
        model.train()
        phase = self.phase()
        if phase == 'pretrain':
            def call(x, edge_index, **kw):
                return model.strong(x, edge_index, **kw)
            out, y = task.train_outputs(model, batch, call)
            loss = F.cross_entropy(out, y)
            opt, params = self.strong_opt, model.strong_parameters()
        else:
            weak_turn = phase == 'weak'
            frozen = 'strong' if weak_turn else 'weak'

            def call(x, edge_index, **kw):
                return model.experts(x, edge_index, frozen=frozen, **kw)

            out, y = task.train_outputs(model, batch, call)
            loss = mowst_loss(out, y)
            opt, params = ((self.weak_opt, model.weak_parameters())
                           if weak_turn else
                           (self.strong_opt, model.strong_parameters()))
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"non-finite training loss "
                                     f"({float(loss.detach())}) in the "
                                     f"{phase} phase")
        self.weak_opt.zero_grad(set_to_none=True)
        self.strong_opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, self.grad_clip)
        opt.step()
        return {'loss': float(loss.detach())}

    def state_dict(self) -> dict[str, Any]:
        return {'weak': self.weak_opt.state_dict(),
                'strong': self.strong_opt.state_dict(), 'epoch': self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.weak_opt.load_state_dict(state['weak'])
        self.strong_opt.load_state_dict(state['strong'])
        self.epoch = state['epoch']
