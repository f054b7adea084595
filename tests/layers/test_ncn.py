import pytest
import torch

from graphkit.layers.ncn import GAEPredictor, NCNCPredictor, NCNPredictor
from graphkit.utils.common_neighbors import csr_adjacency


def _graph(seed=0, n=10, p=0.35):
    g = torch.Generator().manual_seed(seed)
    a = (torch.rand(n, n, generator=g) < p).float().triu(1)
    a = a + a.t()
    return a, csr_adjacency(a.nonzero().t(), n)


def test_ncn_matches_dense_formula():
    torch.manual_seed(0)
    a, adj = _graph()
    h = torch.randn(10, 8)
    pred = NCNPredictor(8, layer_norm=True, use_xlin=True).eval()
    pairs = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 9]])
    cn = a[pairs[0]] * a[pairs[1]]                      # dense A_i * A_j
    pooled = cn @ pred.pooled_states(h)
    ref = pred.out(pred.beta * pred.xcn(pooled) +
                   pred.xij(h[pairs[0]] * h[pairs[1]])).view(-1)
    assert torch.allclose(pred(h, adj, pairs), ref, atol=1e-5)


def test_gae_ablation_is_ncn_without_the_common_neighbour_term():
    torch.manual_seed(0)
    a, adj = _graph(3)
    h = torch.randn(10, 8)
    pairs = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 9]])
    gae = GAEPredictor(8, layer_norm=True, two_layer_out=True).eval()
    ref = gae.out(gae.xij(h[pairs[0]] * h[pairs[1]])).view(-1)
    assert torch.allclose(gae(h, adj, pairs), ref, atol=1e-6)
    assert torch.allclose(gae(h, None, pairs), ref, atol=1e-6)
    # NCN with its pooled branch switched off (beta = 0) scores the same
    ncn = NCNPredictor(8, layer_norm=True, two_layer_out=True).eval()
    ncn.load_state_dict(gae.state_dict(), strict=False)
    with torch.no_grad():
        ncn.beta.zero_()
    assert torch.allclose(ncn(h, adj, pairs), ref, atol=1e-6)
    with pytest.raises(ValueError):
        gae(h, None, torch.tensor([[0], [10]]))


def test_ncnc_with_zero_completion_is_ncn():
    torch.manual_seed(0)
    a, adj = _graph(1)
    h = torch.randn(10, 8)
    pairs = torch.tensor([[0, 1, 2, 7], [4, 5, 6, 8]])
    ncnc = NCNCPredictor(8, order=2, alpha=0.0).eval()  # all P = 0
    ncn = NCNPredictor(8).eval()
    ncn.load_state_dict(ncnc.state_dict())
    assert torch.allclose(ncnc(h, adj, pairs), ncn(h, adj, pairs))
    ncnc.alpha = 1.0   # completion now changes the scores
    assert not torch.allclose(ncnc(h, adj, pairs), ncn(h, adj, pairs))


@pytest.mark.parametrize('xlin,nested', [(False, True), (True, True),
                                          (True, False)])
def test_ncnc_completion_matches_dense_weights(xlin, nested):
    torch.manual_seed(0)
    a, adj = _graph(2)
    h = torch.randn(10, 6)
    pred = NCNCPredictor(6, order=1, prob_scale=2.0, prob_offset=0.5,
                         prior=0.3, alpha=0.8, use_xlin=xlin,
                         nested_states=nested).eval()
    pairs = torch.tensor([[0, 3], [5, 7]])
    ncn = NCNPredictor(6, use_xlin=xlin).eval()
    ncn.load_state_dict(pred.state_dict())
    # candidates are scored on h' = h + MLP(h) in the nested form
    h_in = pred.pooled_states(h) if nested else h
    ref = []
    for i, j in pairs.t().tolist():
        w = a[i] * a[j]
        for u in range(10):
            if a[i, u] and not a[j, u]:
                s = ncn(h_in, adj, torch.tensor([[j], [u]]))
                w[u] = pred.completion_probability(s)
            elif a[j, u] and not a[i, u]:
                s = ncn(h_in, adj, torch.tensor([[i], [u]]))
                w[u] = pred.completion_probability(s)
        ref.append(pred.combine(h, torch.tensor([i]), torch.tensor([j]),
                                (w @ pred.pooled_states(h))[None]))
    assert torch.allclose(pred(h, adj, pairs), torch.cat(ref), atol=1e-5)


def test_relabelling_invariance_gradients_and_errors():
    torch.manual_seed(0)
    a, adj = _graph(3)
    h = torch.randn(10, 8, requires_grad=True)
    pred = NCNCPredictor(8, dropout=0.0)
    pairs = torch.tensor([[0, 1, 2], [4, 5, 6]])
    out = pred(h, adj, pairs)
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(1))
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(10)
    padj = csr_adjacency(inv[a.nonzero().t()], 10)
    assert torch.allclose(pred(h[perm], padj, inv[pairs]), out, atol=1e-5)
    out.sum().backward()
    for name, p in pred.named_parameters():
        assert p.grad is not None, name
    with pytest.raises(ValueError, match=r'\[2, B\]'):
        pred(h, adj, pairs.t())
    with pytest.raises(ValueError, match='refers|refer'):
        pred(h, adj, torch.tensor([[0], [12]]))
    with pytest.raises(ValueError, match='order'):
        NCNCPredictor(8, order=0)


@pytest.mark.parametrize('order', [1, 2])
def test_ncnc_candidate_chunks_give_the_same_scores_and_gradients(order):
    torch.manual_seed(0)
    _, adj = _graph(5, n=14, p=0.45)
    h = torch.randn(14, 8, requires_grad=True)
    pairs = torch.tensor([[0, 1, 2, 3, 7], [4, 5, 6, 9, 13]])
    whole = NCNCPredictor(8, order=order, use_xlin=True).eval()
    chunked = NCNCPredictor(8, order=order, use_xlin=True,
                            candidate_chunk=3).eval()
    chunked.load_state_dict(whole.state_dict())
    ref = whole(h, adj, pairs)
    (g_ref,) = torch.autograd.grad(ref.sum(), h)
    out = chunked(h, adj, pairs)
    (g_out,) = torch.autograd.grad(out.sum(), h)
    assert torch.allclose(out, ref, atol=1e-6)
    assert torch.allclose(g_out, g_ref, atol=1e-6)
    with pytest.raises(ValueError, match='candidate_chunk'):
        NCNCPredictor(8, candidate_chunk=0)
