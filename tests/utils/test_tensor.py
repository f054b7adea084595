import pytest
import torch

from graphkit.utils import mask_dropout


def test_mask_dropout_statistics_and_eval():
    torch.manual_seed(0)
    x = torch.ones(200, 500)
    y = mask_dropout(x, 0.3)
    kept = (y != 0).float().mean()
    assert abs(float(kept) - 0.7) < 0.01
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / 0.7))
    assert mask_dropout(x, 0.3, training=False) is x
    with pytest.raises(ValueError, match=r'\[0, 1\)'):
        mask_dropout(x, 1.0)


def test_set_dropout_reaches_modules_floats_and_lists():
    from torch_geometric.nn import GAT, MLP

    from graphkit.utils.tensor import MaskDropout, set_dropout

    model = torch.nn.ModuleDict({
        'gat': GAT(4, 8, 2, out_channels=3, dropout=0.1),
        'mlp': MLP([4, 8, 3], dropout=0.2),
        'mask': MaskDropout(0.3)})
    n = set_dropout(model, 0.45)
    # GAT: its Dropout module and each GATConv's attention dropout
    assert n == 1 + 2 + 1 + 1
    assert model['gat'].dropout.p == 0.45
    assert all(c.dropout == 0.45 for c in model['gat'].convs)
    assert model['mlp'].dropout == [0.45, 0.0]   # not on the output
    assert model['mask'].p == 0.45
    torch.manual_seed(0)
    y = model['mask'](torch.ones(100, 100))
    assert abs(float((y == 0).float().mean()) - 0.45) < 0.03
    assert set_dropout(torch.nn.Linear(2, 2), 0.5) == 0
    with pytest.raises(ValueError, match=r'\[0, 1\)'):
        set_dropout(model, 1.0)
