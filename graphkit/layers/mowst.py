r"""Mixture of weak and strong experts (`Zeng et al., ICLR 2024
<https://arxiv.org/abs/2311.05185>`_): the confidence of the weak expert
(an MLP) decides, per node, how much its prediction counts against the
strong expert's (a GNN).

With :math:`\mathbf{p}_v = \mathrm{softmax}(\mathbf{z}_v)` the weak
expert's prediction over :math:`K` classes, the dispersions are

.. math::
    D_{var}(\mathbf{p}) = \frac{\mathrm{Var}(\mathbf{p})}
    {\mathrm{Var}(\mathbf{e}_1)} = \frac{K^2}{K - 1}\,\frac{1}{K}
    \sum_k \big(p_k - \tfrac{1}{K}\big)^2, \qquad
    D_{ent}(\mathbf{p}) = 1 - \frac{H(\mathbf{p})}{\ln K},

both 0 for a uniform and 1 for a one-hot prediction, and the confidence is
:math:`C_v = \sigma(\mathrm{MLP}([D_{var}, D_{ent}]\,[\Vert\,
\mathbf{x}_v]))`, a learnable monotone-in-practice map of the dispersion.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Module

from torch_geometric.nn import MLP

__all__ = ['dispersion', 'ConfidenceGate', 'ExpertOutputs', 'mowst_loss',
           'mixture_log_probs']


def dispersion(logits: Tensor) -> Tensor:
    r""":math:`[D_{var}, D_{ent}]` of ``softmax(logits)``, shape
    :obj:`[N, 2]`, each in :math:`[0, 1]` (one softmax of the raw logits)."""
    if logits.dim() != 2 or logits.size(-1) < 2:
        raise ValueError(f"dispersion needs logits of shape [N, K >= 2], "
                         f"got {tuple(logits.shape)}")
    k = logits.size(-1)
    logp = F.log_softmax(logits, dim=-1)
    p = logp.exp()
    var = (p - 1.0 / k).pow(2).mean(-1) * (k * k / (k - 1))
    ent = -(p * logp).sum(-1)
    return torch.stack([var, 1.0 - ent / math.log(k)], dim=-1).clamp(0, 1)


class ConfidenceGate(Module):
    r"""The learnable confidence :math:`C_v \in [0, 1]`.

    Args:
        hidden_channels (int): width of the gate MLP.
        num_layers (int): its linear layers (BatchNorm, ReLU, dropout between
            them, as in the reference code).
        dropout (float): dropout in the gate.
        in_channels (int): node features appended to the dispersions (0:
            the gate sees the dispersions only).
        dispersion_grad (bool): let gradients reach the weak expert through
            its dispersion (the reference code computes it without).
    """
    def __init__(self, hidden_channels: int = 16, num_layers: int = 2,
                 dropout: float = 0.0, in_channels: int = 0,
                 dispersion_grad: bool = False) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.dispersion_grad = dispersion_grad
        self.mlp = MLP(in_channels=2 + in_channels,
                       hidden_channels=hidden_channels, out_channels=1,
                       num_layers=max(num_layers, 1), dropout=dropout,
                       norm='batch_norm' if num_layers > 1 else None)

    def reset_parameters(self) -> None:
        self.mlp.reset_parameters()

    def forward(self, weak_logits: Tensor, x: Tensor | None = None
                ) -> Tensor:
        r""":math:`C_v`; see :meth:`logit` for :math:`\sigma^{-1}(C_v)`."""
        return torch.sigmoid(self.logit(weak_logits, x))

    def logit(self, weak_logits: Tensor, x: Tensor | None = None
              ) -> Tensor:
        if self.dispersion_grad:
            feats = dispersion(weak_logits)
        else:
            with torch.no_grad():
                feats = dispersion(weak_logits)
        if self.in_channels:
            if x is None or x.size(-1) != self.in_channels:
                raise ValueError(f"The gate expects node features of width "
                                 f"{self.in_channels}")
            feats = torch.cat([feats, x], dim=-1)
        return self.mlp(feats).view(-1)


class ExpertOutputs(NamedTuple):
    r"""Logits of the weak and strong experts, the confidence :math:`C` and
    its logit :math:`\sigma^{-1}(C)` (:math:`\pm\infty` for a forced 0 or
    1), from which :math:`\log C` and :math:`\log(1 - C)` are taken
    without saturation."""
    weak: Tensor
    strong: Tensor
    confidence: Tensor
    confidence_logit: Tensor

    @classmethod
    def from_logit(cls, weak: Tensor, strong: Tensor,
                   logit: Tensor) -> 'ExpertOutputs':
        return cls(weak, strong, torch.sigmoid(logit), logit)

    @classmethod
    def from_confidence(cls, weak: Tensor, strong: Tensor,
                        c: Tensor) -> 'ExpertOutputs':
        return cls(weak, strong, c, torch.log(c) - torch.log1p(-c))

    def select(self, index) -> 'ExpertOutputs':
        return ExpertOutputs(*(t[index] for t in self))


def mowst_loss(out: ExpertOutputs, y: Tensor) -> Tensor:
    r"""The Mowst loss, :math:`\frac{1}{|V|}\sum_v C_v\,\ell(\mathbf{p}_v,
    y_v) + (1 - C_v)\,\ell(\mathbf{p}'_v, y_v)` with cross-entropy
    :math:`\ell`."""
    c = out.confidence
    lw = F.cross_entropy(out.weak, y, reduction='none')
    ls = F.cross_entropy(out.strong, y, reduction='none')
    return (c * lw + (1.0 - c) * ls).mean()


def mixture_log_probs(out: ExpertOutputs) -> Tensor:
    r""":math:`\log\big(C\,\mathbf{p} + (1 - C)\,\mathbf{p}'\big)`, the
    expected prediction (Mowst's deterministic inference, and Mowst*'s
    output in training and evaluation alike). Computed with a log-sum-exp
    from the confidence logit, so :math:`C \in \{0, 1\}` is exact and
    saturated gates keep finite gradients."""
    t = out.confidence_logit.unsqueeze(-1)
    # log C = -softplus(-t), log(1 - C) = -softplus(t): finite gradients
    # even where the sigmoid saturates
    a = F.log_softmax(out.weak, dim=-1) - F.softplus(-t)
    b = F.log_softmax(out.strong, dim=-1) - F.softplus(t)
    return torch.logaddexp(a, b)
