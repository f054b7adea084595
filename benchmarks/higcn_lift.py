r"""HiGCN: cost of the flower-petal lift, and training epoch time.

    python benchmarks/higcn_lift.py [--datasets cora citeseer chameleon squirrel]
                                    [--orders 2 3] [--baseline-timeout 300]

For each dataset and order P this prints, measured in fresh subprocesses:

* graphkit's lift (:class:`graphkit.transforms.FlowerPetalLift`): wall time
  and peak memory added by the lift;
* a baseline that builds the same operators from networkx's
  ``enumerate_all_cliques`` (incidence matrices H_p, then H_p H_p^T),
  with the same measurements, stopped after ``--baseline-timeout`` seconds;
* the speed-up (baseline / graphkit) and a check that both give the same
  operator.

Then it prints the training epoch time of HiGCN (P = 2, K = 10, hidden 32)
against a 2-layer GCN of the same width on the same graph, and their ratio.
"""
import argparse
import time

import torch
from common import measure as _measure, peak_mb as _peak_mb, \
    reset_peak as _reset_peak


def _edges(name):
    from graphkit.data import load
    data = load(name).data
    return data.edge_index, data.num_nodes


def _ours(name, order, queue):
    from graphkit.transforms import FlowerPetalLift
    from torch_geometric.data import Data
    ei, n = _edges(name)
    data = Data(edge_index=ei, num_nodes=n)
    before = _reset_peak()
    t0 = time.perf_counter()
    out = FlowerPetalLift(order)(data)
    elapsed = time.perf_counter() - t0
    # numpy arrays pickle through the queue without shared-memory handles.
    queue.put((elapsed, _peak_mb() - before, out.hl_edge_index.numpy(),
               out.hl_weight.numpy(), out.simplex_count.numpy()))


def _networkx(name, order, queue):
    import networkx as nx
    import numpy as np
    import scipy.sparse as sp
    ei, n = _edges(name)
    before = _reset_peak()
    t0 = time.perf_counter()
    g = nx.Graph()
    g.add_nodes_from(range(n))
    g.add_edges_from((a, b) for a, b in ei.t().tolist() if a != b)
    cols = {p: [] for p in range(1, order + 1)}
    for clique in nx.enumerate_all_cliques(g):
        size = len(clique)
        if size > order + 1:
            break
        if size >= 2:
            cols[size - 1].append(clique)
    weights = []
    for p in range(1, order + 1):
        simplices = cols[p]
        rows = np.fromiter((v for c in simplices for v in c), dtype=np.int64)
        idx = np.repeat(np.arange(len(simplices)), p + 1)
        h = sp.csr_matrix((np.ones(rows.size), (rows, idx)),
                          shape=(n, max(len(simplices), 1)))
        d = np.asarray(h.sum(1)).ravel()
        inv = np.where(d > 0, 1 / np.sqrt(np.maximum(d, 1e-300)), 0.0)
        hl = sp.diags(inv) @ (h @ h.T) @ sp.diags(inv) / (p + 1)
        weights.append(hl.tocoo())
    elapsed = time.perf_counter() - t0
    queue.put((elapsed, _peak_mb() - before, weights))


def _same(ours, base, order, n):
    _, _, ei, w, _ = ours
    for p in range(order):
        a = torch.zeros(n, n, dtype=torch.double)
        a[ei[0], ei[1]] = w[:, p].double()
        coo = base[2][p]
        b = torch.zeros(n, n, dtype=torch.double)
        b[torch.as_tensor(coo.row).long(),
          torch.as_tensor(coo.col).long()] = torch.as_tensor(coo.data)
        if not torch.allclose(a, b, atol=1e-5):
            return False
    return True


def _epoch_times(name, epochs=60):
    r"""Median training-step time of GCN and HiGCN, the two stepped in
    alternation so that machine load affects both alike."""
    import torch.nn.functional as F
    from graphkit.data import load
    from graphkit.models import build
    from graphkit.transforms import FlowerPetalLift
    b = load(name, split='random', normalize_features=True,
             pre_transform=FlowerPetalLift(2))
    d, split = b.data, b.split_for_run(0, 0)
    torch.manual_seed(0)
    setups = []
    for label, model, kw in (
            ('gcn', build('gcn', 'node', in_channels=b.num_features,
                          out_channels=b.num_classes, hidden_channels=32,
                          cached=True), {}),
            ('higcn', build('higcn', 'node', in_channels=b.num_features,
                            out_channels=b.num_classes, hidden_channels=32,
                            max_order=2, K=10),
             {'hl_edge_index': d.hl_edge_index, 'hl_weight': d.hl_weight})):
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        setups.append((label, model, kw, opt))
    times = {label: [] for label, *_ in setups}
    for epoch in range(epochs + 5):
        for label, model, kw, opt in setups:
            t0 = time.perf_counter()
            opt.zero_grad()
            loss = F.cross_entropy(model(d.x, d.edge_index, **kw)
                                   [split.train_mask],
                                   d.y[split.train_mask])
            loss.backward()
            opt.step()
            if epoch >= 5:  # warm-up: caches, allocator
                times[label].append(time.perf_counter() - t0)
    return {k: sorted(v)[len(v) // 2] for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--datasets', nargs='+',
                        default=['cora', 'citeseer', 'chameleon', 'squirrel'])
    parser.add_argument('--orders', nargs='+', type=int, default=[2, 3])
    parser.add_argument('--baseline-timeout', type=float, default=300)
    parser.add_argument('--skip-baseline', action='store_true')
    args = parser.parse_args()

    print('| dataset | P | graphkit time | graphkit peak | simplices | '
          'networkx time | networkx peak | speed-up | same |')
    print('|---|---|---|---|---|---|---|---|---|')
    for name in args.datasets:
        for order in args.orders:
            ours = _measure(_ours, (name, order), 3600)
            ours = tuple(torch.as_tensor(v) if not isinstance(v, float) else v
                         for v in ours)
            t, mem, ei, _, counts = ours
            n = int(ei.max()) + 1
            if args.skip_baseline:
                base = None
            else:
                base = _measure(_networkx, (name, order),
                                args.baseline_timeout)
            if args.skip_baseline:
                bt = bm = speed = same = 'skipped'
            elif base is None:
                bt = f'> {args.baseline_timeout:.0f} s'
                bm, speed, same = '-', f'> {args.baseline_timeout / t:.0f}x', '-'
            else:
                bt, bm = f'{base[0]:.2f} s', f'{base[1]:.0f} MB'
                speed = f'{base[0] / t:.1f}x'
                same = 'yes' if _same(ours, base, order, n) else 'NO'
            print(f'| {name} | {order} | {t:.3f} s | {mem:.0f} MB | '
                  f'{counts.view(-1).tolist()} | {bt} | {bm} | {speed} | '
                  f'{same} |', flush=True)
    print('\n| dataset | GCN s/epoch | HiGCN s/epoch | ratio |')
    print('|---|---|---|---|')
    for name in args.datasets:
        e = _epoch_times(name)
        print(f"| {name} | {e['gcn']:.4f} | {e['higcn']:.4f} | "
              f"{e['higcn'] / e['gcn']:.2f} |", flush=True)


if __name__ == '__main__':
    main()
