r"""Neural Common Neighbor predictors (`Wang, Yang and Zhang, ICLR 2024
<https://arxiv.org/abs/2302.00890>`_): NCN pools the encoder states of the
common neighbours of a target pair; NCNC first completes the common
neighbourhood with the model's own link probabilities."""
from __future__ import annotations

import math

import torch
from torch import Tensor
from torch.nn import (Identity, LayerNorm, Linear, Module, Parameter,
                      ReLU, Sequential)

from graphkit.utils.tensor import MaskDropout
from graphkit.utils.common_neighbors import (CSRAdjacency, neighbor_overlap,
                                             pool_neighbors)

__all__ = ['NCNPredictor', 'NCNCPredictor', 'GAEPredictor']


def _block(channels: int, dropout: float, norm: bool,
           tail: bool) -> list[Module]:
    out: list[Module] = [Linear(channels, channels)]
    if norm:
        out.append(LayerNorm(channels))
    out += [MaskDropout(dropout), ReLU()]
    if not tail:
        out.append(Linear(channels, channels))
    return out


def _pair_and_out(channels: int, dropout: float, norm: bool, tail: bool,
                  two_layer_out: bool) -> tuple[Module, Module]:
    r"""The pair branch :math:`\mathrm{MLP}_{ij}` and the output MLP."""
    xij = Sequential(*_block(channels, dropout, norm, tail))
    out: list[Module] = [Linear(channels, channels),
                         LayerNorm(channels) if norm else Identity(),
                         MaskDropout(dropout), ReLU()]
    if two_layer_out:
        out += [Linear(channels, channels),
                LayerNorm(channels) if norm else Identity(),
                MaskDropout(dropout), ReLU()]
    out.append(Linear(channels, 1))
    return xij, Sequential(*out)


class NCNPredictor(Module):
    r"""The NCN link predictor on encoder states :math:`\mathbf{h}`:

    .. math::
        s_{ij} = \mathrm{MLP}_{out}\Big(\beta\,\mathrm{MLP}_{cn}\big(
        \textstyle\sum_{u \in N(i) \cap N(j)} \mathbf{h}_u\big) +
        \mathrm{MLP}_{ij}(\mathbf{h}_i \odot \mathbf{h}_j)\Big),

    the sum of two branches being the structured form of an MLP over
    :math:`[\mathbf{h}_i \odot \mathbf{h}_j \,\Vert\, \sum_u
    \mathbf{h}_u]`. :math:`\beta` is learnable (initialised to ``beta``).
    Common neighbours come from :func:`~graphkit.utils.common_neighbors.
    neighbor_overlap` on the adjacency passed in (during training, the
    graph with the target links removed).

    Args:
        channels (int): width :math:`F` of :math:`\mathbf{h}`.
        dropout (float): dropout inside the MLPs.
        beta (float): initial :math:`\beta`.
        layer_norm (bool): LayerNorm inside the MLPs.
        tail_act (bool): end the branch MLPs with the activation (no last
            linear map).
        two_layer_out (bool): one more hidden block in the output MLP.
        use_xlin (bool): add :math:`\mathrm{MLP}(\mathbf{h})` to the pooled
            states (:math:`\mathbf{h}' = \mathbf{h} + \mathrm{MLP}(
            \mathbf{h})`).
    """
    needs_adjacency = True

    def __init__(self, channels: int, dropout: float = 0.0, beta: float = 1.0,
                 layer_norm: bool = False, tail_act: bool = False,
                 two_layer_out: bool = False, use_xlin: bool = False) -> None:
        super().__init__()
        norm = layer_norm
        self.xlin = (Sequential(Linear(channels, channels), MaskDropout(dropout),
                                ReLU(), Linear(channels, channels),
                                *([LayerNorm(channels)] if norm else []),
                                MaskDropout(dropout), ReLU())
                     if use_xlin else None)
        self.xcn = Sequential(Linear(channels, channels), MaskDropout(dropout),
                              ReLU(), *_block(channels, dropout, norm,
                                              tail_act))
        self.xij, self.out = _pair_and_out(channels, dropout, norm, tail_act,
                                           two_layer_out)
        self.beta = Parameter(torch.tensor(float(beta)))
        self.beta_init = float(beta)

    def reset_parameters(self) -> None:
        for mod in self.modules():
            if mod is not self and hasattr(mod, 'reset_parameters'):
                mod.reset_parameters()
        with torch.no_grad():
            self.beta.fill_(self.beta_init)

    def pooled_states(self, h: Tensor) -> Tensor:
        r""":math:`\mathbf{h}'`, the states that are pooled."""
        return h if self.xlin is None else h + self.xlin(h)

    def combine(self, h: Tensor, src: Tensor, dst: Tensor,
                pooled: Tensor) -> Tensor:
        r"""Logits from the endpoint states and a pooled neighbourhood."""
        e_ij = self.xij(h.index_select(0, src) * h.index_select(0, dst))
        return self.out(self.beta * self.xcn(pooled) + e_ij).view(-1)

    def forward(self, h: Tensor, adj: CSRAdjacency, pairs: Tensor) -> Tensor:
        r"""Logits of the pairs ``pairs`` :obj:`[2, B]`."""
        _check_pairs(pairs, h.size(0))
        src, dst = pairs
        ov = neighbor_overlap(adj, src, dst, one_sided=False)
        hp = self.pooled_states(h)
        pooled = pool_neighbors(hp, *ov.common, ov.num_pairs)
        return self.combine(h, src, dst, pooled)


