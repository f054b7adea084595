r"""Mowst's alternating training (`Zeng et al., ICLR 2024
<https://arxiv.org/abs/2311.05185>`_): the weak expert (with the
confidence gate) and the strong expert take turns on the same loss

.. math::
    \mathcal{L} = \frac{1}{|V_{train}|}\sum_v C_v\,\ell(\mathbf{p}_v, y_v)
    + (1 - C_v)\,\ell(\mathbf{p}'_v, y_v),

each with its own optimiser, while the other expert is frozen (its output
computed without gradient). First the experts named by ``pretrain`` are
trained alone on their own cross-entropy, one after the other (the reference
scripts' ``--submethod``: ``strong`` is ``pretrain_model2``, ``weak``
``pretrain_model1``, ``both`` ``pretrain_both``, ``none`` skips it), then the
turns alternate, weak first.

Two schedules:

* fixed (``turn_patience=0``): ``pretrain_epochs`` epochs, then turns of
  exactly ``turn_epochs`` epochs;
* validated (``turn_patience > 0``, the reference's): pretraining and every
  turn end after ``turn_patience`` evaluations without a better validation
  score (``pretrain_patience`` for pretraining, when given), or at
  ``pretrain_epochs`` / ``turn_epochs`` epochs, and the phase's best weights
  are restored. A turn that does not beat the best validation
  score before it is rolled back entirely, to the model it started from.
  The run ends after ``big_patience`` rounds (a weak and a strong turn)
  without an accepted turn.

With ``pretrain='both'`` each expert gets its own pretraining phase of (at
most) ``pretrain_epochs`` epochs, the strong one first.

Epochs count the same for full-batch and neighbour-sampled training. While
an expert is pretrained the model is evaluated as that expert alone and is
not a candidate for the run's selected model.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Module

from graphkit.layers.mowst import mowst_loss
from graphkit.pipelines.strategies.backprop import NonFiniteLossError
from graphkit.pipelines.strategies.base import (Strategy, build_optimizer,
                                                 train_mode)
from graphkit.utils.tensor import check_dropout, set_dropout

__all__ = ['MowstStrategy']


class MowstStrategy(Strategy):
    r"""Alternating expert training for :class:`~graphkit.models.mowst.Mowst`.

    Args:
        model (Mowst): the mixture (``star=False``).
        pretrain (str): which experts are pretrained alone first:
            ``'strong'`` (default), ``'weak'``, ``'both'`` (strong, then
            weak) or ``'none'``.
        pretrain_epochs (int): epochs of each pretraining phase (at most
            that many when ``turn_patience`` is set); 0 skips pretraining.
        turn_epochs (int): epochs per turn (at most that many when
            ``turn_patience`` is set).
        turn_patience (int): evaluations without improvement that end a
            turn; 0 for fixed-length turns.
        pretrain_patience (int, optional): evaluations without improvement
            that end a pretraining phase on the validated schedule
            (default: ``turn_patience``). Giving it the backbone's own
            patience (and ``pretrain_epochs`` its epoch budget) pretrains
            the strong expert exactly as the backbone alone is trained.
        big_patience (int): rounds without an accepted turn that end the
            run (validated schedule only; 0 never ends it).
        dropout (float, optional): after pretraining (from the first turn
            on), every dropout probability of the model, both experts and
            the gate, is set to this value, as the reference code does
            with its ``--dropout_gate`` (:func:`~graphkit.utils.tensor.
            set_dropout`; :obj:`None` keeps the model's own).
        **kwargs: optimiser settings (one optimiser of that kind per expert).
    """
    name = 'mowst'
    _PRETRAIN = {'strong': ('strong', ), 'weak': ('weak', ),
                 'both': ('strong', 'weak'), 'none': ()}

    def __init__(self, model: Module, *, optimizer: str = 'adam',
                 lr: float = 0.01, weight_decay: float = 0.0,
                 grad_clip: float | None = None, pretrain: str = 'strong',
                 pretrain_epochs: int = 0, turn_epochs: int = 1,
                 turn_patience: int = 0, big_patience: int = 0,
                 pretrain_patience: int | None = None,
                 dropout: float | None = None, **_: Any) -> None:
        if not hasattr(model, 'experts') or getattr(model, 'star', True):
            raise ValueError("The 'mowst' strategy trains a Mowst model "
                             "(--model mowst); Mowst* (mowst-star) and other "
                             "models train with 'backprop'")
        if (turn_epochs < 1 or pretrain_epochs < 0 or turn_patience < 0
                or big_patience < 0):
            raise ValueError(f"Need turn_epochs >= 1 and pretrain_epochs, "
                             f"turn_patience, big_patience >= 0, got "
                             f"{turn_epochs}, {pretrain_epochs}, "
                             f"{turn_patience} and {big_patience}")
        if pretrain_patience is not None and (pretrain_patience < 1
                                              or not turn_patience):
            raise ValueError(f"pretrain_patience must be >= 1 and needs the "
                             f"validated schedule (turn_patience > 0), got "
                             f"pretrain_patience={pretrain_patience}, "
                             f"turn_patience={turn_patience}")
        if dropout is not None:
            check_dropout(dropout, 'train.mowst_dropout')
        if pretrain not in self._PRETRAIN:
            raise ValueError(f"Unknown Mowst pretraining '{pretrain}'; "
                             f"expected one of {sorted(self._PRETRAIN)}")
        self.pretrain_order = (self._PRETRAIN[pretrain] if pretrain_epochs
                               else ())
        self.pretrain_idx = 0      # which expert of pretrain_order
        self.model = model
        self.grad_clip = grad_clip
        self.pretrain_epochs, self.turn_epochs = pretrain_epochs, turn_epochs
        self.turn_patience, self.big_patience = turn_patience, big_patience
        self.pretrain_patience = (turn_patience if pretrain_patience is None
                                  else pretrain_patience)
        self.weak_opt = build_optimizer(model.weak_parameters(), optimizer,
                                        lr, weight_decay)
        self.strong_opt = build_optimizer(model.strong_parameters(),
                                          optimizer, lr, weight_decay)
        self.optimizer = self.strong_opt
        self.higher_is_better = True
        self.epoch = 1
        # validated schedule: the current phase and its bookkeeping
        self.current = 'pretrain' if self.pretrain_order else 'weak'
        self.turn_len = 0          # epochs into the current phase
        self.turn_bad = 0          # evaluations without improvement
        self.turn_best: float | None = None
        self.turn_state: dict[str, Tensor] | None = None
        self.accepted: float | None = None   # best score of accepted turns
        self.accepted_state: dict[str, Tensor] | None = None
        self.bad_rounds = 0
        self.round_improved = False
        self.turns: list[dict[str, Any]] = []   # log of finished phases
        self.dropout = dropout
        self._route()

    def _pretrain_text(self) -> str:
        order = ' then '.join(self.pretrain_order)
        text = (f"Mowst first pretrains each expert alone ({order}) for "
                f"train.mowst_pretrain_epochs={self.pretrain_epochs} epochs")
        if self.validated:
            text += (f" at most (fewer after {self.pretrain_patience} "
                     f"evaluations without improvement)")
        return (text + ", and only the mixture's epochs after it can be "
                "selected. Raise --epochs (train.epochs) or lower "
                "train.mowst_pretrain_epochs")

    def total_epochs(self, epochs: int) -> int:
        pretrain = self.pretrain_epochs * len(self.pretrain_order)
        if not self.validated and epochs <= pretrain:
            raise ValueError(f"train.epochs={epochs} ends inside "
                             f"pretraining: {self._pretrain_text()} (need "
                             f"more than {pretrain} epochs)")
        return epochs

    def unselected_reason(self) -> str:
        if self.phase() != 'pretrain':
            return ''
        return (f"the run ended while the {self.pretrain_expert()} expert "
                f"was still being pretrained. {self._pretrain_text()}")

    @property
    def validated(self) -> bool:
        return self.turn_patience > 0

    def pretrain_expert(self, epoch: int | None = None) -> str | None:
        r"""The expert pretrained now (or in ``epoch`` on the fixed
        schedule), ``None`` outside pretraining."""
        if self.phase(epoch) != 'pretrain':
            return None
        if self.validated:
            return self.pretrain_order[self.pretrain_idx]
        e = (self.epoch if epoch is None else epoch) - 1
        return self.pretrain_order[e // self.pretrain_epochs]

    def _route(self) -> None:
        # while pretraining, evaluate the pretrained expert on its own
        self.model.expert_only = self.pretrain_expert()
        if self.dropout is not None and self.phase() != 'pretrain':
            # idempotent, so a resumed (rebuilt) model is switched again
            if not set_dropout(self.model, self.dropout):
                raise ValueError(f"train.mowst_dropout={self.dropout}: "
                                 f"the model has no dropout to set")

    def begin_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self._route()

    @property
    def selectable(self) -> bool:
        return self.phase() != 'pretrain'

    def phase(self, epoch: int | None = None) -> str:
        r"""``pretrain``, ``weak`` or ``strong``: of an epoch (1-based) on
        the fixed schedule, or the current phase on the validated one."""
        if self.validated:
            return self.current
        e = (self.epoch if epoch is None else epoch) - 1
        pretrain = self.pretrain_epochs * len(self.pretrain_order)
        if e < pretrain:
            return 'pretrain'
        turn = (e - pretrain) // self.turn_epochs
        return 'weak' if turn % 2 == 0 else 'strong'

    # -- the validated schedule --------------------------------------------
    def _snapshot(self) -> dict[str, Tensor]:
        return {k: v.detach().clone()
                for k, v in self.model.state_dict().items()}

    def _better(self, a: float, b: float | None) -> bool:
        return b is None or (a > b if self.higher_is_better else a < b)

    def end_epoch(self, epoch: int,
                  scores: dict[str, float] | None) -> bool:
        if not self.validated:
            return False
        self.turn_len += 1
        if scores is not None:
            if self._better(scores['valid'], self.turn_best):
                self.turn_best, self.turn_state = (scores['valid'],
                                                   self._snapshot())
                self.turn_bad = 0
            else:
                self.turn_bad += 1
        limit, patience = ((self.pretrain_epochs, self.pretrain_patience)
                           if self.current == 'pretrain' else
                           (self.turn_epochs, self.turn_patience))
        if self.turn_bad < patience and self.turn_len < limit:
            return False
        return self._finish_phase()

    def _finish_phase(self) -> bool:
        phase, best = self.current, self.turn_best
        if self.turn_state is not None:       # the phase's best weights
            self.model.load_state_dict(self.turn_state)
        if phase == 'pretrain':
            accepted = True
        else:
            accepted = best is not None and self._better(best,
                                                         self.accepted)
            if accepted:
                self.accepted = best
                self.accepted_state = self.turn_state
                self.round_improved = True
            elif self.accepted_state is not None:  # roll back the turn
                self.model.load_state_dict(self.accepted_state)
        log = {'phase': phase, 'epochs': self.turn_len,
               'best_valid': float('nan') if best is None else best,
               'accepted': accepted}
        if phase == 'pretrain':
            log['expert'] = self.pretrain_order[self.pretrain_idx]
        self.turns.append(log)
        self.turn_len, self.turn_bad = 0, 0
        self.turn_best, self.turn_state = None, None
        finished = False
        if phase == 'strong':                  # a round ends
            self.bad_rounds = 0 if self.round_improved else (
                self.bad_rounds + 1)
            self.round_improved = False
            finished = bool(self.big_patience
                            and self.bad_rounds >= self.big_patience)
        if phase == 'pretrain' and (self.pretrain_idx + 1
                                    < len(self.pretrain_order)):
            self.pretrain_idx += 1
        else:
            self.current = 'strong' if phase == 'weak' else 'weak'
        self._route()
        return finished

    # -- one step -----------------------------------------------------------
    def step(self, task, batch: Any) -> dict[str, float]:
        model = self.model
        train_mode(model)
        self.higher_is_better = getattr(task, 'higher_is_better', True)
        phase = self.phase()
        if phase == 'pretrain':
            expert = self.pretrain_expert()

            def call(x, edge_index, **kw):
                if expert == 'weak':
                    return model.weak(x)
                return model.strong(x, edge_index, **kw)
            out, y = task.train_outputs(model, batch, call)
            loss = F.cross_entropy(out, y)
            opt, params = ((self.weak_opt, model.weak_parameters())
                           if expert == 'weak' else
                           (self.strong_opt, model.strong_parameters()))
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

    _SCHEDULE = ('current', 'pretrain_idx', 'turn_len', 'turn_bad',
                 'turn_best', 'turn_state', 'accepted', 'accepted_state',
                 'bad_rounds', 'round_improved', 'turns', 'higher_is_better')

    def state_dict(self) -> dict[str, Any]:
        state = {'weak': self.weak_opt.state_dict(),
                 'strong': self.strong_opt.state_dict(), 'epoch': self.epoch}
        state.update({k: getattr(self, k) for k in self._SCHEDULE})
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.weak_opt.load_state_dict(state['weak'])
        self.strong_opt.load_state_dict(state['strong'])
        self.epoch = state['epoch']
        for k in self._SCHEDULE:
            # checkpoints from before the pretraining choice had one phase
            setattr(self, k, state.get(k, 0) if k == 'pretrain_idx'
                    else state[k])
        self._route()
