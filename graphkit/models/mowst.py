r"""Mowst and Mowst* (`Zeng et al., ICLR 2024
<https://arxiv.org/abs/2311.05185>`_) over any registered node encoder as the
strong expert; the weak expert is an MLP on node features.

* ``mowst``: trained by the ``mowst`` strategy (the two experts in
  alternating turns on the loss :math:`C\ell(\mathbf{p}) + (1-C)\ell(
  \mathbf{p}')`); evaluated by the expected prediction, or by Algorithm 1's
  random rule (keep the weak prediction where :math:`C_v \ge q_v`,
  :math:`q_v \sim U[0, 1]`) with ``inference='sample'``.
* ``mowst-star``: one loss on the mixed prediction :math:`C\mathbf{p} +
  (1-C)\mathbf{p}'`, trained end to end; training and evaluation mix
  probabilities the same way.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.nn import Module

from graphkit.layers.mowst import (ConfidenceGate, ExpertOutputs,
                                   mixture_log_probs)
from graphkit.models.basic import MLPEncoder
from graphkit.models.registry import build_encoder, register

__all__ = ['Mowst']


class Mowst(Module):
    r"""A weak MLP expert, a strong GNN expert and the confidence gate.

    :meth:`experts` returns both experts' logits and :math:`C`;
    :meth:`forward` returns log-probabilities of the prediction:
    :math:`\log(C\mathbf{p} + (1-C)\mathbf{p}')` (``inference=
    'expectation'``) or the log-probabilities of the expert picked per node
    by :math:`C_v \ge q_v` (``inference='sample'``, seeded by
    ``sample_seed``).

    Args:
        weak (Module), strong (Module): encoders mapping node features to
            class logits; ``strong`` takes the graph.
        gate (ConfidenceGate): the confidence.
        star (bool): Mowst* (trained by plain backprop on the mixture).
        inference (str): ``expectation`` or ``sample``.
        force_confidence (float, optional): a constant :math:`C` (tests and
            ablations: 1 gives the weak expert, 0 the strong one).
    """
    def __init__(self, weak: Module, strong: Module, gate: ConfidenceGate,
                 star: bool = False, inference: str = 'expectation',
                 force_confidence: float | None = None) -> None:
        super().__init__()
        if inference not in ('expectation', 'sample'):
            raise ValueError(f"inference must be 'expectation' or 'sample', "
                             f"got '{inference}'")
        self.weak, self.strong, self.gate = weak, strong, gate
        self.star = star
        self.inference = inference
        self.force_confidence = force_confidence
        self.sample_seed = 0
        # 'strong' or 'weak': forward() returns that expert alone (used
        # while one expert is pretrained); None: the mixture
        self.expert_only: str | None = None
        self._last_eval: tuple[int, ExpertOutputs] | None = None

    @property
    def default_strategy(self) -> str:
        return 'backprop' if self.star else 'mowst'

    @property
    def data_keys(self) -> tuple[str, ...]:
        return getattr(self.strong, 'data_keys', ())

    @property
    def supports_sparse_adj(self) -> bool:
        r"""Whether the strong expert takes a sparse ``adj_t`` in place of
        ``edge_index`` (the weak expert reads no graph)."""
        return getattr(self.strong, 'supports_sparse_adj', False)

    def reset_parameters(self) -> None:
        for mod in (self.weak, self.strong, self.gate):
            mod.reset_parameters()

    def weak_parameters(self) -> list:
        r"""Parameters of the weak expert and the gate (one training turn)."""
        return list(self.weak.parameters()) + list(self.gate.parameters())

    def strong_parameters(self) -> list:
        return list(self.strong.parameters())

    def experts(self, x: Tensor, edge_index: Any,
                frozen: str | None = None, **kwargs: Any) -> ExpertOutputs:
        r"""Both experts' logits and the confidence. ``frozen='weak'``
        computes the weak expert and the gate without gradient (the strong
        expert's turn), ``frozen='strong'`` the strong expert (the weak
        turn)."""
        if frozen not in (None, 'weak', 'strong'):
            raise ValueError(f"frozen must be None, 'weak' or 'strong', got "
                             f"'{frozen}'")
        with torch.set_grad_enabled(torch.is_grad_enabled()
                                    and frozen != 'weak'):
            zw = self.weak(x)
            if self.force_confidence is not None:
                c = zw.new_full((zw.size(0), ),
                                float(self.force_confidence))
                t = None
            else:
                t = self.gate.logit(zw, x if self.gate.in_channels else None)
        with torch.set_grad_enabled(torch.is_grad_enabled()
                                    and frozen != 'strong'):
            zs = self.strong(x, edge_index, **kwargs)
        if t is None:
            return ExpertOutputs.from_confidence(zw, zs, c)
        return ExpertOutputs.from_logit(zw, zs, t)

    def forward(self, x: Tensor, edge_index: Any, **kwargs: Any) -> Tensor:
        if self.expert_only == 'strong':
            return self.strong(x, edge_index, **kwargs).log_softmax(-1)
        if self.expert_only == 'weak':
            return self.weak(x).log_softmax(-1)
        if self.expert_only is not None:
            raise ValueError(f"expert_only must be None, 'weak' or "
                             f"'strong', got '{self.expert_only}'")
        out = self.experts(x, edge_index, **kwargs)
        # the last full evaluation pass, reused by diagnostics()
        self._last_eval = (None if self.training or torch.is_grad_enabled()
                           else (x.size(0), out))
        if self.training or self.star or self.inference == 'expectation':
            return mixture_log_probs(out)
        return self.sample(out)

    @torch.no_grad()
    def diagnostics(self, task) -> dict[str, float]:
        r"""On the test nodes, with one seeded draw of Algorithm 1's rule:
        the share decided by the weak expert (``weak_share``), each
        expert's accuracy on the nodes it decides (``weak_acc``,
        ``strong_acc``; NaN when it decides none) and the mean
        confidence."""
        last = getattr(self, '_last_eval', None)
        if (not task.batch_size and last is not None
                and last[0] == task.data.num_nodes):
            out = last[1]
        else:
            out = task.predict(self, call=self.experts)
        self._last_eval = None
        m = task.masks['test'].to(out.confidence.device)
        o = out.select(m)
        y = task.data.y.to(o.weak.device)[m].view(-1)
        g = torch.Generator(device='cpu').manual_seed(self.sample_seed)
        q = torch.rand(o.confidence.size(0), generator=g).to(y.device)
        weak = o.confidence >= q

        def acc(logits: Tensor, part: Tensor) -> float:
            if not bool(part.any()):
                return float('nan')
            return float((logits[part].argmax(-1) == y[part]).float().mean())

        return {'test_weak_share': float(weak.float().mean()),
                'test_weak_acc': acc(o.weak, weak),
                'test_strong_acc': acc(o.strong, ~weak),
                'test_confidence_mean': float(o.confidence.mean())}

    def confidence(self, zw: Tensor, x: Tensor) -> Tensor:
        r""":math:`C` from the weak expert's logits ``zw`` (and the node
        features, when the gate reads them)."""
        if self.force_confidence is not None:
            return zw.new_full((zw.size(0), ), float(self.force_confidence))
        return torch.sigmoid(
            self.gate.logit(zw, x if self.gate.in_channels else None))

    def task_predict(self, task) -> Tensor:
        r"""Predictions for every node of a node task. With
        ``inference='sample'`` and neighbour-sampled (mini-batch) inference,
        Algorithm 1 runs conditionally: the weak expert and the gate see
        every node (features only, no neighbours), and the strong expert
        runs only on the nodes the weak expert does not keep, with their
        receptive fields. It gives the same predictions as :meth:`sample`
        on the full graph; ``last_strong_share`` records the share of nodes
        the strong expert had to decide. Otherwise the task's usual
        inference."""
        if (self.star or self.inference != 'sample' or not task.batch_size
                or self.expert_only is not None):
            return task.predict(self, call=self)
        from graphkit.data import loaders
        self.eval()
        data = task.data
        device = next(self.parameters()).device
        logp, conf = [], []
        with torch.no_grad():
            for chunk in torch.arange(data.num_nodes).split(
                    task.eval_batch_size):
                xb = data.x[chunk].to(device)
                zw = self.weak(xb)
                logp.append(zw.log_softmax(-1).cpu())
                conf.append(self.confidence(zw, xb).cpu())
            out, c = torch.cat(logp), torch.cat(conf)
            g = torch.Generator(device='cpu').manual_seed(self.sample_seed)
            rest = (c < torch.rand(c.size(0), generator=g)).nonzero().view(-1)
            self.last_strong_share = rest.numel() / max(data.num_nodes, 1)
            if rest.numel():
                loader = loaders.neighbor_loader(
                    data, rest, task.eval_batch_size,
                    [-1] * len(task.num_neighbors), shuffle=False)
                for batch in loader:
                    bs = batch.batch_size
                    batch = batch.to(device)
                    zs = self.strong(batch.x, batch.edge_index,
                                     **task.graph_inputs(self, batch))
                    out[batch.n_id[:bs].cpu()] = (
                        zs[:bs].log_softmax(-1).cpu().to(out.dtype))
        return out

    def sample(self, out: ExpertOutputs, seed: int | None = None) -> Tensor:
        r"""Algorithm 1: per node, the weak expert's log-probabilities where
        :math:`C_v \ge q_v` and the strong expert's elsewhere."""
        g = torch.Generator(device='cpu').manual_seed(
            self.sample_seed if seed is None else seed)
        q = torch.rand(out.confidence.size(0), generator=g).to(
            out.confidence.device)
        pick = (out.confidence >= q).unsqueeze(-1)
        return torch.where(pick, out.weak.log_softmax(-1),
                           out.strong.log_softmax(-1))