class GAEPredictor(Module):
    r"""The GAE ablation of :class:`NCNPredictor` (the reference code's
    ``cn0``): the same pair branch and output MLP with no common-neighbour
    term,

    .. math::
        s_{ij} = \mathrm{MLP}_{out}\big(\mathrm{MLP}_{ij}(\mathbf{h}_i
        \odot \mathbf{h}_j)\big),

    so that, over the same encoder and training, the difference to NCN is
    what pooling the common neighbours adds.

    Args:
        channels (int), dropout (float), layer_norm (bool), tail_act (bool),
        two_layer_out (bool): as in :class:`NCNPredictor`.
    """
    needs_adjacency = False

    def __init__(self, channels: int, dropout: float = 0.0,
                 layer_norm: bool = False, tail_act: bool = False,
                 two_layer_out: bool = False) -> None:
        super().__init__()
        self.xij, self.out = _pair_and_out(channels, dropout, layer_norm,
                                           tail_act, two_layer_out)

    def reset_parameters(self) -> None:
        for mod in self.modules():
            if mod is not self and hasattr(mod, 'reset_parameters'):
                mod.reset_parameters()

    def forward(self, h: Tensor, adj: CSRAdjacency | None,
                pairs: Tensor) -> Tensor:
        r"""Logits of the pairs ``pairs`` :obj:`[2, B]` (``adj`` is not
        used; it keeps the predictors' common signature)."""
        _check_pairs(pairs, h.size(0))
        src, dst = pairs
        return self.out(self.xij(h.index_select(0, src) *
                                 h.index_select(0, dst))).view(-1)


