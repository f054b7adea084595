import networkx as nx
import pytest
import torch
from torch_geometric.utils import from_networkx, to_dense_adj

from graphkit.testing import dense_flower_petal
from graphkit.transforms import FlowerPetalLift
from graphkit.utils.cliques import list_cliques, simple_undirected


def _graph(g: nx.Graph):
    data = from_networkx(g)
    data.num_nodes = g.number_of_nodes()
    return data


def filled_triangle():
    return nx.complete_graph(3)


def four_clique():
    return nx.complete_graph(4)


def mixed():
    # A 4-clique {0..3}, a triangle {3, 4, 5}, a triangle-free path 5-6-7-8,
    # a square 8-9-10-11 (no triangle) and an isolated node 12.
    g = nx.complete_graph(4)
    g.add_edges_from([(3, 4), (4, 5), (3, 5), (5, 6), (6, 7), (7, 8), (8, 9),
                      (9, 10), (10, 11), (11, 8)])
    g.add_node(12)
    return g


GRAPHS = {'triangle': filled_triangle, 'four-clique': four_clique,
          'mixed': mixed,
          'random': lambda: nx.gnp_random_graph(25, 0.35, seed=1)}


def _dense(data, p):
    return to_dense_adj(data.hl_edge_index, edge_attr=data.hl_weight[:, p - 1],
                        max_num_nodes=data.num_nodes)[0].double()


@pytest.mark.parametrize('name', list(GRAPHS))
def test_lift_matches_dense_reference(name):
    g = GRAPHS[name]()
    data = FlowerPetalLift(max_order=3)(_graph(g))
    for p in (1, 2, 3):
        ref = dense_flower_petal(data.edge_index, data.num_nodes, p)
        hl = _dense(data, p)
        assert torch.allclose(hl, ref, atol=1e-6), (name, p)
        assert torch.allclose(hl, hl.t(), atol=1e-7)
        eig = torch.linalg.eigvalsh(hl)
        assert eig.min() > -1e-6 and eig.max() < 1 + 1e-6
        adj = nx.to_numpy_array(g, nodelist=range(data.num_nodes))
        support = torch.tensor(adj) + torch.eye(data.num_nodes)
        assert bool(((hl != 0) <= (support != 0)).all())


def test_hl1_is_lazy_normalised_adjacency():
    g = mixed()
    data = FlowerPetalLift(1)(_graph(g))
    a = torch.tensor(nx.to_numpy_array(g, nodelist=range(13)))
    d = a.sum(1)
    inv = torch.where(d > 0, d.pow(-0.5), torch.zeros_like(d))
    covered = (d > 0).double()
    expected = 0.5 * (torch.diag(covered) + inv.view(-1, 1) * a * inv)
    assert torch.allclose(_dense(data, 1), expected, atol=1e-6)


def test_uncovered_nodes_have_zero_rows():
    data = FlowerPetalLift(2)(_graph(mixed()))
    hl2 = _dense(data, 2)
    on_triangle = {0, 1, 2, 3, 4, 5}
    for v in range(13):
        assert bool((hl2[v] != 0).any()) == (v in on_triangle)
    assert data.simplex_count.tolist() == [[16, 5]]


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_clique_counts_match_networkx(seed):
    g = nx.gnp_random_graph(40, 0.4, seed=seed)
    data = _graph(g)
    ei = simple_undirected(data.edge_index, 40)
    ours = [c.size(0) for c in list_cliques(ei, 40, 6)]
    ref = [0] * 5
    for c in nx.enumerate_all_cliques(g):
        if 2 <= len(c) <= 6:
            ref[len(c) - 2] += 1
    assert ours == ref
    # Each clique is listed once, as a real clique.
    for cl in list_cliques(ei, 40, 4)[1:]:
        assert cl.unique(dim=0).size(0) == cl.size(0)
        for row in cl.tolist()[:50]:
            assert all(g.has_edge(a, b) for i, a in enumerate(row)
                       for b in row[i + 1:])


def test_small_chunks_give_same_cliques():
    g = nx.gnp_random_graph(30, 0.5, seed=3)
    ei = simple_undirected(_graph(g).edge_index, 30)
    a = list_cliques(ei, 30, 5)
    b = list_cliques(ei, 30, 5, chunk=7)
    for x, y in zip(a, b):
        assert torch.equal(x.sort(0).values, y.sort(0).values)


def test_messy_input_is_cleaned_and_input_not_mutated():
    data = _graph(filled_triangle())
    messy = data.clone()
    # One direction only, a self-loop and a duplicate edge.
    messy.edge_index = torch.tensor([[0, 1, 2, 0, 0], [1, 2, 0, 0, 1]])
    before = messy.edge_index.clone()
    out = FlowerPetalLift(2)(messy)
    ref = FlowerPetalLift(2)(data)
    assert torch.equal(messy.edge_index, before)
    assert 'hl_weight' not in messy
    assert torch.equal(out.hl_edge_index, ref.hl_edge_index)
    assert torch.allclose(out.hl_weight, ref.hl_weight)


def test_bad_order_and_order_above_largest_clique(caplog):
    with pytest.raises(ValueError, match='max_order must be an int >= 1'):
        FlowerPetalLift(0)
    data = FlowerPetalLift(4)(_graph(filled_triangle()))
    assert bool((data.hl_weight[:, 2:] == 0).all())
    assert 'no 3-simplex' in caplog.text
    assert repr(FlowerPetalLift(3)) == 'FlowerPetalLift(max_order=3)'


def test_bad_edge_index_errors():
    from torch_geometric.data import Data
    with pytest.raises(TypeError, match='torch.long'):
        FlowerPetalLift(2)(Data(edge_index=torch.zeros(2, 3), num_nodes=3))
    with pytest.raises(ValueError, match=r'shape \[2, E\]'):
        FlowerPetalLift(2)(Data(edge_index=torch.zeros(3, 3,
                                                       dtype=torch.long),
                                num_nodes=3))
