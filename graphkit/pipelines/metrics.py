r"""Metrics for datasets without an OGB ``Evaluator``.

Ranking metrics follow OGB's conventions exactly, so numbers are comparable:
Hits@K counts a positive as a hit when its score is strictly above the K-th
highest negative score.
"""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ['accuracy', 'roc_auc', 'hits_at_k', 'mrr', 'mae', 'rmse',
           'compute']


def accuracy(pred: Tensor, y: Tensor) -> float:
    r"""Fraction of correct predictions; ``pred`` holds logits
    :math:`(N, C)` or class indices :math:`(N)`."""
    if pred.dim() == 2:
        pred = pred.argmax(-1)
    if pred.shape != y.shape:
        raise ValueError(f"accuracy: predictions {tuple(pred.shape)} and "
                         f"labels {tuple(y.shape)} differ in shape")
    if y.numel() == 0:
        return float('nan')
    return float((pred == y).float().mean())


def roc_auc(pos: Tensor, neg: Tensor) -> float:
    r"""Area under the ROC curve of positive vs negative scores, via the
    Mann-Whitney U statistic with average ranks for ties."""
    pos, neg = pos.reshape(-1).double(), neg.reshape(-1).double()
    if pos.numel() == 0 or neg.numel() == 0:
        return float('nan')
    scores = torch.cat([pos, neg])
    order = scores.argsort()
    sorted_scores = scores[order]
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, scores.numel() + 1, dtype=scores.dtype)
    # Average the ranks of tied scores.
    uniq, inverse, counts = torch.unique(sorted_scores, return_inverse=True,
                                         return_counts=True)
    cum = counts.cumsum(0).double()
    avg = cum - (counts.double() - 1) / 2
    ranks[order] = avg[inverse]
    n_pos, n_neg = pos.numel(), neg.numel()
    u = ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def hits_at_k(pos: Tensor, neg: Tensor, k: int) -> float:
    r"""OGB's Hits@K: share of positives scoring above the K-th best
    negative."""
    pos, neg = pos.reshape(-1), neg.reshape(-1)
    if neg.numel() < k:
        return 1.0
    kth = torch.topk(neg, k).values[-1]
    return float((pos > kth).float().mean())


def mrr(pos: Tensor, neg: Tensor) -> float:
    r"""Mean reciprocal rank of each positive among its own negatives
    (``neg`` has shape :math:`(P, M)`), OGB's optimistic/pessimistic
    average for ties."""
    if neg.dim() != 2 or neg.size(0) != pos.numel():
        raise ValueError(f"mrr needs negatives of shape [num_pos, M]; got "
                         f"{tuple(neg.shape)} for {pos.numel()} positives")
    pos = pos.view(-1, 1)
    optimistic = (neg > pos).sum(1) + 1
    pessimistic = (neg >= pos).sum(1) + 1
    rank = 0.5 * (optimistic + pessimistic).double()
    return float((1.0 / rank).mean())


def mae(pred: Tensor, y: Tensor) -> float:
    return float((pred.view(-1) - y.view(-1)).abs().mean())


def rmse(pred: Tensor, y: Tensor) -> float:
    return float(((pred.view(-1) - y.view(-1))**2).mean().sqrt())


def compute(metric: str, **kwargs: Tensor) -> float:
    r"""Dispatches on a metric name: ``accuracy``, ``auc``, ``hits@K``,
    ``mrr``, ``mae``, ``rmse``."""
    name = metric.lower()
    if name.startswith('hits@'):
        return hits_at_k(kwargs['pos'], kwargs['neg'], int(name[5:]))
    table = {
        'accuracy': lambda: accuracy(kwargs['pred'], kwargs['y']),
        'acc': lambda: accuracy(kwargs['pred'], kwargs['y']),
        'auc': lambda: roc_auc(kwargs['pos'], kwargs['neg']),
        'rocauc': lambda: roc_auc(kwargs['pos'], kwargs['neg']),
        'mrr': lambda: mrr(kwargs['pos'], kwargs['neg']),
        'mae': lambda: mae(kwargs['pred'], kwargs['y']),
        'rmse': lambda: rmse(kwargs['pred'], kwargs['y']),
    }
    if name not in table:
        raise ValueError(f"Unknown metric '{metric}'. Valid: hits@K, "
                         f"{', '.join(table)}")
    return table[name]()