def _mowst(star: bool, in_channels: int, out_channels: int,
           encoder: str | None = None, hidden_channels: int = 64,
           num_layers: int = 2, dropout: float = 0.5,
           gate_hidden: int = 16, gate_layers: int = 2,
           gate_dropout: float = 0.0, gate_features: bool = False,
           dispersion_grad: bool = False, inference: str = 'expectation',
           norm: str | None = None, **hparams: Any) -> Mowst:
    if in_channels <= 0:
        raise ValueError("Mowst needs node features (its weak expert is an "
                         "MLP on them)")
    backbone = encoder or 'gcn'
    strong = build_encoder(backbone, in_channels, out_channels,
                           hidden_channels=hidden_channels,
                           num_layers=num_layers, dropout=dropout, norm=norm,
                           **hparams)
    weak = MLPEncoder(in_channels, hidden_channels, out_channels,
                      num_layers=num_layers, dropout=dropout, norm=norm)
    gate = ConfidenceGate(gate_hidden, gate_layers, gate_dropout,
                          in_channels if gate_features else 0,
                          dispersion_grad)
    return Mowst(weak, strong, gate, star=star, inference=inference)


@register('mowst', kind='model', tasks=('node', ), compare_encoder=True,
          description='Mowst: weak MLP + strong GNN expert (--backbone), '
                      'alternating training (Zeng et al., ICLR 2024)')
def mowst(in_channels: int, out_channels: int, **hparams: Any) -> Mowst:
    r"""Mowst over the strong expert named by ``encoder``."""
    return _mowst(False, in_channels, out_channels, **hparams)


@register('mowst-star', kind='model', tasks=('node', ), compare_encoder=True,
          description='Mowst*: one loss on the mixed prediction (Zeng et '
                      'al., ICLR 2024)')
def mowst_star(in_channels: int, out_channels: int, **hparams: Any) -> Mowst:
    r"""Mowst* over the strong expert named by ``encoder``."""
    return _mowst(True, in_channels, out_channels, **hparams)
