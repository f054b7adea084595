r"""Deep residual GCNs (GCNII, ResGCN) written as a chain of per-layer steps.

Both encoders normalise the graph once,

.. math::
    \hat{\mathbf{A}} = \mathbf{D}^{-1/2}(\mathbf{A} + \mathbf{I})
    \mathbf{D}^{-1/2},

and then apply ``num_layers`` propagation layers that all read the same
:math:`\hat{\mathbf{A}}`. Besides the usual ``forward``, they expose that
chain step by step (:class:`LayerChain`): a per-node input step, ``L``
layers that each aggregate over edges, and a per-node output step. The
parallel trainers in :mod:`graphkit.pipelines.distributed` run those steps on parts of
the graph (graph partitions, chunks, pipeline stages); the models themselves
know nothing of how they are distributed.

The chain contract:

* the *state* between steps is a tuple of node tensors. ``state[0]`` is the
  tensor the next layer aggregates over edges; the others (GCNII's initial
  residual :math:`\mathbf{H}^{(0)}`) are read only at each node itself;
* :meth:`LayerChain.chain_layer` maps the state of the *source* rows of a
  normalised (bipartite) edge list to the new state. Rows that receive no
  edge are not meaningful; callers read the rows they gave edges to.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import LayerNorm, Linear, Module, ModuleList, ReLU

from torch_geometric.nn import DeepGCNLayer, GCN2Conv, GCNConv
from torch_geometric.nn.conv.gcn_conv import gcn_norm

from graphkit.layers.sparse_input import IdentityCache, dropout_linear
from graphkit.models.registry import register
from graphkit.utils.tensor import run_recomputed

__all__ = ['LayerChain', 'GCNII', 'ResGCN', 'as_layer_chain']

State = tuple[Tensor, ...]


class LayerChain(Module, ABC):
    r"""Base class of encoders written as a chain of steps (see the module
    docstring). Subclasses implement :meth:`chain_input`,
    :meth:`chain_layer` and :meth:`chain_output` and set ``num_layers``;
    :meth:`forward` runs the whole chain on one graph.

    With ``activation_checkpoint = True``, :meth:`forward` in training keeps
    only each layer's input state and recomputes the layer during backward
    (:func:`torch.utils.checkpoint.checkpoint`, non-reentrant, with the
    random state restored, so dropout masks are the same): memory for
    activations goes from :math:`O(L)` layers to :math:`O(1)` plus one
    state per layer, at the cost of a second forward pass."""
    num_layers: int

    def __init__(self, cached: bool = False) -> None:
        super().__init__()
        self.cached = cached
        self.activation_checkpoint = False
        self._cache: tuple[Tensor, Tensor] | None = None
        self._sparse_input = IdentityCache()

    def input_linear(self, x: Tensor, lin: Linear, p: float) -> Tensor:
        r""":math:`\mathrm{drop}_p(\mathbf{X})\mathbf{W}^\top + \mathbf{b}`
        for the input step. A sparse input (bag-of-words features, at most
        30% non-zero) runs as a CSR product over its non-zeros, with the
        dropout mask drawn over them only, so neither the dropped copy of
        :math:`\mathbf{X}` nor its mask is kept for backward. The compressed
        form is cached while the same tensor comes back (full-graph
        training) and rebuilt for a new one (mini-batches, chunks)."""
        return dropout_linear(self._sparse_input.row_sparse(x), lin, p,
                              self.training)

    @staticmethod
    def normalize_graph(edge_index: Tensor, edge_weight: Tensor | None,
                        num_nodes: int, dtype: torch.dtype = torch.float
                        ) -> tuple[Tensor, Tensor]:
        r"""The symmetrically normalised adjacency with self-loops,
        :math:`\hat{A}_{ij} = (d_i d_j)^{-1/2}` over
        :math:`\mathbf{A} + \mathbf{I}`, as an edge list and weights."""
        if not isinstance(edge_index, Tensor) or edge_index.dim() != 2:
            raise ValueError(f"{__name__}: expected an edge_index tensor of "
                             f"shape [2, E], got {type(edge_index).__name__}")
        return gcn_norm(edge_index, edge_weight, num_nodes,
                        add_self_loops=True, dtype=dtype)

    @abstractmethod
    def chain_input(self, x: Tensor) -> State:
        r"""The per-node input step: features to the first state."""

    @abstractmethod
    def chain_layer(self, i: int, state: State, edge_index: Tensor,
                    edge_weight: Tensor) -> State:
        r"""Layer ``i`` (0-based) on the normalised edge list
        ``(edge_index, edge_weight)`` over the rows of ``state``."""

    @abstractmethod
    def chain_output(self, state: State) -> Tensor:
        r"""The per-node output step: last state to outputs."""

    def reset_parameters(self) -> None:
        self._cache = None

    def forward(self, x: Tensor, edge_index: Tensor,
                edge_weight: Tensor | None = None, **kwargs: Any) -> Tensor:
        if self.cached and self._cache is not None:
            ei, ew = self._cache
        else:
            ei, ew = self.normalize_graph(edge_index, edge_weight, x.size(0),
                                          x.dtype)
            if self.cached:
                self._cache = (ei, ew)
        state = self.chain_input(x)
        recompute = self.activation_checkpoint and self.training
        for i in range(self.num_layers):
            state = run_recomputed(self.chain_layer, i, state, ei, ew,
                                   recompute=recompute)
        return self.chain_output(state)


class GCNII(LayerChain):
    r"""GCNII, "Simple and Deep Graph Convolutional Networks"
    (Chen et al., ICML 2020, https://arxiv.org/abs/2007.02133).

    .. math::
        \mathbf{H}^{(0)} = \mathrm{ReLU}(\mathbf{X}\mathbf{W}_{in}),\qquad
        \mathbf{H}^{(\ell+1)} = \mathrm{ReLU}\Big(\big((1-\alpha)
        \hat{\mathbf{A}}\mathbf{H}^{(\ell)} + \alpha\mathbf{H}^{(0)}\big)
        \big((1-\beta_\ell)\mathbf{I} + \beta_\ell\mathbf{W}^{(\ell)}\big)
        \Big),\quad \beta_\ell = \log(\lambda/\ell + 1),

    node-wise :math:`\mathbf{h}_i^{(\ell+1)} = \mathrm{ReLU}(((1-\alpha)
    \sum_{j} \hat{A}_{ij}\mathbf{h}_j^{(\ell)} + \alpha \mathbf{h}_i^{(0)})
    ((1-\beta_\ell)\mathbf{I} + \beta_\ell \mathbf{W}^{(\ell)}))`, and
    :math:`\mathbf{Y} = \mathbf{H}^{(L)}\mathbf{W}_{out}`; dropout precedes
    every linear map and every layer. Layers are PyG's
    :class:`~torch_geometric.nn.conv.GCN2Conv`.

    Args:
        in_channels (int): input features.
        hidden_channels (int): width of every layer.
        out_channels (int): output size.
        num_layers (int): propagation layers :math:`L` (default: :obj:`32`)
        alpha (float): initial-residual weight :math:`\alpha`
            (default: :obj:`0.1`)
        theta (float): :math:`\lambda` of the identity mapping
            (default: :obj:`0.5`)
        dropout (float): dropout (default: :obj:`0.5`)
        cached (bool): cache the normalised graph after the first call
            (default: :obj:`False`)

    Shapes:
        - **input:** :math:`(N, F_{in})`, edge index :math:`(2, E)`
        - **output:** :math:`(N, F_{out})`
    """
    def __init__(self, in_channels: int, hidden_channels: int,
                 out_channels: int, num_layers: int = 32, alpha: float = 0.1,
                 theta: float = 0.5, dropout: float = 0.5,
                 cached: bool = False) -> None:
        super().__init__(cached)
        if num_layers < 1:
            raise ValueError(f"GCNII: num_layers must be >= 1, got "
                             f"{num_layers}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"GCNII: alpha must lie in [0, 1], got {alpha}")
        self.num_layers = num_layers
        self.alpha, self.theta, self.dropout = alpha, theta, dropout
        self.lin_in = Linear(in_channels, hidden_channels)
        self.lin_out = Linear(hidden_channels, out_channels)
        self.convs = ModuleList(
            GCN2Conv(hidden_channels, alpha, theta, layer=i + 1,
                     shared_weights=True, normalize=False)
            for i in range(num_layers))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.lin_in.reset_parameters()
        self.lin_out.reset_parameters()
        for conv in self.convs:
            conv.reset_parameters()

    def chain_input(self, x: Tensor) -> State:
        h = F.relu(self.input_linear(x, self.lin_in, self.dropout))
        return h, h

    def chain_layer(self, i: int, state: State, edge_index: Tensor,
                    edge_weight: Tensor) -> State:
        h, h0 = state
        h = F.dropout(h, self.dropout, self.training)
        return F.relu(self.convs[i](h, h0, edge_index, edge_weight)), h0

    def chain_output(self, state: State) -> Tensor:
        h = F.dropout(state[0], self.dropout, self.training)
        return self.lin_out(h)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}({self.lin_in.in_features}, '
                f'{self.lin_out.out_features}, num_layers={self.num_layers}, '
                f'alpha={self.alpha}, theta={self.theta})')


class ResGCN(LayerChain):
    r"""A deep residual GCN with pre-activation blocks (the "res+" block of
    DeeperGCN, Li et al., 2020, https://arxiv.org/abs/2006.07739; the
    ResGCN of the GNNPipe experiments).

    .. math::
        \mathbf{H}^{(0)} = \mathbf{X}\mathbf{W}_{in},\qquad
        \mathbf{H}^{(\ell+1)} = \mathbf{H}^{(\ell)} + \hat{\mathbf{A}}\,
        \mathrm{dropout}\big(\sigma(\mathrm{norm}(\mathbf{H}^{(\ell)}))\big)
        \mathbf{W}^{(\ell)} + \mathbf{b}^{(\ell)},

    node-wise :math:`\mathbf{h}_i^{(\ell+1)} = \mathbf{h}_i^{(\ell)} +
    \sum_j \hat{A}_{ij}\,\mathbf{W}^{(\ell)\top}\mathrm{dropout}(\sigma(
    \mathrm{norm}(\mathbf{h}_j^{(\ell)}))) + \mathbf{b}^{(\ell)}`, and
    :math:`\mathbf{Y} = \mathrm{dropout}(\sigma(\mathrm{norm}(
    \mathbf{H}^{(L)})))\mathbf{W}_{out}`. Blocks are PyG's
    :class:`~torch_geometric.nn.models.DeepGCNLayer` around
    :class:`~torch_geometric.nn.conv.GCNConv`.

    Args:
        in_channels (int): input features.
        hidden_channels (int): width of every layer.
        out_channels (int): output size.
        num_layers (int): residual blocks :math:`L` (default: :obj:`32`)
        dropout (float): dropout inside each block and before the output
            layer (default: :obj:`0.5`)
        norm (str, optional): ``'layer'`` for LayerNorm first in each block
            (ResGCN+), :obj:`None` for none (default: :obj:`None`)
        cached (bool): cache the normalised graph after the first call
            (default: :obj:`False`)

    Shapes:
        - **input:** :math:`(N, F_{in})`, edge index :math:`(2, E)`
        - **output:** :math:`(N, F_{out})`
    """
    def __init__(self, in_channels: int, hidden_channels: int,
                 out_channels: int, num_layers: int = 32,
                 dropout: float = 0.5, norm: str | None = None,
                 cached: bool = False) -> None:
        super().__init__(cached)
        if num_layers < 1:
            raise ValueError(f"ResGCN: num_layers must be >= 1, got "
                             f"{num_layers}")
        if norm not in (None, 'layer', 'layer_norm', 'layernorm'):
            raise ValueError(f"ResGCN: norm must be None or 'layer', got "
                             f"'{norm}'")
        self.num_layers, self.dropout = num_layers, dropout
        self.norm = None if norm is None else 'layer'
        self.lin_in = Linear(in_channels, hidden_channels)
        self.lin_out = Linear(hidden_channels, out_channels)
        self.blocks = ModuleList(
            DeepGCNLayer(GCNConv(hidden_channels, hidden_channels,
                                 normalize=False),
                         LayerNorm(hidden_channels) if self.norm else None,
                         ReLU(), block='res+', dropout=dropout)
            for _ in range(num_layers))
        self.out_norm = LayerNorm(hidden_channels) if self.norm else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.lin_in.reset_parameters()
        self.lin_out.reset_parameters()
        for block in self.blocks:
            block.conv.reset_parameters()
            if block.norm is not None:
                block.norm.reset_parameters()
        if self.out_norm is not None:
            self.out_norm.reset_parameters()

    def chain_input(self, x: Tensor) -> State:
        return (self.input_linear(x, self.lin_in, 0.0), )

    def chain_layer(self, i: int, state: State, edge_index: Tensor,
                    edge_weight: Tensor) -> State:
        return (self.blocks[i](state[0], edge_index, edge_weight), )

    def chain_output(self, state: State) -> Tensor:
        h = state[0]
        if self.out_norm is not None:
            h = self.out_norm(h)
        h = F.dropout(F.relu(h), self.dropout, self.training)
        return self.lin_out(h)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}({self.lin_in.in_features}, '
                f'{self.lin_out.out_features}, num_layers={self.num_layers}, '
                f'norm={self.norm})')


def as_layer_chain(model: Module) -> tuple[LayerChain, float]:
    r"""The :class:`LayerChain` inside ``model`` (the model itself, or the
    encoder of a node classifier) and the input dropout applied before it.
    Raises a :class:`ValueError` naming the chain models otherwise."""
    encoder = getattr(model, 'encoder', model)
    if not isinstance(encoder, LayerChain):
        raise ValueError(
            f"{type(encoder).__name__} cannot be split into per-layer steps; "
            f"graph-parallel, pipeline and hybrid training need a layer-chain "
            f"encoder: {', '.join(sorted(CHAIN_MODELS))}")
    return encoder, float(getattr(model, 'input_dropout', 0.0))


CHAIN_MODELS = ('gcnii', 'resgcn')


@register('gcnii', description='GCNII (Chen et al., 2020): initial residual '
          '+ identity mapping, deep (GCN2Conv)')
def gcnii(in_channels: int, out_channels: int, hidden_channels: int = 64,
          num_layers: int = 32, alpha: float = 0.1, theta: float = 0.5,
          dropout: float = 0.5, cached: bool = False) -> Module:
    return GCNII(in_channels, hidden_channels, out_channels, num_layers,
                 alpha, theta, dropout, cached)


@register('resgcn', description='ResGCN: deep pre-activation residual GCN '
          '(DeepGCNLayer res+)')
def resgcn(in_channels: int, out_channels: int, hidden_channels: int = 64,
           num_layers: int = 32, dropout: float = 0.5,
           norm: str | None = None, cached: bool = False) -> Module:
    return ResGCN(in_channels, hidden_channels, out_channels, num_layers,
                  dropout, norm, cached)

