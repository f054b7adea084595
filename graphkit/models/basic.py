r"""PyG's BasicGNN baselines (MLP, GCN, GraphSAGE, GAT, GIN) as registered
encoders."""
from __future__ import annotations

from typing import Any

from torch import Tensor
from torch.nn import Module

from torch_geometric.nn.models import GAT, GCN, GIN, MLP, GraphSAGE

from graphkit.models.registry import register

__all__ = ['MLPEncoder']


class MLPEncoder(Module):
    r"""A graph-agnostic MLP with the encoder signature: the graph arguments
    are accepted and ignored.

    .. math::
        \mathbf{H} = \mathrm{MLP}(\mathbf{X})

    Args:
        in_channels (int): input features.
        hidden_channels (int): hidden size.
        out_channels (int): output size.
        num_layers (int): number of linear layers.
        dropout (float): dropout between layers.
        norm (str, optional): normalisation between layers.
    """
    def __init__(self, in_channels: int, hidden_channels: int,
                 out_channels: int, num_layers: int = 2, dropout: float = 0.0,
                 norm: str | None = None) -> None:
        super().__init__()
        self.mlp = MLP(in_channels=in_channels,
                       hidden_channels=hidden_channels,
                       out_channels=out_channels, num_layers=num_layers,
                       dropout=dropout, norm=norm)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.mlp.reset_parameters()

    def forward(self, x: Tensor, edge_index: Any = None,
                edge_weight: Tensor | None = None, **kwargs: Any) -> Tensor:
        return self.mlp(x)

    def __repr__(self) -> str:
        return repr(self.mlp)


def _sparse_ready(model: Module) -> Module:
    r"""Marks a PyG model whose convolutions also take a transposed sparse
    adjacency (``adj_t``, one row per target node) in place of
    ``edge_index``. Full-batch node tasks then pass
    :math:`\mathbf{A}^\top` as a ``torch.sparse_csr`` tensor, so each layer
    aggregates with one sparse-dense product instead of materialising an
    ``[E, F]`` message matrix; the result is the same sum."""
    model.supports_sparse_adj = True
    return model


@register('mlp', description='MLP on node features only (no graph)')
def mlp(in_channels: int, out_channels: int, hidden_channels: int = 64,
        num_layers: int = 2, dropout: float = 0.5,
        norm: str | None = None) -> Module:
    return MLPEncoder(in_channels, hidden_channels, out_channels, num_layers,
                      dropout, norm)


@register('gcn', description='GCN (Kipf & Welling, 2017), PyG BasicGNN')
def gcn(in_channels: int, out_channels: int, hidden_channels: int = 64,
        num_layers: int = 2, dropout: float = 0.5, norm: str | None = None,
        jk: str | None = None, cached: bool = False) -> Module:
    # ``cached`` stores the normalised adjacency after the first call; the
    # pipeline sets it only when the graph is fixed for the whole run.
    return _sparse_ready(GCN(in_channels, hidden_channels, num_layers,
                             out_channels, dropout=dropout, norm=norm, jk=jk,
                             cached=cached))


@register('sage', description='GraphSAGE (Hamilton et al., 2017), mean aggr')
def sage(in_channels: int, out_channels: int, hidden_channels: int = 64,
         num_layers: int = 2, dropout: float = 0.5, norm: str | None = None,
         jk: str | None = None, aggr: str = 'mean') -> Module:
    return _sparse_ready(GraphSAGE(in_channels, hidden_channels, num_layers,
                                   out_channels, dropout=dropout, norm=norm,
                                   jk=jk, aggr=aggr))


@register('gat', description='GAT (Velickovic et al., 2018)')
def gat(in_channels: int, out_channels: int, hidden_channels: int = 64,
        num_layers: int = 2, dropout: float = 0.5, heads: int = 8,
        norm: str | None = None, jk: str | None = None,
        v2: bool = False) -> Module:
    if hidden_channels % heads:
        raise ValueError(f"gat: hidden_channels ({hidden_channels}) must be "
                         f"divisible by heads ({heads})")
    return GAT(in_channels, hidden_channels, num_layers, out_channels,
               dropout=dropout, heads=heads, norm=norm, jk=jk, v2=v2)


@register('gin', description='GIN (Xu et al., 2019)')
def gin(in_channels: int, out_channels: int, hidden_channels: int = 64,
        num_layers: int = 2, dropout: float = 0.5, norm: str | None = None,
        jk: str | None = None, train_eps: bool = False) -> Module:
    return _sparse_ready(GIN(in_channels, hidden_channels, num_layers,
                             out_channels, dropout=dropout, norm=norm, jk=jk,
                             train_eps=train_eps))
