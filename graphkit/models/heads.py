r"""Task wrappers that turn any registered encoder into a node classifier, a
link predictor or a graph-level model."""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.nn import Embedding, Module

from torch_geometric.nn import MLP
from torch_geometric.nn.resolver import aggregation_resolver

from graphkit.layers.link_decoders import DotDecoder, HadamardMLPDecoder
from graphkit.models.registry import build_encoder
from graphkit.utils.tensor import mask_dropout

__all__ = ['NodeModel', 'LinkModel', 'GraphModel', 'TASK_WRAPPERS']


class NodeModel(Module):
    r"""Node classifier: an encoder whose last layer outputs class logits,
    with optional dropout on the input features (as in Kipf & Welling's GCN).

    .. math::
        \mathbf{Y} = f_\theta(\mathrm{dropout}(\mathbf{X}), \mathbf{A})

    Args:
        encoder (Module): maps :math:`(N, F_{in})` to :math:`(N, C)`.
        input_dropout (float): dropout on :math:`\mathbf{X}`.
    """
    def __init__(self, encoder: Module, input_dropout: float = 0.0) -> None:
        super().__init__()
        self.encoder = encoder
        self.input_dropout = input_dropout

    def reset_parameters(self) -> None:
        self.encoder.reset_parameters()

    @property
    def data_keys(self) -> tuple[str, ...]:
        r"""Extra graph inputs the encoder reads from the data object
        (e.g. HiGCN's flower-petal operators)."""
        return getattr(self.encoder, 'data_keys', ())

    @property
    def supports_sparse_adj(self) -> bool:
        r"""Whether the encoder also takes a sparse ``adj_t`` in place of
        ``edge_index``."""
        return getattr(self.encoder, 'supports_sparse_adj', False)

    @property
    def takes_batch(self) -> bool:
        r"""Whether the encoder reads the ``batch`` vector of a
        multi-graph batch (e.g. per-graph attention)."""
        return getattr(self.encoder, 'takes_batch', False)

    def forward(self, x: Tensor, edge_index: Any,
                edge_weight: Tensor | None = None, **inputs: Any) -> Tensor:
        if edge_weight is not None:
            inputs['edge_weight'] = edge_weight
        if getattr(self.encoder, 'takes_input_dropout', False):
            # the encoder drops its own input (e.g. over the non-zeros of a
            # sparse bag-of-words matrix only)
            return self.encoder(x, edge_index,
                                input_dropout=self.input_dropout, **inputs)
        x = mask_dropout(x, self.input_dropout, self.training)
        return self.encoder(x, edge_index, **inputs)


