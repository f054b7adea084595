r"""The graph transformer layer of Dwivedi & Bresson (2020), "A
Generalization of Transformer Networks to Graphs".

Attention runs over the neighbours of each node only (the *sparse* graph),
or over every node of the same graph (the *full* variant, obtained by
passing :func:`complete_edge_index` as the graph). PyG's
:class:`~torch_geometric.nn.conv.TransformerConv` is a different operator
(UniMP: additive edge terms, no edge stream, no feed-forward block).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import BatchNorm1d, LayerNorm, Linear, Module

from torch_geometric.nn import MessagePassing
from torch_geometric.utils import scatter, softmax

__all__ = ['GraphTransformerLayer', 'complete_edge_index', 'norm_layer']


def norm_layer(norm: str | None, channels: int) -> Module:
    r"""``batch`` (:class:`~torch.nn.BatchNorm1d`, the paper's choice) or
    ``layer`` (:class:`~torch.nn.LayerNorm`)."""
    name = 'batch' if norm is None else str(norm).lower().replace('_norm', '')
    if name == 'batch':
        return BatchNorm1d(channels)
    if name == 'layer':
        return LayerNorm(channels)
    raise ValueError(f"Unknown norm '{norm}' for the graph transformer; "
                     f"expected 'batch' or 'layer'")


def complete_edge_index(batch: Tensor | None, num_nodes: int) -> Tensor:
    r"""Every ordered pair :math:`(j \to i)`, :math:`i \neq j`, of nodes in the
    same graph: the *full-graph* attention of Dwivedi & Bresson (no self
    loops, as ``networkx.complete_graph``). Memory is
    :math:`O(\sum_G n_G^2)`, not :math:`O(N^2)` over the whole batch.

    Args:
        batch (Tensor, optional): graph id of every node, sorted
            (PyG's ``batch`` vector); :obj:`None` for a single graph.
        num_nodes (int): number of nodes :math:`N`.
    """
    if batch is None:
        batch = torch.zeros(num_nodes, dtype=torch.long)
    if batch.numel() != num_nodes:
        raise ValueError(f"batch has {batch.numel()} entries for "
                         f"{num_nodes} nodes")
    if batch.numel() > 1 and bool((batch[1:] < batch[:-1]).any()):
        raise ValueError("complete_edge_index needs a sorted batch vector "
                         "(nodes grouped by graph, as PyG batches them)")
    device = batch.device
    counts = torch.bincount(batch)
    ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)[:-1]])
    per_node = counts[batch]  # each node attends over its graph's nodes
    dst = torch.repeat_interleave(torch.arange(num_nodes, device=device),
                                  per_node)
    start = per_node.cumsum(0) - per_node
    src = ptr[batch][dst] + torch.arange(dst.numel(), device=device) - \
        start[dst]
    keep = src != dst
    return torch.stack([src[keep], dst[keep]])


class _FeedForward(Module):
    r""":math:`W_2\,\mathrm{dropout}(\mathrm{ReLU}(W_1 x))` with
    :math:`W_1 \in \mathbb{R}^{2d \times d}`."""
    def __init__(self, channels: int, dropout: float) -> None:
        super().__init__()
        self.lin1 = Linear(channels, 2 * channels)
        self.lin2 = Linear(2 * channels, channels)
        self.dropout = dropout

    def reset_parameters(self) -> None:
        self.lin1.reset_parameters()
        self.lin2.reset_parameters()

    def forward(self, x: Tensor) -> Tensor:
        x = F.dropout(F.relu(self.lin1(x)), self.dropout, self.training)
        return self.lin2(x)


# Scores clamped to at most this magnitude are exponentiated without the
# softmax's max shift: exp(30) ~ 1e13, so float32 sums over any number of
# neighbours stay far from overflow.
_EXP_SAFE = 30.0


class GraphTransformerLayer(MessagePassing):
    r"""Dwivedi & Bresson's graph transformer layer, with optional edge
    features.

    With :math:`H` heads of width :math:`d_k = d/H` and the edges
    :math:`j \to i` of ``edge_index`` (:math:`j \in \mathcal{N}_i`):

    .. math::
        \hat{w}_{ij}^k = \frac{Q^k h_i \odot K^k h_j}{\sqrt{d_k}}
            \odot E^k e_{ij} \in \mathbb{R}^{d_k}, \qquad
        w_{ij}^k = \operatorname{softmax}_{j \in \mathcal{N}_i}\Big(
            \operatorname{clamp}\big(\textstyle\sum \hat{w}_{ij}^k,
            -5, 5\big)\Big)

    (without edge features the factor :math:`E^k e_{ij}` is dropped), then

    .. math::
        \hat{h}_i = O_h \big\Vert_{k=1}^{H} \sum_{j \in \mathcal{N}_i}
            w_{ij}^k V^k h_j, \qquad
        \hat{e}_{ij} = O_e \big\Vert_{k=1}^{H} \hat{w}_{ij}^k

    and, separately for :math:`h` and :math:`e` (post-norm, as in the
    original Transformer),

    .. math::
        h' = \mathrm{Norm}(h + \mathrm{dropout}(\hat{h})), \qquad
        h_{out} = \mathrm{Norm}(h' + \mathrm{FFN}(h')),

    with :math:`\mathrm{FFN}(x) = W_2\,\mathrm{dropout}(\mathrm{ReLU}(W_1
    x))`, :math:`W_1 \in \mathbb{R}^{2d\times d}`. A node without incoming
    edges gets :math:`\hat{h}_i = 0`.

    Args:
        channels (int): width :math:`d` (input = output).
        heads (int): number of heads :math:`H`; must divide :math:`d`.
        edge_features (bool): use and update edge features :math:`e_{ij}`
            of width :math:`d`.
        norm (str): ``batch`` (BatchNorm, the paper's recommendation) or
            ``layer`` (LayerNorm).
        dropout (float): dropout after attention and inside the FFN.
        clamp (float): the score clamp (5 in the paper).
        bias (bool): biases of :math:`Q, K, V, E` (off in the paper).
        residual (bool): the two residual connections.
        edge_update (bool): compute the new edge features :math:`e_{out}`
            (a model's last layer can skip it: nothing reads them).
    """
    def __init__(self, channels: int, heads: int = 8,
                 edge_features: bool = False, norm: str | None = 'batch',
                 dropout: float = 0.0, clamp: float = 5.0,
                 bias: bool = False, residual: bool = True,
                 edge_update: bool = True) -> None:
        super().__init__(aggr='add', node_dim=0)
        if channels % heads:
            raise ValueError(f"GraphTransformerLayer: channels ({channels}) "
                             f"must be divisible by heads ({heads})")
        self.channels, self.heads = channels, heads
        self.head_dim = channels // heads
        self.edge_features = edge_features
        self.edge_update = edge_features and edge_update
        self.dropout, self.clamp, self.residual = dropout, clamp, residual
        self.lin_q = Linear(channels, channels, bias=bias)
        self.lin_k = Linear(channels, channels, bias=bias)
        self.lin_v = Linear(channels, channels, bias=bias)
        self.out_h = Linear(channels, channels)
        self.norm1_h = norm_layer(norm, channels)
        self.ffn_h = _FeedForward(channels, dropout)
        self.norm2_h = norm_layer(norm, channels)
        if edge_features:
            self.lin_e = Linear(channels, channels, bias=bias)
        if self.edge_update:
            self.out_e = Linear(channels, channels)
            self.norm1_e = norm_layer(norm, channels)
            self.ffn_e = _FeedForward(channels, dropout)
            self.norm2_e = norm_layer(norm, channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for m in self.children():
            if hasattr(m, 'reset_parameters'):
                m.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor,
                edge_attr: Tensor | None = None
                ) -> Tensor | tuple[Tensor, Tensor]:
        r"""Returns the new node features, and the new edge features when
        the layer was built with ``edge_features=True`` and
        ``edge_update=True``."""
        if x.dim() != 2 or x.size(-1) != self.channels:
            raise ValueError(f"GraphTransformerLayer expects x of shape "
                             f"[num_nodes, {self.channels}], got "
                             f"{list(x.shape)}")
        if self.edge_features and (edge_attr is None or list(
                edge_attr.shape) != [edge_index.size(1), self.channels]):
            got = None if edge_attr is None else list(edge_attr.shape)
            raise ValueError(f"GraphTransformerLayer(edge_features=True) "
                             f"expects edge_attr of shape "
                             f"[{edge_index.size(1)}, {self.channels}], got "
                             f"{got}")
        H, D = self.heads, self.head_dim
        # scale the N queries rather than the E products
        # Q, K and V in one matrix product
        weight = torch.cat([self.lin_q.weight / math.sqrt(D),
                            self.lin_k.weight, self.lin_v.weight])
        bias = None if self.lin_q.bias is None else torch.cat([
            self.lin_q.bias / math.sqrt(D), self.lin_k.bias,
            self.lin_v.bias])
        q, k, v = F.linear(x, weight, bias).view(-1, 3, H, D).unbind(1)
        e = self.lin_e(edge_attr).view(-1, H, D) if self.edge_features \
            else None
        # Un-summed scores [E, H, D], then clamped scalar scores per head.
        src, dst = edge_index[0], edge_index[1]
        w_hat = q.index_select(0, dst) * k.index_select(0, src)
        if e is not None:
            w_hat = w_hat * e
        score = w_hat.sum(-1).clamp(-self.clamp, self.clamp)
        n = x.size(0)
        if self.clamp <= _EXP_SAFE:
            # The clamp bounds exp(score), so the softmax needs no shift by
            # the per-node maximum; and its denominator divides the N
            # aggregated rows instead of the E weights (as the reference
            # implementation does): h_i = Σ_j e^{s_ij} v_j / Σ_j e^{s_ij}.
            weight = score.exp()
            h = self.propagate(edge_index, v=v, alpha=weight, size=(n, n))
            total = scatter(weight, dst, dim=0, dim_size=n, reduce='sum')
            # nodes without incoming edges: 0 / tiny = 0
            h = h / total.clamp_min(torch.finfo(total.dtype).tiny)[..., None]
        else:
            alpha = softmax(score, dst, num_nodes=n)
            h = self.propagate(edge_index, v=v, alpha=alpha, size=(n, n))
        h = self.out_h(h.reshape(-1, self.channels))
        h = self._block(x, h, self.norm1_h, self.ffn_h, self.norm2_h)
        if not self.edge_update:
            return h
        e_new = self.out_e(w_hat.reshape(-1, self.channels))
        e_new = self._block(edge_attr, e_new, self.norm1_e, self.ffn_e,
                            self.norm2_e)
        return h, e_new

    def _block(self, x: Tensor, update: Tensor, norm1: Module, ffn: Module,
               norm2: Module) -> Tensor:
        update = F.dropout(update, self.dropout, self.training)
        h = norm1(x + update if self.residual else update)
        h2 = F.dropout(ffn(h), self.dropout, self.training)
        return norm2(h + h2 if self.residual else h2)

    def message(self, v_j: Tensor, alpha: Tensor) -> Tensor:
        return v_j * alpha.unsqueeze(-1)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.channels}, "
                f"heads={self.heads}, edge_features={self.edge_features}, "
                f"norm={type(self.norm1_h).__name__})")