class NCNCPredictor(NCNPredictor):
    r"""NCNC: NCN on a *completed* common neighbourhood. A neighbour
    :math:`u` of only one endpoint counts with the probability that the
    missing link exists, scored by the same predictor (order
    :math:`k - 1`, NCN at order 0) without gradient:

    .. math::
        \sum_u P_{uij}\,\mathbf{h}_u, \quad P_{uij} = \begin{cases}
        1 & u \in N(i) \cap N(j) \\ \tilde p(j, u) & u \in N(i)
        \setminus N(j) \\ \tilde p(i, u) & u \in N(j) \setminus N(i)
        \end{cases}

    with the calibrated probability
    :math:`\tilde p = \alpha\,\sigma(\gamma (s - o) + \ln \pi)` of the
    inner logit :math:`s` (scale :math:`\gamma`, offset :math:`o`, prior
    :math:`\pi`, cap :math:`\alpha`).

    With ``use_xlin``, the reference implementation scores the candidate
    links on the already updated states :math:`\mathbf{h}' = \mathbf{h} +
    \mathrm{MLP}(\mathbf{h})` (its published calibration constants were
    tuned that way); ``nested_states=True`` (default) does the same, and
    ``False`` scores them on :math:`\mathbf{h}` like the outer pair.

    Args:
        order (int): completion order :math:`k \ge 1`.
        prob_scale, prob_offset, prior, alpha (float): the calibration.
        nested_states (bool): score candidates on :math:`\mathbf{h}'`.
        candidate_chunk (int): candidate links scored per call of the inner
            predictor (default :obj:`65536`); bounds the memory of the
            completion on dense graphs without changing the result.
        **kwargs: :class:`NCNPredictor` arguments.
    """
    def __init__(self, channels: int, order: int = 1, prob_scale: float = 1.0,
                 prob_offset: float = 0.0, prior: float = 0.5,
                 alpha: float = 1.0, nested_states: bool = True,
                 candidate_chunk: int = 1 << 16, **kwargs) -> None:
        super().__init__(channels, **kwargs)
        if order < 1:
            raise ValueError(f"NCNC needs completion order >= 1, got "
                             f"{order}")
        if not 0.0 < prior < 1.0:
            raise ValueError(f"prior must lie in (0, 1), got {prior}")
        self.order = order
        self.prob_scale, self.prob_offset = prob_scale, prob_offset
        self.log_prior, self.alpha = math.log(prior), alpha
        self.nested_states = nested_states
        if candidate_chunk < 1:
            raise ValueError(f"candidate_chunk must be >= 1, got "
                             f"{candidate_chunk}")
        self.candidate_chunk = candidate_chunk

    def completion_probability(self, logits: Tensor) -> Tensor:
        return self.alpha * torch.sigmoid(
            self.prob_scale * (logits - self.prob_offset) + self.log_prior)

    def _score(self, h: Tensor, hp: Tensor, adj: CSRAdjacency, src: Tensor,
               dst: Tensor, order: int) -> Tensor:
        ov = neighbor_overlap(adj, src, dst, one_sided=order > 0)
        pooled = pool_neighbors(hp, *ov.common, ov.num_pairs)
        if order > 0:
            (bi, ui), (bj, uj) = ov.only_src, ov.only_dst
            with torch.no_grad():
                # u is a neighbour of i only: is (j, u) a missing link?
                # Both candidate lists are scored in one call.
                h_in, hp_in = ((hp, self.pooled_states(hp))
                               if self.nested_states and self.xlin is not None
                               else (h, hp))
                c_src = torch.cat([dst[bi], src[bj]])
                c_dst = torch.cat([ui, uj])
                # Scored in chunks: without gradient the chunks are
                # independent, and peak memory stays that of one chunk
                # (a dense graph has hundreds of candidates per pair).
                step = self.candidate_chunk
                cand = torch.cat([
                    self._score(h_in, hp_in, adj, c_src[k:k + step],
                                c_dst[k:k + step], order - 1)
                    for k in range(0, c_src.numel(), step)
                ]) if c_src.numel() else h.new_zeros(0)
                prob = self.completion_probability(cand)
            pooled = pooled + pool_neighbors(
                hp, torch.cat([bi, bj]), torch.cat([ui, uj]), ov.num_pairs,
                prob)
        return self.combine(h, src, dst, pooled)

    def forward(self, h: Tensor, adj: CSRAdjacency, pairs: Tensor) -> Tensor:
        _check_pairs(pairs, h.size(0))
        return self._score(h, self.pooled_states(h), adj, pairs[0], pairs[1],
                           self.order)


def _check_pairs(pairs: Tensor, num_nodes: int) -> None:
    if pairs.dim() != 2 or pairs.size(0) != 2:
        raise ValueError(f"pairs must have shape [2, B], got "
                         f"{tuple(pairs.shape)}")
    if pairs.dtype != torch.long:
        raise TypeError(f"pairs must be torch.long, got {pairs.dtype}")
    if pairs.numel() and int(pairs.max()) >= num_nodes:
        raise ValueError(f"pairs refer to node {int(pairs.max())} but h has "
                         f"{num_nodes} rows")

