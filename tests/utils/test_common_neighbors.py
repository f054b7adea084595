import math

import pytest
import torch

from graphkit.utils.common_neighbors import (aa_score, cn_score,
                                             csr_adjacency, neighbor_overlap,
                                             pool_neighbors, ra_score,
                                             unpaired_entries)


def _graph(seed, n=12, p=0.3, self_loops=True):
    g = torch.Generator().manual_seed(seed)
    a = (torch.rand(n, n, generator=g) < p).float()
    a = ((a + a.t()) > 0).float()
    if not self_loops:
        a.fill_diagonal_(0)
    else:
        a[0, 0] = a[3, 3] = 1.0
    a[n - 1] = 0.0  # an isolated node
    a[:, n - 1] = 0.0
    return a


def _sets(idx, num_pairs, n):
    out = torch.zeros(num_pairs, n)
    out[idx[0], idx[1]] = 1.0
    return out


@pytest.mark.parametrize('seed', [0, 1, 2])
@pytest.mark.parametrize('max_entries', [1 << 24, 7])
@pytest.mark.parametrize('bitmap_bytes', [1 << 26, 0])   # bitmap / search
def test_overlap_matches_dense_reference(seed, max_entries, bitmap_bytes):
    a = _graph(seed)
    n = a.size(0)
    adj = csr_adjacency(a.nonzero().t(), n)
    g = torch.Generator().manual_seed(seed + 10)
    src = torch.randint(0, n, (40, ), generator=g)
    dst = torch.randint(0, n, (40, ), generator=g)
    src[0], dst[0] = n - 1, 0           # isolated endpoint
    ov = neighbor_overlap(adj, src, dst, max_entries=max_entries,
                          bitmap_bytes=bitmap_bytes)
    ai, aj = a[src], a[dst]
    assert torch.equal(_sets(ov.common, 40, n), ai * aj)
    assert torch.equal(_sets(ov.only_src, 40, n), ai * (1 - aj))
    assert torch.equal(_sets(ov.only_dst, 40, n), aj * (1 - ai))
    common = neighbor_overlap(adj, src, dst, max_entries=max_entries,
                              bitmap_bytes=bitmap_bytes, one_sided=False)
    assert torch.equal(_sets(common.common, 40, n), ai * aj)
    assert common.only_src[0].numel() == 0
    # counts equal (A A)_ij
    assert torch.equal(cn_score(adj, src, dst), (a @ a)[src, dst])


@pytest.mark.parametrize('p', [0.6, 0.05])   # dense rows / binary search
def test_both_intersections_give_identical_lists(p):
    a = _graph(5, n=40, p=p)
    n = a.size(0)
    adj = csr_adjacency(a.nonzero().t(), n)
    g = torch.Generator().manual_seed(3)
    src, dst = torch.randint(0, n, (2, 300), generator=g)
    search = neighbor_overlap(adj, src, dst, bitmap_bytes=0)
    # 64 pairs per chunk of row bitmaps gives several chunks
    chunks = {'bitmap_bytes': n * n + 64 * 2 * n}
    for kw in ({}, chunks, {'max_entries': 50}):
        ov = neighbor_overlap(adj, src, dst, **kw)
        for got, ref in zip(ov[:3], search[:3]):
            assert torch.equal(got[0], ref[0]) and torch.equal(got[1], ref[1])


def test_unpaired_entries_counts_edges_without_reverse():
    a = _graph(1)
    n = a.size(0)
    assert unpaired_entries(csr_adjacency(a.nonzero().t(), n)) == 0
    upper = torch.triu(a, 1)                 # drop every reverse edge
    assert unpaired_entries(csr_adjacency(upper.nonzero().t(), n)) == \
        int(upper.sum())
    assert unpaired_entries(csr_adjacency(torch.zeros(2, 0).long(), n)) == 0


def test_pair_without_common_neighbour_and_heuristics():
    # path 0-1-2 and an edge 3-4: (0, 2) share node 1, (0, 3) share none
    ei = torch.tensor([[0, 1, 1, 2, 3, 4], [1, 0, 2, 1, 4, 3]])
    adj = csr_adjacency(ei, 5)
    src, dst = torch.tensor([0, 0]), torch.tensor([2, 3])
    assert cn_score(adj, src, dst).tolist() == [1.0, 0.0]
    assert ra_score(adj, src, dst).tolist() == [0.5, 0.0]
    assert aa_score(adj, src, dst).tolist() == pytest.approx(
        [1 / math.log(2), 0.0])


def test_pooling_gradient_and_relabelling_invariance():
    a = _graph(3, self_loops=False)
    n = a.size(0)
    h = torch.randn(n, 4, requires_grad=True)
    src, dst = torch.tensor([0, 1, 2, 5]), torch.tensor([4, 6, 7, 8])
    adj = csr_adjacency(a.nonzero().t(), n)
    ov = neighbor_overlap(adj, src, dst)
    pooled = pool_neighbors(h, *ov.common, ov.num_pairs)
    assert torch.allclose(pooled, (a[src] * a[dst]) @ h, atol=1e-6)
    pooled.sum().backward()
    assert torch.allclose(h.grad, (a[src] * a[dst]).sum(0)[:, None]
                          .expand(-1, 4))
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(n)
    padj = csr_adjacency(inv[a.nonzero().t()], n)
    pov = neighbor_overlap(padj, inv[src], inv[dst])
    again = pool_neighbors(h.detach()[perm], *pov.common, pov.num_pairs)
    assert torch.allclose(again, pooled.detach(), atol=1e-6)


def test_bad_input():
    with pytest.raises(ValueError, match=r'\[2, E\]'):
        csr_adjacency(torch.zeros(3, 2, dtype=torch.long), 3)
    with pytest.raises(ValueError, match='outside'):
        csr_adjacency(torch.tensor([[0], [5]]), 3)
    adj = csr_adjacency(torch.tensor([[0], [1]]), 2)
    with pytest.raises(ValueError, match='equal length'):
        neighbor_overlap(adj, torch.tensor([0]), torch.tensor([0, 1]))
