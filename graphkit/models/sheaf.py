r"""Neural Sheaf Diffusion (`Bodnar et al., NeurIPS 2022
<https://arxiv.org/abs/2202.04579>`_): diagonal, bundle (orthogonal) and
general sheaves."""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn import Embedding, Identity, Linear, Module, ModuleList
from torch_geometric.utils import coalesce, remove_self_loops, to_undirected

from graphkit.layers.sheaf import (BundleSheafConv, DiagSheafConv,
                                   GeneralSheafConv, SheafConv, SheafLearner,
                                   SheafStructure, diag_sheaf_laplacian,
                                   learned_diag_sheaf_laplacian)
from graphkit.layers.sparse_input import IdentityCache, dropout_linear
from graphkit.models.registry import register

__all__ = ['NSD', 'Sheaf4Rec', 'sheaf_graph']

FAMILIES: dict[str, type[SheafConv]] = {
    'diag': DiagSheafConv, 'bundle': BundleSheafConv,
    'general': GeneralSheafConv}


def sheaf_graph(edge_index: Tensor, num_nodes: int) -> Tensor:
    r"""``edge_index`` made symmetric, without self-loops or duplicates, as
    sheaf Laplacians need (one restriction map per directed edge). A sparse
    adjacency matrix is accepted too (its pattern is used)."""
    if edge_index.layout != torch.strided:
        edge_index = edge_index.to_sparse_coo().coalesce().indices()
    ei, _ = remove_self_loops(edge_index)
    return coalesce(to_undirected(ei, num_nodes=num_nodes),
                    num_nodes=num_nodes)


