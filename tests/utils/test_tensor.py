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
