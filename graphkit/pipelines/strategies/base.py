r"""The strategy interface: how one training step updates parameters."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch.nn import Module

__all__ = ['Strategy', 'build_optimizer', 'train_mode']


def build_optimizer(params, name: str, lr: float,
                    weight_decay: float) -> torch.optim.Optimizer:
    r"""Resolves an optimizer by name (``adam``, ``adamw``, ``sgd``)."""
    table = {'adam': torch.optim.Adam, 'adamw': torch.optim.AdamW,
             'sgd': torch.optim.SGD}
    key = name.lower()
    if key not in table:
        raise ValueError(f"Unknown optimizer '{name}'. Valid: "
                         f"{', '.join(table)}")
    return table[key](params, lr=lr, weight_decay=weight_decay)


def train_mode(module: Module) -> None:
    r"""``module.train()``, skipped when every submodule is already in
    training mode. :meth:`Module.train` sets the flag on every submodule
    through ``Module.__setattr__``; on small graphs that costs a noticeable
    part of a training step (about 0.3 ms for a Mowst model of 30
    modules), at every step."""
    if not all(m.training for m in module.modules()):
        module.train()


class Strategy(ABC):
    r"""A training strategy owns the optimizer state and implements
    :meth:`step`, which takes one batch and returns scalar metrics (at least
    ``loss``). The loop never touches gradients itself, so backprop,
    forward-only (layer-local) training and expert schedules share it."""
    name = ''

    def __init__(self, model: Module, *, optimizer: str = 'adam',
                 lr: float = 0.01, weight_decay: float = 0.0,
                 decoder_lr: float | None = None,
                 sheaf_decay: float | None = None,
                 grad_clip: float | None = None,
                 clip_per_module: bool = False) -> None:
        self.model = model
        self.grad_clip = grad_clip
        self.clip_per_module = clip_per_module
        self.optimizer = build_optimizer(
            self.param_groups(model, lr, decoder_lr, sheaf_decay), optimizer,
            lr, weight_decay)

    def clip_gradients(self) -> None:
        r"""Clips the gradient norm to ``grad_clip`` (if set): over all
        parameters at once, or with ``clip_per_module`` separately for each
        direct child module of the model (e.g. a link model's embedding
        table, encoder and decoder, as OGB's link-prediction examples do)
        and for the model's own parameters."""
        if not self.grad_clip:
            return
        if not self.clip_per_module:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                           self.grad_clip)
            return
        groups = [list(self.model.parameters(recurse=False))]
        groups += [list(child.parameters()) for child in
                   self.model.children()]
        for params in groups:
            if params:
                torch.nn.utils.clip_grad_norm_(params, self.grad_clip)

    @staticmethod
    def param_groups(model: Module, lr: float, decoder_lr: float | None,
                     sheaf_decay: float | None = None
                     ) -> list[dict[str, Any]]:
        r"""Parameter groups: the model's ``decoder`` gets ``decoder_lr``
        when both are set (separate encoder / predictor rates), and modules
        declaring ``decay_group = 'sheaf'`` (sheaf learners) get weight decay
        ``sheaf_decay`` when it is set. Empty groups are dropped."""
        decoder = getattr(model, 'decoder', None)
        dec_ids = ({id(p) for p in decoder.parameters()}
                   if decoder_lr is not None and decoder is not None
                   else set())
        sheaf_ids = set()
        if sheaf_decay is not None:
            for mod in model.modules():
                if getattr(mod, 'decay_group', None) == 'sheaf':
                    sheaf_ids.update(id(p) for p in mod.parameters())
        groups: dict[tuple[bool, bool], list] = {}
        for p in model.parameters():
            if p.requires_grad:
                key = (id(p) in dec_ids, id(p) in sheaf_ids)
                groups.setdefault(key, []).append(p)
        out = []
        for (is_dec, is_sheaf), params in sorted(groups.items()):
            group: dict[str, Any] = {'params': params}
            if is_dec:
                group['lr'] = decoder_lr
            if is_sheaf:
                group['weight_decay'] = sheaf_decay
            out.append(group)
        return out

    @classmethod
    def build_model(cls, name: str, task, dims: dict[str, Any],
                    hparams: dict[str, Any], **options: Any) -> Module:
        r"""Builds registered model ``name`` for ``task`` (``dims`` from
        the data, ``hparams`` from the config). Strategies that train a
        differently shaped model (e.g. layer-local learning) override it;
        ``options`` are the strategy's own settings."""
        from graphkit import models
        return models.build(name, task=task.kind, **dims, **hparams)

    def total_epochs(self, epochs: int) -> int:
        r"""The loop's epoch budget for ``train.epochs`` (layer-local
        strategies read ``epochs`` per layer)."""
        return epochs

    def begin_epoch(self, epoch: int) -> None:
        r"""Called by the loop before the batches of ``epoch`` (1-based);
        strategies with a schedule (e.g. alternating experts) record it.
        The default keeps no schedule."""
        return None

    @property
    def selectable(self) -> bool:
        r"""Whether the model evaluated now may become the run's selected
        (best-validation) model. False during phases that train a part of
        the model on its own, such as pretraining one expert."""
        return True

    def unselected_reason(self) -> str:
        r"""Why a run that has just ended had no selectable evaluation (for
        the loop's error message); empty when the strategy has no
        unselectable phases."""
        return ''

    def end_epoch(self, epoch: int,
                  scores: dict[str, float] | None) -> bool:
        r"""Called by the loop after ``epoch`` with its evaluation scores
        (``None`` when the epoch was not evaluated). A strategy may restore
        or roll back weights here; returning ``True`` ends the run. The
        default does neither."""
        return False

    @abstractmethod
    def step(self, task, batch: Any) -> dict[str, float]:
        r"""Trains on one batch and returns metrics such as ``loss``."""

    def state_dict(self) -> dict[str, Any]:
        return {'optimizer': self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state['optimizer'])
