import torch
from torch_geometric.utils import k_hop_subgraph

from graphkit.data import csbm
from graphkit.data.sampling import UniformNeighborLoader, sample_neighbors
from graphkit.data.sampling import _csc


def test_fanout_respected_and_edges_real():
    data = csbm(num_nodes=200, avg_degree=12, seed=0)
    ptr, src = _csc(data.edge_index, 200)
    nodes = torch.tensor([0, 5, 7])
    gen = torch.Generator().manual_seed(0)
    s, d = sample_neighbors(ptr, src, nodes, 3, gen)
    for v in nodes.tolist():
        picked = s[d == v]
        deg = int(ptr[v + 1] - ptr[v])
        assert picked.numel() == min(3, deg)
        assert picked.unique().numel() == picked.numel()  # no replacement
    edges = set(map(tuple, data.edge_index.t().tolist()))
    assert all((a, b) in edges for a, b in zip(s.tolist(), d.tolist()))


def test_full_fanout_equals_k_hop_subgraph():
    data = csbm(num_nodes=100, avg_degree=4, seed=1)
    loader = UniformNeighborLoader(data, [-1, -1],
                                   input_nodes=torch.tensor([3, 9]),
                                   batch_size=2)
    batch = next(iter(loader))
    subset, _, _, _ = k_hop_subgraph(torch.tensor([3, 9]), 2,
                                     data.edge_index, num_nodes=100)
    assert set(batch.n_id.tolist()) == set(subset.tolist())
    assert batch.n_id[:2].tolist() == [3, 9] and batch.batch_size == 2
    assert torch.equal(batch.x, data.x[batch.n_id])


def test_loader_covers_seeds_once_and_is_seeded():
    data = csbm(num_nodes=50, seed=2)
    mk = lambda: UniformNeighborLoader(
        data, [2], batch_size=16, shuffle=True,
        generator=torch.Generator().manual_seed(5))
    seeds = torch.cat([b.n_id[:b.batch_size] for b in mk()])
    assert sorted(seeds.tolist()) == list(range(50))
    a = [b.edge_index for b in mk()]
    b = [b.edge_index for b in mk()]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
