r"""NCN / NCNC link prediction over any registered encoder (`Wang, Yang and
Zhang, ICLR 2024 <https://arxiv.org/abs/2302.00890>`_), and the weightless
"pure" encoders the paper uses.

An :class:`NCNLinkModel` runs the encoder once on the graph, then scores each
target pair from the endpoint states and the pooled states of its (completed)
common neighbours in the *same* graph. During training the pipeline passes
the graph with the batch's target links removed
(``train.target_link_removal``); evaluation uses the whole training graph.
"""
from __future__ import annotations

from typing import Any

from torch import Tensor
from torch.nn import Module

from graphkit.layers.ncn import GAEPredictor, NCNCPredictor, NCNPredictor
from graphkit.layers.pure import PureGNN
from graphkit.layers.sparse_input import IdentityCache
from graphkit.models.heads import LinkModel
from graphkit.models.registry import build_encoder, register
from graphkit.utils.common_neighbors import (CSRAdjacency, as_csr_adjacency,
                                             drop_entries, unpaired_entries)

__all__ = ['NCNLinkModel']


class NCNLinkModel(LinkModel):
    r"""Encoder + NCN (or NCNC) predictor.

    .. math::
        \mathbf{H} = f_\theta(\mathbf{X}, \mathbf{A}), \qquad
        s_{ij} = \mathrm{NCN}\big(\mathbf{H}, \mathbf{A}, (i, j)\big)

    ``decode`` needs the graph (an ``edge_index``, a ``torch.sparse``
    adjacency or a :class:`~graphkit.utils.common_neighbors.CSRAdjacency`);
    its CSR form is cached while the same graph object comes back, so
    chunked evaluation converts it once.

    Args:
        encoder (Module): node encoder.
        predictor (NCNPredictor or GAEPredictor): the pair scorer.
        num_nodes (int, optional), embedding_dim (int, optional): a learned
            node-embedding table for featureless graphs.
        edge_dropout (float): dropout on the adjacency entries before the
            common neighbours are computed (training only).
    """
    def __init__(self, encoder: Module, predictor: NCNPredictor,
                 num_nodes: int | None = None,
                 embedding_dim: int | None = None,
                 edge_dropout: float = 0.0) -> None:
        super().__init__(encoder, predictor, num_nodes, embedding_dim)
        if not 0.0 <= edge_dropout < 1.0:
            raise ValueError(f"edge_dropout must lie in [0, 1), got "
                             f"{edge_dropout}")
        self.edge_dropout = edge_dropout
        self._adj_cache = IdentityCache()
        self._checked_training_graph = False

    def adjacency(self, graph: Any, num_nodes: int) -> CSRAdjacency:
        r"""The graph as a :class:`CSRAdjacency` (cached per graph).
        Common neighbours need an undirected graph: every evaluation graph,
        and the first training graph, is checked for symmetry (the later
        training graphs are the same graph with target links removed in
        both directions)."""
        if isinstance(graph, CSRAdjacency):
            return graph
        if not isinstance(graph, Tensor):
            raise TypeError(f"NCN needs the graph as an edge_index or a "
                            f"sparse adjacency, got {type(graph).__name__}")

        def convert() -> CSRAdjacency:
            adj = as_csr_adjacency(graph, num_nodes)
            if not self.training or not self._checked_training_graph:
                missing = unpaired_entries(adj)
                if missing:
                    raise ValueError(
                        f"NCN needs an undirected graph, but {missing} of "
                        f"its {adj.col.numel()} edges have no reverse edge. "
                        f"Pass both directions (e.g. torch_geometric.utils."
                        f"to_undirected(edge_index)).")
                self._checked_training_graph |= self.training
            return adj
        return self._adj_cache.get((graph,), convert)

    def decode(self, h: Tensor, edge_label_index: Tensor,
               edge_index: Any = None) -> Tensor:
        if edge_label_index.dim() == 2 and edge_label_index.size(1) == 0:
            raise ValueError("NCN got an empty batch of target pairs (shape "
                             "[2, 0]); pass at least one pair")
        if not self.decoder.needs_adjacency:
            return self.decoder(h, None, edge_label_index)
        if edge_index is None:
            raise ValueError("NCN scores pairs from their common neighbours: "
                             "pass the graph as decode(h, pairs, edge_index)")
        adj = self.adjacency(edge_index, h.size(0))
        if self.training:
            adj = drop_entries(adj, self.edge_dropout)
        return self.decoder(h, adj, edge_label_index)