class LinkModel(Module):
    r"""Link predictor split into ``encode`` and ``decode`` (PyG's GAE
    convention). Featureless graphs get a learned embedding table.

    .. math::
        \mathbf{H} = f_\theta(\mathbf{X}, \mathbf{A}), \qquad
        s_{ij} = \mathrm{dec}(\mathbf{h}_i, \mathbf{h}_j)

    Args:
        encoder (Module): node encoder.
        decoder (Module): pair decoder returning logits.
        num_nodes (int, optional): size of the learned embedding table, used
            when the graph has no node features.
        embedding_dim (int, optional): width of that table.
    """
    def __init__(self, encoder: Module, decoder: Module,
                 num_nodes: int | None = None,
                 embedding_dim: int | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.embedding = (Embedding(num_nodes, embedding_dim)
                          if num_nodes else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.encoder.reset_parameters()
        self.decoder.reset_parameters()
        if self.embedding is not None:
            torch.nn.init.xavier_uniform_(self.embedding.weight)

    def node_input(self, x: Tensor | None) -> Tensor:
        if self.embedding is not None:
            return self.embedding.weight
        if x is None:
            raise ValueError("LinkModel: the graph has no node features; "
                             "build the model with num_nodes=... to learn "
                             "node embeddings")
        return x

    @property
    def data_keys(self) -> tuple[str, ...]:
        return getattr(self.encoder, 'data_keys', ())

    def encode(self, x: Tensor | None, edge_index: Any,
               **inputs: Any) -> Tensor:
        return self.encoder(self.node_input(x), edge_index, **inputs)

    def decode(self, h: Tensor, edge_label_index: Tensor,
               edge_index: Any = None) -> Tensor:
        return self.decoder(h, edge_label_index)

    def forward(self, x: Tensor | None, edge_index: Any,
                edge_label_index: Tensor, **inputs: Any) -> Tensor:
        return self.decode(self.encode(x, edge_index, **inputs),
                           edge_label_index, edge_index)


class GraphModel(Module):
    r"""Graph-level model: optional node-feature encoder, a node encoder,
    a pooling readout and an MLP head.

    .. math::
        \mathbf{y}_G = \mathrm{MLP}\Big(\mathrm{pool}_{v \in G}
        f_\theta(\mathbf{X}, \mathbf{A})_v\Big)

    Args:
        encoder (Module): node encoder to ``hidden_channels``.
        head (Module): maps pooled embeddings to outputs.
        pool (str): ``sum``, ``mean`` or ``max``.
        node_encoder (Module, optional): e.g. OGB's ``AtomEncoder`` for
            categorical molecule features.
    """
    def __init__(self, encoder: Module, head: Module, pool: str = 'mean',
                 node_encoder: Module | None = None) -> None:
        super().__init__()
        self.node_encoder = node_encoder
        self.encoder = encoder
        self.pool = aggregation_resolver(pool)
        self.head = head

    def reset_parameters(self) -> None:
        if self.node_encoder is not None:
            for m in self.node_encoder.modules():
                if isinstance(m, Embedding):
                    torch.nn.init.xavier_uniform_(m.weight)
        self.encoder.reset_parameters()
        self.head.reset_parameters()

    @property
    def data_keys(self) -> tuple[str, ...]:
        return getattr(self.encoder, 'data_keys', ())

    def forward(self, x: Tensor, edge_index: Any, batch: Tensor | None = None,
                num_graphs: int | None = None, **inputs: Any) -> Tensor:
        if self.node_encoder is not None:
            x = self.node_encoder(x)
        if getattr(self.encoder, 'takes_batch', False):
            # e.g. graph transformers' per-graph attention
            inputs['batch'] = batch
        h = self.encoder(x, edge_index, **inputs)
        if batch is None:
            batch = h.new_zeros(h.size(0), dtype=torch.long)
        return self.head(self.pool(h, batch, dim_size=num_graphs))


def node_model(encoder: str, in_channels: int, out_channels: int,
               input_dropout: float = 0.0, **hparams: Any) -> NodeModel:
    if in_channels <= 0:
        raise ValueError("Node classification needs node features "
                         "(in_channels > 0)")
    return NodeModel(build_encoder(encoder, in_channels, out_channels,
                                   **hparams), input_dropout)


def link_model(encoder: str, in_channels: int, out_channels: int,
               hidden_channels: int = 64, decoder: str = 'mlp',
               decoder_layers: int = 3, decoder_dropout: float = 0.0,
               num_nodes: int | None = None,
               embedding_dim: int | None = None,
               **hparams: Any) -> LinkModel:
    featureless = in_channels <= 0
    if featureless and not num_nodes:
        raise ValueError("A featureless graph needs num_nodes for the "
                         "learned embedding table")
    dim_in = (embedding_dim or hidden_channels) if featureless else in_channels
    enc = build_encoder(encoder, dim_in, hidden_channels,
                        hidden_channels=hidden_channels, **hparams)
    decoders = {
        'dot': lambda: DotDecoder(),
        'mlp': lambda: HadamardMLPDecoder(hidden_channels, hidden_channels,
                                          decoder_layers, decoder_dropout),
    }
    if decoder not in decoders:
        raise ValueError(f"Unknown link decoder '{decoder}'. Valid: "
                         f"{', '.join(decoders)}")
    return LinkModel(enc, decoders[decoder](),
                     num_nodes=num_nodes if featureless else None,
                     embedding_dim=dim_in if featureless else None)


def graph_model(encoder: str, in_channels: int, out_channels: int,
                hidden_channels: int = 64, pool: str = 'mean',
                head_layers: int = 2, dropout: float = 0.5,
                atom_features: bool = False, **hparams: Any) -> GraphModel:
    node_encoder = None
    dim_in = in_channels
    if atom_features:
        from ogb.graphproppred.mol_encoder import AtomEncoder
        node_encoder = AtomEncoder(hidden_channels)
        dim_in = hidden_channels
    # categorical (OGB bond) edge features come with the atom features
    hparams.setdefault('categorical_edges', atom_features)
    enc = build_encoder(encoder, dim_in, hidden_channels,
                        hidden_channels=hidden_channels, dropout=dropout,
                        **hparams)
    head = MLP([hidden_channels] * head_layers + [out_channels],
               dropout=dropout, norm=None)
    return GraphModel(enc, head, pool, node_encoder)


TASK_WRAPPERS = {'node': node_model, 'link': link_model,
                 'graph': graph_model}
