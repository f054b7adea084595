import pytest
import torch
from torch_geometric.utils import is_undirected

from graphkit.data import csbm, edge_homophily, load, sbm


@pytest.mark.parametrize('h', [0.1, 0.5, 0.9])
def test_homophily_setting(h):
    data = csbm(num_nodes=1000, num_classes=4, homophily=h, seed=0)
    assert abs(edge_homophily(data.edge_index, data.y) - h) < 0.05
    assert is_undirected(data.edge_index)
    assert not bool((data.edge_index[0] == data.edge_index[1]).any())


def test_seeded():
    a, b, c = csbm(seed=1), csbm(seed=1), csbm(seed=2)
    assert torch.equal(a.edge_index, b.edge_index)
    assert torch.equal(a.x, b.x)
    assert not torch.equal(a.x, c.x)


def test_sbm_features_uninformative_shape():
    data = sbm(num_nodes=300, num_features=5, seed=0)
    assert data.x.shape == (300, 5)
    assert int(data.y.max()) == 2


def test_bad_homophily():
    with pytest.raises(ValueError, match='homophily'):
        csbm(homophily=1.5)


def test_karate_from_networkx():
    b = load('karate')
    assert b.data.num_nodes == 34 and b.data.edge_index.size(1) == 156
    assert b.num_classes == 2 and b.num_features == 34
