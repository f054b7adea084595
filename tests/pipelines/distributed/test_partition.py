import pytest
import torch

from graphkit.data import csbm
from graphkit.pipelines.distributed.layerwise import build_plans, split_units
from graphkit.pipelines.distributed.partition import edge_cut, partition_graph
from graphkit.models.deep import LayerChain


@pytest.mark.parametrize('method', ['rcm', 'bfs', 'contiguous', 'random'])
def test_partition_balanced_and_deterministic(method):
    data = csbm(num_nodes=300, seed=0)
    part = partition_graph(data.edge_index, 300, 6, method, seed=1)
    sizes = torch.bincount(part, minlength=6)
    assert sizes.min() >= 50 and sizes.max() <= 50
    assert torch.equal(part, partition_graph(data.edge_index, 300, 6,
                                             method, seed=1))


def test_rcm_cuts_fewer_edges_than_random():
    data = csbm(num_nodes=400, avg_degree=4.0, homophily=0.9, seed=0)
    rcm = partition_graph(data.edge_index, 400, 8, 'rcm')
    rnd = partition_graph(data.edge_index, 400, 8, 'random')
    assert edge_cut(data.edge_index, rcm) < edge_cut(data.edge_index, rnd)


def test_metis_balanced_deterministic_and_cuts_fewest_edges():
    # METIS (PyG's, else pymetis, a dependency) is what 'auto' picks
    from graphkit.pipelines.distributed.partition import _metis_available
    assert _metis_available() is not None
    data = csbm(num_nodes=400, avg_degree=6.0, homophily=0.9, seed=0)
    ei = data.edge_index
    part = partition_graph(ei, 400, 8, 'metis')
    sizes = torch.bincount(part, minlength=8)
    assert sizes.min() >= 40 and sizes.max() <= 60
    assert torch.equal(part, partition_graph(ei, 400, 8, 'metis'))
    assert torch.equal(part, partition_graph(ei, 400, 8, 'auto'))
    assert edge_cut(ei, part) < edge_cut(ei, partition_graph(ei, 400, 8,
                                                            'rcm'))


def test_partition_errors():
    ei = torch.tensor([[0, 1], [1, 0]])
    with pytest.raises(ValueError, match="Unknown partition method 'kway'"):
        partition_graph(ei, 2, 2, 'kway')
    with pytest.raises(ValueError, match='Cannot cut 2 nodes into 3'):
        partition_graph(ei, 2, 3)


def test_split_units_contiguous_and_balanced():
    # the notes' log: 33 units on 8 GPUs, GPU0 gets [0, 5), the others 4
    assert split_units(33, 8) == [(0, 5)] + [(5 + 4 * i, 9 + 4 * i)
                                             for i in range(7)]
    blocks = split_units(34, 8)
    assert blocks[0][0] == 0 and blocks[-1][1] == 34
    assert all(b[1] == c[0] for b, c in zip(blocks, blocks[1:]))
    assert {b - a for a, b in blocks} == {4, 5}
    with pytest.raises(ValueError, match='over 5 pipeline stages'):
        split_units(4, 5)


def test_chunk_plans_cover_every_in_edge_once():
    data = csbm(num_nodes=120, seed=0)
    ei, ew = LayerChain.normalize_graph(data.edge_index, None, 120)
    part = partition_graph(data.edge_index, 120, 2 * 3, 'rcm')
    total = 0
    for way in range(2):
        for plan in build_plans(ei, ew, part, 2, 3, way):
            n_pool = plan.chunk.numel() + plan.rest.numel()
            n_rows = n_pool + plan.halo_rows
            assert plan.edge_index.min() >= 0
            assert plan.edge_index.max() < n_rows
            assert plan.edge_index[1].max() < plan.chunk.numel()
            total += plan.edge_index.size(1)
    assert total == ei.size(1)
