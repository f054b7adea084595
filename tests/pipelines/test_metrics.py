import pytest
import torch
from ogb.linkproppred import Evaluator

from graphkit.pipelines import metrics as M


def test_accuracy():
    assert M.accuracy(torch.tensor([[0.1, 0.9], [0.8, 0.2]]),
                      torch.tensor([1, 1])) == 0.5


def test_auc_by_hand():
    pos = torch.tensor([0.9, 0.4])
    neg = torch.tensor([0.5, 0.1, 0.4])
    # pairs: (0.9 beats all 3) + (0.4 beats 0.1, ties 0.4) = 3 + 1.5
    assert M.roc_auc(pos, neg) == pytest.approx(4.5 / 6)


def test_hits_matches_ogb_evaluator():
    torch.manual_seed(0)
    pos, neg = torch.randn(500), torch.randn(2000)
    ev = Evaluator('ogbl-ddi')
    ours = M.hits_at_k(pos, neg, 20)
    assert ours == pytest.approx(ev.eval({'y_pred_pos': pos,
                                          'y_pred_neg': neg})['hits@20'])


def test_mrr_matches_ogb_evaluator():
    torch.manual_seed(0)
    pos, neg = torch.randn(100), torch.randn(100, 50)
    ref = Evaluator('ogbl-citation2').eval(
        {'y_pred_pos': pos, 'y_pred_neg': neg})['mrr_list'].mean()
    assert M.mrr(pos, neg) == pytest.approx(float(ref))


def test_regression_metrics_and_unknown():
    p, y = torch.tensor([1.0, 3.0]), torch.tensor([2.0, 1.0])
    assert M.mae(p, y) == 1.5
    assert M.rmse(p, y) == pytest.approx((2.5)**0.5)
    with pytest.raises(ValueError, match='Unknown metric'):
        M.compute('f2', pred=p, y=y)
