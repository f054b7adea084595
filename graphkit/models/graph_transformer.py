r"""Graph transformers as registered encoders: Dwivedi & Bresson's
GraphTransformer and GraphGPS (Rampášek et al., 2022) on PyG's
:class:`~torch_geometric.nn.GPSConv`.

Both are encoders (``forward(x, edge_index, ...) -> node embeddings``), so
the task wrappers make node classifiers and graph-level models of them, and
other components (Mowst, NCNC) can use them as backbones. The positional
encoding named by ``pe`` is computed by the registered ``pre_transform``
(:mod:`graphkit.transforms.positional`) and read from the data object.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.nn import Linear, Module, ModuleList

from torch_geometric.nn import MLP, GINEConv, GPSConv

from graphkit.layers.graph_transformer import (GraphTransformerLayer,
                                               complete_edge_index)
from graphkit.models.registry import build_encoder, register
from graphkit.transforms.positional import (PE_KEYS, positional_encoding,
                                            random_sign_flip)

__all__ = ['GraphTransformer', 'GPS']


def _check_pe(pe: str | None) -> str | None:
    kind = None if pe is None or str(pe).lower() == 'none' else str(pe)
    if kind is not None and kind.lower() not in PE_KEYS:
        raise ValueError(f"Unknown positional encoding '{pe}'; expected "
                         f"'lap', 'rw' or 'none'")
    return None if kind is None else kind.lower()


class _InputEncoder(Module):
    r"""Node input :math:`h^0 = A^0\alpha + a^0 + (C^0\lambda + c^0)` (the PE
    enters at the input only) and edge input :math:`e^0 = B^0\beta + b^0`
    (OGB's ``BondEncoder`` for categorical bond features)."""
    def __init__(self, in_channels: int, hidden: int, pe: str | None,
                 pe_dim: int, edge_dim: int, categorical_edges: bool
                 ) -> None:
        super().__init__()
        self.pe = pe
        self.lin_x = Linear(in_channels, hidden)
        self.lin_pe = Linear(pe_dim, hidden) if pe else None
        self.edge = None
        if edge_dim > 0:
            if categorical_edges:
                from ogb.graphproppred.mol_encoder import BondEncoder
                self.edge = BondEncoder(hidden)
            else:
                self.edge = Linear(edge_dim, hidden)

    def reset_parameters(self) -> None:
        self.lin_x.reset_parameters()
        if self.lin_pe is not None:
            self.lin_pe.reset_parameters()
        if isinstance(self.edge, Linear):
            self.edge.reset_parameters()
        elif self.edge is not None:
            for emb in self.edge.bond_embedding_list:
                torch.nn.init.xavier_uniform_(emb.weight)

    def forward(self, x: Tensor, pe: Tensor | None,
                edge_attr: Tensor | None) -> tuple[Tensor, Tensor | None]:
        h = self.lin_x(x)
        if self.lin_pe is not None:
            if pe is None:
                raise ValueError(f"This model uses the '{self.pe}' positional "
                                 f"encoding: pass data.{PE_KEYS[self.pe]} "
                                 f"(built by its pre_transform)")
            if self.pe == 'lap':
                pe = random_sign_flip(pe, self.training)
            h = h + self.lin_pe(pe.to(h.dtype))
        e = None
        if self.edge is not None:
            if edge_attr is None:
                raise ValueError("This model was built with edge features "
                                 "(edge_dim > 0) but got no edge_attr")
            if isinstance(self.edge, Linear):
                edge_attr = edge_attr.view(edge_attr.size(0), -1).to(h.dtype)
            e = self.edge(edge_attr)
        return h, e


class _PositionalModel(Module):
    r"""What the graph transformers share: the input encoder, the data
    they read (PE, edge features), an optional per-node MLP readout
    :math:`d \to d/2 \to d/4 \to C`, and ``batch`` as an input."""
    takes_batch = True
    pe: str | None
    use_edges: bool

    def _make_head(self, d: int, out_channels: int, head: bool | None
                   ) -> None:
        if head is None:
            head = out_channels != d
        if not head and out_channels != d:
            raise ValueError(f"{type(self).__name__}(head=False) outputs "
                             f"hidden_channels features; set out_channels "
                             f"to hidden_channels")
        self.head = MLP([d, max(d // 2, 1), max(d // 4, 1), out_channels],
                        norm=None, dropout=0.0) if head else None

    @property
    def data_keys(self) -> tuple[str, ...]:
        keys = ('edge_attr', ) if self.use_edges else ()
        return keys + ((PE_KEYS[self.pe], ) if self.pe else ())

    def reset_parameters(self) -> None:
        self.encoder.reset_parameters()
        for layer in self.layers:
            layer.reset_parameters()
        if self.head is not None:
            self.head.reset_parameters()

    def _inputs(self, x: Tensor, edge_attr: Tensor | None,
                lap_pe: Tensor | None, rw_pe: Tensor | None
                ) -> tuple[Tensor, Tensor | None]:
        pe = lap_pe if self.pe == 'lap' else rw_pe
        return self.encoder(x, pe, edge_attr if self.use_edges else None)

    def _readout(self, h: Tensor) -> Tensor:
        return self.head(h) if self.head is not None else h


class GraphTransformer(_PositionalModel):
    r"""Dwivedi & Bresson's graph transformer: input encoder (features, PE,
    edge features), :math:`L` :class:`GraphTransformerLayer` blocks, and an
    MLP readout :math:`d \to d/2 \to d/4 \to C` per node when used as a
    classifier.

    ``attention='sparse'`` attends over neighbours (the graph as given, no
    self-loops added); ``'full'`` over all nodes of the same graph, without
    edge features, as in the paper's comparison.

    Args:
        in_channels (int): node features.
        out_channels (int): output width.
        hidden_channels (int): width :math:`d`.
        num_layers (int): number of layers :math:`L`.
        heads (int): attention heads.
        dropout (float): dropout inside the layers.
        norm (str): ``batch`` or ``layer``.
        attention (str): ``sparse`` or ``full``.
        pe (str): ``lap`` (Laplacian eigenvectors, sign-flipped per training
            batch), ``rw`` (random-walk) or ``none``.
        pe_dim (int): number of PE columns :math:`k`.
        edge_dim (int): edge feature width (0: none; the layers then run
            without the edge stream).
        categorical_edges (bool): OGB bond features (``BondEncoder``).
        edge_features (bool): use the edge features when there are some.
        head (bool, optional): apply the MLP readout to ``out_channels``
            (default: when ``out_channels != hidden_channels``).
    """
    def __init__(self, in_channels: int, out_channels: int,
                 hidden_channels: int = 64, num_layers: int = 10,
                 heads: int = 8, dropout: float = 0.0,
                 norm: str | None = 'batch', attention: str = 'sparse',
                 pe: str | None = 'lap', pe_dim: int = 8, edge_dim: int = 0,
                 categorical_edges: bool = False, edge_features: bool = True,
                 head: bool | None = None) -> None:
        super().__init__()
        if attention not in ('sparse', 'full'):
            raise ValueError(f"attention must be 'sparse' or 'full', got "
                             f"'{attention}'")
        self.attention = attention
        self.pe = _check_pe(pe)
        # The full-graph variant drops edge features (the paper's setup).
        use_edges = edge_features and edge_dim > 0 and attention == 'sparse'
        self.use_edges = use_edges
        self.encoder = _InputEncoder(in_channels, hidden_channels, self.pe,
                                     pe_dim, edge_dim if use_edges else 0,
                                     categorical_edges)
        # the last layer's edge outputs would be unused: it skips them
        self.layers = ModuleList([
            GraphTransformerLayer(hidden_channels, heads, use_edges, norm,
                                  dropout, edge_update=i < num_layers - 1)
            for i in range(num_layers)])
        self._make_head(hidden_channels, out_channels, head)
        self.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor,
                edge_attr: Tensor | None = None, lap_pe: Tensor | None = None,
                rw_pe: Tensor | None = None, batch: Tensor | None = None,
                **_: Any) -> Tensor:
        h, e = self._inputs(x, edge_attr, lap_pe, rw_pe)
        if self.attention == 'full':
            edge_index = complete_edge_index(batch, x.size(0)).to(x.device)
        for layer in self.layers:
            if layer.edge_update:
                h, e = layer(h, edge_index, e)
            else:
                h = layer(h, edge_index, e)
        return self._readout(h)


class GPS(_PositionalModel):
    r"""GraphGPS: :math:`L` PyG :class:`~torch_geometric.nn.GPSConv` layers,

    .. math::
        X_M = \mathrm{BN}(X + \mathrm{MPNN}(X, A)),\quad
        X_T = \mathrm{BN}(X + \mathrm{Attn}(X)),\quad
        X' = \mathrm{BN}\big(X_M + X_T + \mathrm{FFN}(X_M + X_T)\big),

    whose local model is any registered encoder built with one layer
    (``local='gcn'``, ``'sage'``, ``'gin'``, ``'gat'``, ...), or ``'gine'``
    (PyG's :class:`~torch_geometric.nn.GINEConv`, which reads the edge
    features). Global attention is full multi-head attention over the nodes
    of each graph (``attn_type='multihead'``) or the Performer.

    Args are as in :class:`GraphTransformer`, plus ``local``,
    ``attn_type`` and ``attn_dropout``.
    """

    def __init__(self, in_channels: int, out_channels: int,
                 hidden_channels: int = 64, num_layers: int = 4,
                 heads: int = 4, dropout: float = 0.0,
                 attn_dropout: float = 0.5, local: str = 'gine',
                 attn_type: str = 'multihead', norm: str | None = 'batch',
                 pe: str | None = 'rw', pe_dim: int = 16, edge_dim: int = 0,
                 categorical_edges: bool = False, head: bool | None = None
                 ) -> None:
        super().__init__()
        d = hidden_channels
        self.pe = _check_pe(pe)
        self.local = local.lower()
        self.use_edges = self.local == 'gine' and edge_dim > 0
        self.encoder = _InputEncoder(in_channels, d, self.pe, pe_dim,
                                     edge_dim if self.use_edges else 0,
                                     categorical_edges)
        norm_name = 'batch_norm' if norm is None else (
            str(norm).lower().replace('_norm', '') + '_norm')
        self.layers = ModuleList()
        for _ in range(num_layers):
            if self.local == 'gine':
                mlp = MLP([d, d, d], norm=None, plain_last=True)
                conv = GINEConv(mlp, edge_dim=d if self.use_edges else None)
            else:
                conv = build_encoder(self.local, d, d, hidden_channels=d,
                                     num_layers=1, dropout=0.0)
            self.layers.append(GPSConv(d, conv, heads=heads, dropout=dropout,
                                      norm=norm_name, attn_type=attn_type,
                                      attn_kwargs={'dropout': attn_dropout}))
        self._make_head(d, out_channels, head)
        self.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor,
                edge_attr: Tensor | None = None, lap_pe: Tensor | None = None,
                rw_pe: Tensor | None = None, batch: Tensor | None = None,
                **_: Any) -> Tensor:
        h, e = self._inputs(x, edge_attr, lap_pe, rw_pe)
        for conv in self.layers:
            if self.local == 'gine':
                if e is None:  # GINE without edge features is GIN
                    e = h.new_zeros(edge_index.size(1), h.size(1))
                h = conv(h, edge_index, batch, edge_attr=e)
            else:
                h = conv(h, edge_index, batch)
        return self._readout(h)


def _pe_transform(pe: str | None = 'lap', pe_dim: int = 8):
    return positional_encoding(pe, pe_dim)


def _gps_pe_transform(pe: str | None = 'rw', pe_dim: int = 16):
    return positional_encoding(pe, pe_dim)


@register('graph-transformer', pre_transform=_pe_transform,
          description='Graph transformer (Dwivedi & Bresson, 2020)')
def graph_transformer(in_channels: int, out_channels: int,
                      hidden_channels: int = 64, num_layers: int = 10,
                      heads: int = 8, dropout: float = 0.0,
                      norm: str | None = 'batch', attention: str = 'sparse',
                      pe: str | None = 'lap', pe_dim: int = 8,
                      edge_dim: int = 0, categorical_edges: bool = False,
                      edge_features: bool = True) -> GraphTransformer:
    return GraphTransformer(in_channels, out_channels, hidden_channels,
                            num_layers, heads, dropout, norm, attention, pe,
                            pe_dim, edge_dim, categorical_edges,
                            edge_features)


@register('gps', pre_transform=_gps_pe_transform,
          description='GraphGPS on PyG GPSConv (Rampasek et al., 2022)')
def gps(in_channels: int, out_channels: int, hidden_channels: int = 64,
        num_layers: int = 4, heads: int = 4, dropout: float = 0.0,
        attn_dropout: float = 0.5, local: str = 'gine',
        attn_type: str = 'multihead', norm: str | None = 'batch',
        pe: str | None = 'rw', pe_dim: int = 16, edge_dim: int = 0,
        categorical_edges: bool = False) -> GPS:
    return GPS(in_channels, out_channels, hidden_channels, num_layers, heads,
               dropout, attn_dropout, local, attn_type, norm, pe, pe_dim,
               edge_dim, categorical_edges)