class NSD(Module):
    r"""The discrete Neural Sheaf Diffusion network:

    .. math::
        X^{(0)} = \mathrm{drop}(\mathrm{ELU}(\mathbf{X}_{in} W_{in}))
        \in \mathbb{R}^{N \times \hat d f}, \qquad
        X^{(t+1)} = (1 + \tanh\varepsilon_t) \odot X^{(t)} -
        \mathrm{ELU}\big(\Delta_{\mathcal{F}_t}(I_N \otimes W_1^t)
        \mathrm{drop}(X^{(t)}) W_2^t\big),

    then :math:`Y = X^{(L)} W_{out}` on the flattened stalks. A new sheaf
    :math:`\mathcal{F}_t` is learned from :math:`X^{(t)}` at every layer,
    or once at layer 0 with ``linear_sheaf``. Input dropout
    (``input_dropout``, passed by the node wrapper) and the input map run
    over the non-zeros only when the features are sparse (bag-of-words),
    with the same distribution as dense dropout.

    Args:
        in_channels (int), out_channels (int): features in and out.
        family (str): ``diag``, ``bundle`` or ``general``.
        hidden_channels (int): :math:`f`, channels per stalk dimension.
        num_layers (int): diffusion steps :math:`L`.
        stalk_dim (int): learned stalk dimension :math:`d`; the total
            :math:`\hat d = d + \mathrm{lp} + \mathrm{hp}`.
        dropout (float): dropout after the input map and in every layer.
        add_lp (bool), add_hp (bool): fixed low- / high-pass stalks.
        second_linear (bool): a second input map.
        sparse_learner (bool): the lighter sheaf learner.
        linear_sheaf (bool): learn one sheaf (layer 0) for all layers.
        orth (str): bundle parameterisation, ``householder``, ``cayley`` or
            ``matrix_exp``.
        edge_weights (bool): bundle edge weights.
        use_act (bool): ELU in the input map and the layers.
        sheaf_act (str): learner activation (``tanh``, ``id``, ``elu``).
        normalised (bool): normalised Laplacian.
    """
    def __init__(self, in_channels: int, out_channels: int,
                 family: str = 'diag', hidden_channels: int = 20,
                 num_layers: int = 2, stalk_dim: int = 2,
                 dropout: float = 0.0, add_lp: bool = False,
                 add_hp: bool = False, second_linear: bool = False,
                 sparse_learner: bool = False, linear_sheaf: bool = False,
                 orth: str = 'householder', edge_weights: bool = True,
                 use_act: bool = True, sheaf_act: str = 'tanh',
                 normalised: bool = True) -> None:
        super().__init__()
        if family not in FAMILIES:
            raise ValueError(f"Unknown sheaf family '{family}'. Valid: "
                             f"{', '.join(FAMILIES)}")
        if num_layers < 1:
            raise ValueError(f"NSD needs num_layers >= 1, got {num_layers}")
        if in_channels < 1:
            raise ValueError("NSD needs node features (in_channels >= 1); "
                             "featureless graphs get learned embeddings "
                             "from the link-prediction wrapper")
        self.family, self.linear_sheaf = family, linear_sheaf
        self.dropout, self.use_act = dropout, use_act
        self.stalk_dim = stalk_dim + int(add_lp) + int(add_hp)
        self.channels = hidden_channels
        width = self.stalk_dim * hidden_channels
        self.lin1 = Linear(in_channels, width)
        self.lin12 = Linear(width, width) if second_linear else None
        kwargs: dict[str, Any] = dict(
            add_lp=add_lp, add_hp=add_hp, dropout=dropout, use_act=use_act,
            sheaf_act=sheaf_act, variant=sparse_learner,
            normalised=normalised)
        if family == 'bundle':
            kwargs.update(orth=orth, edge_weights=edge_weights)
        conv = FAMILIES[family]
        self.convs = ModuleList(
            conv(stalk_dim, hidden_channels,
                 learn_maps=(t == 0 or not linear_sheaf), **kwargs)
            for t in range(num_layers))
        self.lin2 = Linear(width, out_channels)
        self._graph_cache = IdentityCache()
        self._input_cache = IdentityCache()
        self.reset_parameters()

    takes_input_dropout = True

    def reset_parameters(self) -> None:
        self.lin1.reset_parameters()
        if self.lin12 is not None:
            self.lin12.reset_parameters()
        for conv in self.convs:
            conv.reset_parameters()
        self.lin2.reset_parameters()

    def input_stalks(self, x: Tensor, input_dropout: float = 0.0) -> Tensor:
        r"""The input map: features :math:`(N, F)` to stalks
        :math:`(N, \hat d, f)`."""
        xs = self._input_cache.row_sparse(x)
        h = dropout_linear(xs, self.lin1, input_dropout, self.training)
        if self.use_act:
            h = F.elu(h)
        h = F.dropout(h, self.dropout, self.training)
        if self.lin12 is not None:
            h = self.lin12(h)
        return h.view(x.size(0), self.stalk_dim, self.channels)

    def diffuse(self, h: Tensor, edge_index: Tensor,
                laplacians: list | None = None) -> tuple[Tensor, list]:
        r"""The diffusion layers on stalks ``h`` over a graph prepared by
        :func:`sheaf_graph`. Returns the new stalks and the Laplacian of
        every layer; pass ``laplacians`` to reuse fixed ones instead of
        learning the maps."""
        used, laplacian = [], None
        for t, conv in enumerate(self.convs):
            if laplacians is not None:
                laplacian = laplacians[t]
            h, lap = conv(h, edge_index, laplacian=laplacian,
                          learner_dropout=t > 0)
            used.append(lap)
            laplacian = lap if self.linear_sheaf else None
        return h, used

    def forward(self, x: Tensor, edge_index: Tensor,
                input_dropout: float = 0.0, **_: Any) -> Tensor:
        n = x.size(0)
        ei = self._graph_cache.get((edge_index, ),
                                   lambda: sheaf_graph(edge_index, n))
        if edge_index.layout == torch.strided and ei.numel() and \
                int(ei.max()) >= n:
            raise ValueError(f"edge_index refers to node {int(ei.max())} "
                             f"but x has {n} rows")
        h, _ = self.diffuse(self.input_stalks(x, input_dropout), ei)
        return self.lin2(h.reshape(n, -1))

    def __repr__(self) -> str:
        return (f'{type(self).__name__}({self.lin1.in_features}, '
                f'{self.lin2.out_features}, family={self.family}, '
                f'stalk_dim={self.stalk_dim}, layers={len(self.convs)})')


def _builder(family: str):
    def make(in_channels: int, out_channels: int, hidden_channels: int = 20,
             num_layers: int = 2, stalk_dim: int = 2, dropout: float = 0.0,
             add_lp: bool = False, add_hp: bool = False,
             second_linear: bool = False, sparse_learner: bool = False,
             linear_sheaf: bool = False, orth: str = 'householder',
             edge_weights: bool = True, sheaf_act: str = 'tanh') -> NSD:
        return NSD(in_channels, out_channels, family, hidden_channels,
                   num_layers, stalk_dim, dropout, add_lp, add_hp,
                   second_linear, sparse_learner, linear_sheaf, orth,
                   edge_weights, sheaf_act=sheaf_act)
    make.__name__ = f'nsd_{family}'
    return make


for _family, _what in (('diag', 'diagonal maps'),
                       ('bundle', 'orthogonal maps, O(d) bundle'),
                       ('general', 'general maps')):
    register(f'nsd-{_family}', tasks=('node', 'link'),
             description=f'Neural Sheaf Diffusion, {_what} '
                         f'(Bodnar et al., 2022)')(_builder(_family))


