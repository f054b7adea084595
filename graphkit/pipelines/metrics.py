r"""Metrics for datasets without an OGB ``Evaluator``.

Ranking metrics follow OGB's conventions exactly, so numbers are comparable:
Hits@K counts a positive as a hit when its score is strictly above the K-th
highest negative score. Top-K recommendation metrics
(:func:`ranking_metrics`) use PyG's ``LinkPred*`` metrics, with F1 computed
as Sheaf4Rec does.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

__all__ = ['accuracy', 'roc_auc', 'hits_at_k', 'mrr', 'mae', 'rmse',
           'compute', 'ranking_metrics', 'RANKING_METRICS',
           'parse_ranking_metric']

# Top-K recommendation metrics reported by :func:`ranking_metrics`.
RANKING_METRICS = ('recall', 'precision', 'f1', 'ndcg')


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


def balanced_accuracy(pred: Tensor, y: Tensor) -> float:
    r"""Mean over the classes present in ``y`` of the per-class accuracy
    (recall), the SBM benchmarks' accuracy (Dwivedi et al., 2020)."""
    if pred.dim() == 2:
        pred = pred.argmax(-1)
    if pred.shape != y.shape:
        raise ValueError(f"balanced_accuracy: predictions "
                         f"{tuple(pred.shape)} and labels {tuple(y.shape)} "
                         f"differ in shape")
    if y.numel() == 0:
        return float('nan')
    classes = y.unique()
    recall = [(pred[y == c] == c).float().mean() for c in classes]
    return float(torch.stack(recall).mean())


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


def parse_ranking_metric(metric: str) -> tuple[str, int]:
    r"""Splits a top-K metric name such as ``ndcg@10`` into ``('ndcg',
    10)``; the error lists the valid forms."""
    name, _, k = metric.lower().partition('@')
    if name not in RANKING_METRICS or not k.isdigit() or int(k) < 1:
        raise ValueError(f"Unknown recommendation metric '{metric}': "
                         f"expected <name>@K with K >= 1 and name one of "
                         f"{', '.join(RANKING_METRICS)} (e.g. ndcg@10)")
    return name, int(k)


def ranking_metrics(pred_index: Tensor, truth_index: Tensor,
                    ks: Sequence[int] = (10, 20)) -> dict[str, float]:
    r"""Top-K recommendation metrics, averaged over the users (rows) that
    have at least one relevant item.

    For a user with relevant set :math:`T` and top-:math:`K` list
    :math:`R_K`, :math:`h_K = |R_K \cap T|`:

    .. math::
        \mathrm{P@K} = \frac{h_K}{K}, \quad
        \mathrm{R@K} = \frac{h_K}{|T|}, \quad
        \mathrm{NDCG@K} = \frac{\sum_{r=1}^{K} [R_K(r) \in T] /
        \log_2(r+1)}{\sum_{r=1}^{\min(K, |T|)} 1 / \log_2(r+1)}

    (binary relevance), computed with PyG's
    :class:`~torch_geometric.metrics.LinkPredPrecision`,
    :class:`~torch_geometric.metrics.LinkPredRecall` and
    :class:`~torch_geometric.metrics.LinkPredNDCG`. F1@K is the harmonic mean
    of the *averaged* precision and recall,
    :math:`2\bar{P}\bar{R}/(\bar{P}+\bar{R})`, as in Sheaf4Rec's
    evaluation code, not the mean of per-user F1 (PyG's ``LinkPredF1``).

    Args:
        pred_index (Tensor): the ranked item ids of each user, best first,
            shape :obj:`[num_users, k_max]` with :math:`k_{max} \ge` the
            largest K (fewer columns only when there are fewer candidate
            items; P@K still divides by K).
        truth_index (Tensor): the relevant pairs, :obj:`[2, n]`: row 0 the
            position of the user in ``pred_index``, row 1 the item id.
        ks (tuple): the cut-offs K (default: :obj:`(10, 20)`).

    Returns:
        dict: ``recall@K``, ``precision@K``, ``f1@K`` and ``ndcg@K`` for each
        K, as floats (:obj:`nan` when no user has a relevant item).
    """
    from torch_geometric.metrics import (LinkPredMetricCollection,
                                         LinkPredNDCG, LinkPredPrecision,
                                         LinkPredRecall)
    if pred_index.dim() != 2:
        raise ValueError(f"pred_index must have shape [num_users, k], got "
                         f"{tuple(pred_index.shape)}")
    if truth_index.dim() != 2 or truth_index.size(0) != 2:
        raise ValueError(f"truth_index must have shape [2, n] (row in "
                         f"pred_index, item id), got "
                         f"{tuple(truth_index.shape)}")
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must hold positive cut-offs, got {ks}")
    if truth_index.numel() and int(truth_index[0].max()) >= \
            pred_index.size(0):
        raise ValueError(f"truth_index refers to row "
                         f"{int(truth_index[0].max())}, but pred_index has "
                         f"{pred_index.size(0)} rows")
    out: dict[str, float] = {}
    if truth_index.size(1) == 0:
        for k in ks:
            out.update({f'{m}@{k}': float('nan') for m in RANKING_METRICS})
        return out
    collection = LinkPredMetricCollection(
        {f'{name}@{k}': cls(k) for k in ks for name, cls in
         (('precision', LinkPredPrecision), ('recall', LinkPredRecall),
          ('ndcg', LinkPredNDCG))}).to(pred_index.device)
    collection.update(pred_index.long(), truth_index.long())
    values = {name: float(v) for name, v in collection.compute().items()}
    for k in ks:
        p, r = values[f'precision@{k}'], values[f'recall@{k}']
        out[f'recall@{k}'] = r
        out[f'precision@{k}'] = p
        out[f'f1@{k}'] = 2 * p * r / (p + r) if p + r > 0 else 0.0
        out[f'ndcg@{k}'] = values[f'ndcg@{k}']
    return out


def compute(metric: str, **kwargs: Tensor) -> float:
    r"""Dispatches on a metric name: ``accuracy``, ``auc``, ``hits@K``,
    ``mrr``, ``mae``, ``rmse``."""
    name = metric.lower()
    if name.startswith('hits@'):
        return hits_at_k(kwargs['pos'], kwargs['neg'], int(name[5:]))
    table = {
        'accuracy': lambda: accuracy(kwargs['pred'], kwargs['y']),
        'acc': lambda: accuracy(kwargs['pred'], kwargs['y']),
        'balanced_accuracy': lambda: balanced_accuracy(kwargs['pred'],
                                                       kwargs['y']),
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