def _ncn_model(completion: bool | None, in_channels: int,
               out_channels: int,
               encoder: str | None = None, hidden_channels: int = 256,
               num_nodes: int | None = None,
               embedding_dim: int | None = None,
               decoder_dropout: float = 0.0, decoder_norm: bool = False,
               predictor_edge_dropout: float = 0.0, use_xlin: bool = False,
               tail_act: bool = False, two_layer_out: bool = False,
               beta: float = 1.0, completion_order: int = 1,
               prob_scale: float = 5.0, prob_offset: float = 3.0,
               prob_prior: float = 0.5, prob_cap: float = 1.0,
               **hparams: Any) -> NCNLinkModel:
    encoder = encoder or 'pure-gcn'
    featureless = in_channels <= 0
    if featureless and not num_nodes:
        raise ValueError("A featureless graph needs num_nodes for the "
                         "learned embedding table")
    dim_in = (embedding_dim or hidden_channels) if featureless else in_channels
    # A learned table of the encoder's width needs no input map (as in the
    # reference ogbl-ddi model); encoders without that option ignore it.
    hparams.setdefault('input_linear', dim_in != hidden_channels)
    enc = build_encoder(encoder, dim_in, hidden_channels,
                        hidden_channels=hidden_channels, **hparams)
    common = dict(dropout=decoder_dropout, beta=beta, layer_norm=decoder_norm,
                  tail_act=tail_act, two_layer_out=two_layer_out,
                  use_xlin=use_xlin)
    if completion is None:  # the GAE ablation
        common.pop('beta'), common.pop('use_xlin')
        pred: Module = GAEPredictor(hidden_channels, **common)
    elif completion:
        pred = NCNCPredictor(
            hidden_channels, order=completion_order, prob_scale=prob_scale,
            prob_offset=prob_offset, prior=prob_prior, alpha=prob_cap,
            **common)
    else:
        pred = NCNPredictor(hidden_channels, **common)
    return NCNLinkModel(enc, pred, num_nodes=num_nodes if featureless else None,
                        embedding_dim=dim_in if featureless else None,
                        edge_dropout=predictor_edge_dropout)


@register('ncn', kind='model', tasks=('link', ),
          compare_with=('ncn-gae', ),
          description='NCN link prediction (Wang et al., ICLR 2024) over any '
                      'encoder (--encoder, default pure-gcn)')
def ncn(in_channels: int, out_channels: int = 1, **hparams: Any
        ) -> NCNLinkModel:
    r"""NCN: encoder + common-neighbour pooling predictor."""
    return _ncn_model(False, in_channels, out_channels, **hparams)


@register('ncnc', kind='model', tasks=('link', ),
          compare_with=('ncn-gae', ),
          description='NCNC: NCN with common-neighbour completion (Wang et '
                      'al., ICLR 2024) over any encoder')
def ncnc(in_channels: int, out_channels: int = 1, **hparams: Any
         ) -> NCNLinkModel:
    r"""NCNC: NCN on the neighbourhood completed by the model itself."""
    return _ncn_model(True, in_channels, out_channels, **hparams)


@register('ncn-gae', kind='model', tasks=('link', ),
          description="GAE ablation of NCN: the same encoder and MLPs on "
                      "h_i * h_j only (NCN's baseline, trained beside it)")
def ncn_gae(in_channels: int, out_channels: int = 1, **hparams: Any
            ) -> NCNLinkModel:
    r"""NCN without its common-neighbour term (the reference ``cn0``)."""
    return _ncn_model(None, in_channels, out_channels, **hparams)


def _pure(aggr: str):
    def build(in_channels: int, out_channels: int, num_layers: int = 1,
              dropout: float = 0.0, input_dropout: float = 0.0,
              tail_dropout: float = 0.0, edge_dropout: float = 0.0,
              jk: str | None = None, residual: bool = False,
              input_linear: bool = True) -> PureGNN:
        return PureGNN(in_channels, out_channels, num_layers, aggr, dropout,
                       input_dropout, tail_dropout, edge_dropout, jk,
                       residual, input_linear)
    build.__doc__ = (f"Linear input map, then {aggr} propagation without "
                     f"weights (NCN's pure{aggr} encoder).")
    return build


for _aggr in ('gcn', 'sum', 'mean', 'max'):
    register(f'pure-{_aggr}', description=f'weightless {_aggr} propagation '
             f'after one linear map (NCN encoders)')(_pure(_aggr))
