r"""Naive dense references on small graphs."""
from __future__ import annotations

import torch
from torch import Tensor

__all__ = ['dense_adjacency', 'dense_gcn_layer', 'dense_sheaf_laplacian',
           'dense_graph_transformer_attention']


def dense_adjacency(edge_index: Tensor, num_nodes: int) -> Tensor:
    r"""The dense :math:`N \times N` adjacency with
    :math:`A_{ij} = 1` for every edge :math:`j \to i`."""
    adj = torch.zeros(num_nodes, num_nodes)
    adj[edge_index[1], edge_index[0]] = 1.0
    return adj


def dense_gcn_layer(x: Tensor, edge_index: Tensor, weight: Tensor,
                    bias: Tensor | None = None) -> Tensor:
    r"""Kipf & Welling's propagation rule computed densely:

    .. math::
        \hat{D}^{-1/2} (A + I) \hat{D}^{-1/2} X W^\top + b
    """
    n = x.size(0)
    a = dense_adjacency(edge_index, n) + torch.eye(n)
    d = a.sum(1).pow(-0.5)
    out = d.view(-1, 1) * a * d.view(1, -1) @ (x @ weight.t())
    return out if bias is None else out + bias


def dense_flower_petal(edge_index: Tensor, num_nodes: int,
                       order: int) -> Tensor:
    r"""HiGCN's :math:`\mathrm{HL}_p` built densely from networkx's
    ``enumerate_all_cliques``:
    :math:`\tfrac{1}{p+1} D_p^{-1/2} H_p H_p^\top D_p^{-1/2}`, with zero rows
    and columns for nodes on no :math:`p`-simplex."""
    import networkx as nx
    g = nx.Graph()
    g.add_nodes_from(range(num_nodes))
    g.add_edges_from((a, b) for a, b in edge_index.t().tolist() if a != b)
    simplices = [c for c in nx.enumerate_all_cliques(g)
                 if len(c) == order + 1]
    h = torch.zeros(num_nodes, len(simplices), dtype=torch.double)
    for j, c in enumerate(simplices):
        h[c, j] = 1.0
    d = h.sum(1)
    inv = torch.where(d > 0, d.pow(-0.5), torch.zeros_like(d))
    return (inv.view(-1, 1) * (h @ h.t()) * inv.view(1, -1) / (order + 1))


def dense_sheaf_laplacian(edge_index: Tensor, maps: Tensor, num_nodes: int,
                          normalised: bool = True) -> Tensor:
    r"""The :math:`Nd \times Nd` sheaf Laplacian built naively from
    Kronecker products, :math:`L = \sum_e \delta_e^\top \delta_e` with
    :math:`\delta_e = e_v^\top \otimes \mathcal{F}_{v \trianglelefteq e} -
    e_u^\top \otimes \mathcal{F}_{u \trianglelefteq e}`, and optionally
    :math:`\tilde D^{-1/2} L \tilde D^{-1/2}`,
    :math:`\tilde D = \mathrm{blockdiag}(L) + I`.

    ``maps``: :obj:`[E, d, d]` (or :obj:`[E, d]` diagonals), one per directed
    edge of ``edge_index`` (both directions present)."""
    if maps.dim() == 2:
        maps = torch.diag_embed(maps)
    maps = maps.contiguous()
    d = maps.size(-1)
    eye_n = torch.eye(num_nodes, dtype=maps.dtype)
    lap = maps.new_zeros(num_nodes * d, num_nodes * d)
    row, col = edge_index.tolist()
    index = {(v, u): k for k, (v, u) in enumerate(zip(row, col))}
    for k, (v, u) in enumerate(zip(row, col)):
        if v > u:
            continue
        r = index[(u, v)]
        delta = (torch.kron(eye_n[v:v + 1], maps[k]) -
                 torch.kron(eye_n[u:u + 1], maps[r]))
        lap = lap + delta.t() @ delta
    if not normalised:
        return lap
    blocks = torch.zeros_like(lap)
    for v in range(num_nodes):
        s = slice(v * d, (v + 1) * d)
        lam, vec = torch.linalg.eigh(lap[s, s] + torch.eye(d,
                                                            dtype=maps.dtype))
        blocks[s, s] = vec @ torch.diag(lam.rsqrt()) @ vec.t()
    return blocks @ lap @ blocks


def dense_graph_transformer_attention(x: Tensor, edge_index: Tensor,
                                      wq: Tensor, wk: Tensor, wv: Tensor,
                                      heads: int, clamp: float = 5.0,
                                      edge_attr: Tensor | None = None,
                                      we: Tensor | None = None
                                      ) -> tuple[Tensor, Tensor | None]:
    r"""Dwivedi & Bresson's attention with dense :math:`N \times N \times H`
    score tensors and a neighbour mask: returns the concatenated head
    outputs :math:`\Vert_k \sum_j w_{ij}^k V^k h_j` (before :math:`O_h`)
    and, with edge features, the un-summed scores of every edge in
    ``edge_index`` order (before :math:`O_e`). Edges must be unique."""
    n, d = x.shape
    dk = d // heads
    q = (x @ wq.t()).view(n, heads, dk)
    k = (x @ wk.t()).view(n, heads, dk)
    v = (x @ wv.t()).view(n, heads, dk)
    # pair[i, j] = q_i * k_j / sqrt(dk), for every i (target), j (source)
    pair = q.unsqueeze(1) * k.unsqueeze(0) / dk**0.5  # [n, n, H, dk]
    edge_out = None
    if edge_attr is not None:
        e = (edge_attr @ we.t()).view(-1, heads, dk)
        dense_e = torch.zeros(n, n, heads, dk)
        dense_e[edge_index[1], edge_index[0]] = e
        pair = pair * dense_e
        edge_out = pair[edge_index[1], edge_index[0]].reshape(-1, d)
    score = pair.sum(-1).clamp(-clamp, clamp)  # [n, n, H]
    mask = dense_adjacency(edge_index, n).bool()
    score = score.masked_fill(~mask.unsqueeze(-1), float('-inf'))
    w = torch.softmax(score, dim=1).nan_to_num(0.0)  # rows without edges
    out = torch.einsum('ijh,jhd->ihd', w, v).reshape(n, d)
    return out, edge_out
