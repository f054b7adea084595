import pytest
import torch
import torch.nn.functional as F
from torch_geometric.utils import to_undirected

from graphkit.layers.graph_transformer import (GraphTransformerLayer,
                                               complete_edge_index)
from graphkit.testing.dense import dense_graph_transformer_attention


def _graph(n=7, p=0.4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    a = torch.rand(n, n, generator=gen) < p
    ei = to_undirected(torch.triu(a, 1).nonzero().t(), num_nodes=n)
    return ei


def _layer(edge_features, norm='layer', seed=0, **kw):
    torch.manual_seed(seed)
    layer = GraphTransformerLayer(16, heads=4, edge_features=edge_features,
                                  norm=norm, **kw)
    # non-trivial scale so that the +-5 clamp is active on some scores
    with torch.no_grad():
        layer.lin_q.weight.mul_(4.0)
        layer.lin_k.weight.mul_(4.0)
    return layer.eval()


def _reference(layer, x, ei, e=None):
    h, e_hat = dense_graph_transformer_attention(
        x, ei, layer.lin_q.weight, layer.lin_k.weight, layer.lin_v.weight,
        layer.heads, edge_attr=e,
        we=layer.lin_e.weight if e is not None else None)

    def block(inp, upd, n1, ffn, n2):
        hh = n1(inp + upd)
        return n2(hh + ffn.lin2(F.relu(ffn.lin1(hh))))

    h = block(x, layer.out_h(h), layer.norm1_h, layer.ffn_h, layer.norm2_h)
    if e is None:
        return h, None
    e_new = block(e, layer.out_e(e_hat), layer.norm1_e, layer.ffn_e,
                  layer.norm2_e)
    return h, e_new


@pytest.mark.parametrize('norm', ['layer', 'batch'])
def test_layer_without_edge_features_equals_dense_reference(norm):
    ei = _graph(8)
    x = torch.randn(8, 16)
    layer = _layer(False, norm)
    if norm == 'batch':  # non-trivial running statistics
        layer.train()
        layer(x, ei)
        layer.eval()
    out = layer(x, ei)
    ref, _ = _reference(layer, x, ei)
    assert torch.allclose(out, ref, atol=1e-5)


def test_layer_with_edge_features_equals_dense_reference():
    ei = _graph(8)
    x, e = torch.randn(8, 16), torch.randn(ei.size(1), 16)
    layer = _layer(True)
    h, e_out = layer(x, ei, e)
    ref_h, ref_e = _reference(layer, x, ei, e)
    assert torch.allclose(h, ref_h, atol=1e-5)
    assert torch.allclose(e_out, ref_e, atol=1e-5)
    assert e_out.shape == e.shape


def test_scores_are_clamped():
    # A huge query scale saturates the clamp: all neighbours' scores are
    # +-5, so attention weights are bounded by e^10 ratios, never one-hot.
    ei = torch.tensor([[1, 2], [0, 0]])
    x = torch.randn(3, 16)
    layer = _layer(False)
    with torch.no_grad():
        layer.lin_q.weight.mul_(1e4)
    h, _ = dense_graph_transformer_attention(
        x, ei, layer.lin_q.weight, layer.lin_k.weight, layer.lin_v.weight,
        4)
    unclamped, _ = dense_graph_transformer_attention(
        x, ei, layer.lin_q.weight, layer.lin_k.weight, layer.lin_v.weight,
        4, clamp=1e12)
    assert not torch.allclose(h, unclamped, atol=1e-3)  # clamp is active
    out = layer(x, ei)
    assert torch.isfinite(out).all()
    ref, _ = _reference(layer, x, ei)
    assert torch.allclose(out, ref, atol=1e-4)


def test_unshifted_and_shifted_softmax_paths_agree():
    # A small clamp takes the unshifted exp path (normalised after the
    # aggregation); an effectively unbounded one takes PyG's max-shifted
    # softmax. With scores inside both bounds they are the same operator.
    ei = _graph(9, seed=3)
    x = torch.randn(9, 16)
    fast = _layer(False, clamp=5.0)
    exact = _layer(False, clamp=1e9)
    with torch.no_grad():
        for layer in (fast, exact):
            layer.lin_q.weight.div_(16.0)    # all scores well inside +-5
    assert torch.allclose(fast(x, ei), exact(x, ei), atol=1e-6)
    ref, _ = _reference(exact, x, ei)
    assert torch.allclose(exact(x, ei), ref, atol=1e-5)


def test_non_neighbour_features_do_not_change_output():
    ei = torch.tensor([[1, 2, 0, 0, 3], [0, 0, 1, 2, 4]])  # 3 -> 4 only
    layer = _layer(False)
    x = torch.randn(5, 16)
    out = layer(x, ei)
    x2 = x.clone()
    x2[3] += 10.0  # node 3 is not an in-neighbour of 0, 1 or 2
    out2 = layer(x2, ei)
    assert torch.allclose(out[:3], out2[:3])
    assert not torch.allclose(out[4], out2[4])


def test_isolated_node_gets_no_attention_update():
    ei = torch.tensor([[1], [0]])
    layer = _layer(False)
    x = torch.randn(3, 16)
    out = layer(x, ei)
    zero = layer.out_h(torch.zeros(1, 16))
    hh = layer.norm1_h(x[2:] + zero)
    ref = layer.norm2_h(hh + layer.ffn_h(hh))
    assert torch.allclose(out[2:], ref, atol=1e-6)


def test_permutation_equivariance():
    ei = _graph(9, seed=3)
    x, e = torch.randn(9, 16), torch.randn(ei.size(1), 16)
    layer = _layer(True)
    perm = torch.randperm(9)
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(9)
    h, e_out = layer(x, ei, e)
    h2, e_out2 = layer(x[perm], inv[ei], e)
    assert torch.allclose(h[perm], h2, atol=1e-5)
    assert torch.allclose(e_out, e_out2, atol=1e-5)


def test_bad_inputs_raise_clear_errors():
    layer = _layer(True)
    ei = _graph(5)
    with pytest.raises(ValueError, match='edge_attr'):
        layer(torch.randn(5, 16), ei)
    with pytest.raises(ValueError, match=r'\[num_nodes, 16\]'):
        layer(torch.randn(5, 8), ei, torch.randn(ei.size(1), 16))
    with pytest.raises(ValueError, match='divisible'):
        GraphTransformerLayer(10, heads=4)
    with pytest.raises(ValueError, match="'batch' or 'layer'"):
        GraphTransformerLayer(16, heads=4, norm='group')


def test_complete_edge_index_pairs_within_graphs_only():
    batch = torch.tensor([0, 0, 0, 1, 1, 2])
    ei = complete_edge_index(batch, 6)
    assert ei.size(1) == 3 * 2 + 2 * 1 + 0
    assert (batch[ei[0]] == batch[ei[1]]).all()
    assert (ei[0] != ei[1]).all()
    assert ei.t().unique(dim=0).size(0) == ei.size(1)
    single = complete_edge_index(None, 4)
    assert single.size(1) == 12
    with pytest.raises(ValueError, match='sorted'):
        complete_edge_index(torch.tensor([1, 0]), 2)
