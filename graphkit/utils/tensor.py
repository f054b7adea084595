r"""Small tensor helpers."""
from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor
from torch.utils.checkpoint import checkpoint

__all__ = ['mask_dropout', 'MaskDropout', 'check_dropout', 'check_index',
           'peak_memory_mb', 'run_recomputed', 'set_dropout']


def check_dropout(p: float, name: str = 'dropout probability') -> None:
    r"""Raises a clear error unless ``p`` lies in :math:`[0, 1)`."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {p}")


def mask_dropout(x: Tensor, p: float, training: bool = True) -> Tensor:
    r"""Inverted dropout, :math:`x \odot m / (1 - p)` with
    :math:`m_i \sim \mathrm{Bernoulli}(1 - p)`.

    Same distribution as :func:`torch.nn.functional.dropout`, but the mask
    is drawn with :func:`torch.rand`, which is about twice as fast on CPU for
    wide feature matrices (e.g. bag-of-words inputs).
    """
    check_dropout(p)
    if not training or p == 0.0:
        return x
    scale = torch.rand(x.shape, device=x.device, dtype=x.dtype)
    return x * scale.ge_(p).mul_(1.0 / (1.0 - p))


class MaskDropout(torch.nn.Module):
    r""":class:`torch.nn.Dropout` computed with :func:`mask_dropout` (same
    distribution, faster mask on CPU)."""
    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        check_dropout(p)
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        return mask_dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f'p={self.p}'


def set_dropout(module: torch.nn.Module, p: float) -> int:
    r"""Sets every dropout probability in ``module`` and its children to
    ``p``: the ``p`` of :class:`torch.nn.Dropout`-like modules (anything
    with a float ``p`` and a ``dropout`` in its class name, e.g.
    :class:`MaskDropout`), float attributes named ``dropout`` (the
    functional-dropout convention, e.g. attention dropout in PyG's
    ``GATConv``), and lists of floats named ``dropout``, as in PyG's
    :class:`~torch_geometric.nn.models.MLP`, whose hidden-layer entries are
    set and whose last entry, the dropout on the output, is kept. Returns
    how many were set."""
    check_dropout(p)
    count = 0
    for m in module.modules():
        if ('dropout' in type(m).__name__.lower()
                and isinstance(getattr(m, 'p', None), float)):
            m.p = p
            count += 1
        value = m.__dict__.get('dropout')
        if isinstance(value, float):
            m.dropout = p
            count += 1
        elif (isinstance(value, (list, tuple)) and value
              and all(isinstance(v, float) for v in value)):
            m.dropout = type(value)([p] * (len(value) - 1) + [value[-1]])
            count += 1
    return count


def check_index(index: Tensor, name: str = 'edge_index',
                width: str = 'E') -> None:
    r"""Raises a clear error unless ``index`` is a :obj:`[2, *]`
    ``torch.long`` tensor of node pairs."""
    if index.dim() != 2 or index.size(0) != 2:
        raise ValueError(f"{name} must have shape [2, {width}], got "
                         f"{tuple(index.shape)}")
    if index.dtype != torch.long:
        raise TypeError(f"{name} must be torch.long, got {index.dtype}")


def run_recomputed(fn: Callable[..., Any], *args: Any,
                   recompute: bool) -> Any:
    r"""``fn(*args)``. With ``recompute`` (and autograd on), only the inputs
    are kept and ``fn`` runs again during backward
    (:func:`torch.utils.checkpoint.checkpoint`, non-reentrant, with the
    random state restored, so dropout masks are the same)."""
    if recompute and torch.is_grad_enabled():
        return checkpoint(fn, *args, use_reentrant=False)
    return fn(*args)


def peak_memory_mb(device: torch.device | str = 'cpu') -> float:
    r"""This process's peak memory in MiB: the most memory PyTorch has
    allocated on a CUDA ``device``, else the peak resident set size
    (``NaN`` where the OS does not report it)."""
    device = torch.device(device)
    if device.type == 'cuda':
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        import resource
    except ImportError:  # not on POSIX
        return float('nan')
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