class Sheaf4Rec(Module):
    r"""Sheaf4Rec (`Purificato et al., 2023
    <https://arxiv.org/abs/2304.09097>`_): sheaf diffusion on the bipartite
    user-item graph, with the recommendation contract of
    :mod:`graphkit.models.recommendation` (``embedding`` holds the layer-0
    embeddings, ``forward(edge_index)`` returns the final ones).

    Each layer learns restriction maps from the current embeddings and
    takes one linear diffusion step (no nonlinearity):

    .. math::
        \mathcal{F}_{v \trianglelefteq e} = \tanh\big(w^\top [\mathbf{e}_v
        \Vert \mathbf{e}_u]\big), \qquad
        \mathbf{E}^{(l+1)} = \mathbf{E}^{(l)} - \Delta_{\mathcal{F}}
        \big(\mathbf{E}^{(l)} W_l + b_l\big),

    with :math:`\Delta_\mathcal{F}` the normalised diagonal sheaf Laplacian
    (:func:`~graphkit.layers.sheaf.diag_sheaf_laplacian`). With stalk
    dimension 1 (the paper's setting) the maps are scalars, a learned,
    signed weighting of the user-item edges; with :math:`d > 1` each
    :math:`D`-dim embedding is read as :math:`d` stalk rows of
    :math:`D / d` channels, with one learned scalar per stalk row and edge.
    The readout concatenates :math:`[\mathbf{E}^{(0)} \Vert \dots \Vert
    \mathbf{E}^{(L)}]` (the final reference code) or averages them
    (``readout='mean'``, the first version).

    Args:
        num_users (int), num_items (int): :math:`U`, :math:`I`.
        embedding_dim (int): :math:`D` (default: :obj:`64`).
        num_layers (int): :math:`L` (default: :obj:`5`).
        stalk_dim (int): :math:`d`, a divisor of :math:`D`
            (default: :obj:`1`).
        readout (str): ``concat`` or ``mean``.
        init_std (float): std of the normal initial embeddings
            (default: :obj:`0.1`).
        map_init (float, optional): if given, each learner gets a bias
            :math:`b_l` inside the :math:`\tanh`, initialised to
            :math:`\operatorname{artanh}(\text{map\_init})`, so the maps
            start near this value rather than near 0. The reference learner
            has no bias; with small initial embeddings its maps start near
            0, where :math:`\Delta_\mathcal{F} \approx 0` and its gradient
            with respect to the maps vanishes too (every entry is a product
            of two maps), so a layer can stay an identity for many epochs.
            With all maps equal to 1, :math:`I - \Delta_\mathcal{F}` is the
            self-loop-normalised adjacency :math:`(D+I)^{-1/2}(A+I)
            (D+I)^{-1/2}`. (default: :obj:`None`)
        lin_init (str): ``default`` (PyTorch's uniform init of :math:`W_l`
            and :math:`b_l`) or ``identity`` (:math:`W_l = I`,
            :math:`b_l = 0`). With ``identity`` and maps near 1 a layer
            starts as one step of self-loop-normalised propagation,
            :math:`\mathbf{E}^{(l+1)} \approx (D+I)^{-1/2}(A+I)(D+I)^{-1/2}
            \mathbf{E}^{(l)}`, so the model starts close to LightGCN
            and learns the edge weighting and the channel mixing from
            there. ``fixed`` keeps :math:`W_l = I`, :math:`b_l = 0` untrained,
            :math:`\mathbf{E}^{(l+1)} = (I - \Delta_\mathcal{F})
            \mathbf{E}^{(l)}`: LightGCN-style propagation whose edge weights
            are the learned restriction maps. (default: :obj:`'default'`)
        augmented (bool): normalise the Laplacian by :math:`D + I`, as NSD
            and the reference code do (default), or by :math:`D` (nodes
            without edges keep zero rows). Without the augmentation
            :math:`I - \Delta_\mathcal{F} = D_\mathcal{F}^{-1/2}
            A_\mathcal{F} D_\mathcal{F}^{-1/2}` with
            :math:`(A_\mathcal{F})_{vu} = f_{v,e} f_{u,e}` and
            :math:`(D_\mathcal{F})_{vv} = \sum_e f_{v,e}^2`: it has no
            self-loops and does not change when every map is scaled by the
            same factor; with all maps equal and ``lin_init='fixed'`` a
            layer is exactly LightGCN's step
            :math:`D^{-1/2} A D^{-1/2} \mathbf{E}^{(l)}`.
            (default: :obj:`True`)
        map_grad (bool): let the loss reach the embeddings through the
            restriction maps (default). With :obj:`False` each learner reads
            :math:`\operatorname{sg}(\mathbf{E}^{(l)})` (stop-gradient): the
            maps are still learned, but the embeddings are trained only
            through the diffusion itself, :math:`\mathbf{E}^{(l+1)} =
            \mathbf{E}^{(l)} - \Delta_{\mathcal{F}} (\mathbf{E}^{(l)} W_l +
            b_l)` with :math:`\Delta_\mathcal{F}` held fixed.
            (default: :obj:`True`)
    """
    def __init__(self, num_users: int, num_items: int,
                 embedding_dim: int = 64, num_layers: int = 5,
                 stalk_dim: int = 1, readout: str = 'concat',
                 init_std: float = 0.1,
                 map_init: float | None = None,
                 lin_init: str = 'default', augmented: bool = True,
                 map_grad: bool = True) -> None:
        super().__init__()
        if lin_init not in ('default', 'identity', 'fixed'):
            raise ValueError(f"Sheaf4Rec lin_init must be 'default', "
                             f"'identity' or 'fixed', got '{lin_init}'")
        if map_init is not None and not -1.0 < map_init < 1.0:
            raise ValueError(f"Sheaf4Rec map_init must lie in (-1, 1), the "
                             f"range of tanh, or be None; got {map_init}")
        if embedding_dim % stalk_dim:
            raise ValueError(f"Sheaf4Rec: stalk_dim {stalk_dim} must divide "
                             f"embedding_dim {embedding_dim}")
        if readout not in ('concat', 'mean'):
            raise ValueError(f"Sheaf4Rec readout must be 'concat' or "
                             f"'mean', got '{readout}'")
        self.num_users, self.num_items = num_users, num_items
        self.stalk_dim, self.readout, self.init_std = (stalk_dim, readout,
                                                       init_std)
        self.lin_init, self.augmented = lin_init, augmented
        self.map_grad = map_grad
        bias = None if map_init is None else math.atanh(map_init)
        channels = embedding_dim // stalk_dim
        self.embedding = Embedding(num_users + num_items, embedding_dim)
        self.learners = ModuleList(
            SheafLearner(stalk_dim, channels, stalk_dim, 'tanh',
                         bias_init=bias)
            for _ in range(num_layers))
        self.num_layers = num_layers
        self.lins = ModuleList(
            Identity() if lin_init == 'fixed' else
            Linear(embedding_dim, embedding_dim) for _ in range(num_layers))
        self._cache = IdentityCache()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        torch.nn.init.normal_(self.embedding.weight, std=self.init_std)
        for learner, lin in zip(self.learners, self.lins):
            learner.reset_parameters()
            if self.lin_init == 'fixed':
                continue
            lin.reset_parameters()
            if self.lin_init == 'identity':
                with torch.no_grad():
                    lin.weight.copy_(torch.eye(lin.in_features))
                    lin.bias.zero_()

    def forward(self, edge_index: Tensor) -> Tensor:
        n = self.embedding.num_embeddings
        if edge_index.numel() and int(edge_index.max()) >= n:
            raise ValueError(f"edge_index refers to node "
                             f"{int(edge_index.max())}, but Sheaf4Rec has "
                             f"{n} = {self.num_users} users + "
                             f"{self.num_items} items")
        s = self._cache.get((edge_index, ), lambda: SheafStructure(
            sheaf_graph(edge_index, n), n, self.stalk_dim, blocks=False))
        x = self.embedding.weight
        d, width = self.stalk_dim, x.size(1)
        outs = [x]
        for learner, lin in zip(self.learners, self.lins):
            h = (x if self.map_grad else x.detach()).view(n, d, width // d)
            if self.augmented:
                # the same operator as below, in one fused pass from the
                # learner's node terms (learned_diag_sheaf_laplacian)
                left, right = learner.node_terms(h)
                lap = learned_diag_sheaf_laplacian(left, right, s,
                                                   learner.act)
            else:
                maps = learner(h, s.row, s.col)
                lap = diag_sheaf_laplacian(maps, s, augmented=False)
            x = x - (lap @ lin(x).reshape(n * d, width // d)).view(n, width)
            outs.append(x)
        if self.readout == 'mean':
            return torch.stack(outs).mean(0)
        return torch.cat(outs, dim=-1)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(num_users={self.num_users}, '
                f'num_items={self.num_items}, stalk_dim={self.stalk_dim}, '
                f'layers={self.num_layers}, readout={self.readout})')


@register('sheaf4rec', kind='model', tasks=('recommendation', ),
          description='Sheaf4Rec, sheaf diffusion for recommendation '
                      '(Purificato et al., 2023)')
def sheaf4rec(num_users: int, num_items: int, embedding_dim: int = 64,
              num_layers: int = 5, stalk_dim: int = 1,
              readout: str = 'concat', init_std: float = 0.1,
              map_init: float | None = None, lin_init: str = 'default',
              augmented: bool = True, map_grad: bool = True) -> Sheaf4Rec:
    return Sheaf4Rec(num_users, num_items, embedding_dim, num_layers,
                     stalk_dim, readout, init_std, map_init, lin_init,
                     augmented, map_grad)
