r"""Full-batch training epochs of the registered GCN, SAGE and GIN with
``edge_index`` against the transposed ``torch.sparse_csr`` adjacency that
full-batch node tasks pass them, in the same process; and, on the same CSR
adjacency, PyG's own convolutions (whose backward re-sorts the transposed
matrix every step) against the registered ones (which build it once, see
:func:`graphkit.utils.spmm.csr_spmm`).

    python benchmarks/sparse_adjacency.py [--datasets cora amazon-photo] \
        [--models gcn sage gin] [--layers 2 4] [--epochs 10]

All forms get the same initial weights and train side by side, one epoch
each in turn; the script also checks that their losses agree. Prints one markdown table with the time ratios.
"""
import argparse
import time

import torch
import torch.nn.functional as F
from torch_geometric.utils import to_torch_csr_tensor

from torch_geometric.nn.models import GCN, GIN, GraphSAGE

from graphkit import data as gdata
from graphkit.models import build

_PYG = {'gcn': GCN, 'sage': GraphSAGE, 'gin': GIN}


def _epoch_times(runs, x, y, epochs):
    r"""Median epoch time and the losses of each ``(model, graph)`` in
    ``runs``, trained side by side: every epoch steps each model once, in
    an order that rotates, so slow drifts of the machine hit all alike."""
    opts = [torch.optim.Adam(m.parameters(), lr=1e-3) for m, _ in runs]
    times = [[] for _ in runs]
    losses = [[] for _ in runs]
    for i in range(epochs + 2):
        k = len(runs)
        for j in [(i + r) % k for r in range(k)]:
            model, graph = runs[j]
            t0 = time.perf_counter()
            opts[j].zero_grad()
            loss = F.cross_entropy(model(x, graph), y)
            loss.backward()
            opts[j].step()
            if i >= 2:              # two warm-up epochs
                times[j].append(time.perf_counter() - t0)
            losses[j].append(float(loss.detach()))
    return [(sorted(t)[len(t) // 2], ls) for t, ls in zip(times, losses)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--datasets', nargs='+',
                        default=['cora', 'amazon-photo'])
    parser.add_argument('--models', nargs='+', default=['gcn', 'sage', 'gin'])
    parser.add_argument('--layers', nargs='+', type=int, default=[2, 4])
    parser.add_argument('--epochs', type=int, default=10)
    args = parser.parse_args()
    print('| dataset | model | layers | edge_index s/epoch | sparse CSR, '
          'PyG convs | sparse CSR, registered | CSR (registered) / edge_index '
          '| registered / PyG on CSR | losses agree |')
    print('|---|---|---|---|---|---|---|---|---|')
    for ds in args.datasets:
        bundle = gdata.load(ds)
        data = bundle.data
        n = data.num_nodes
        adj_t = to_torch_csr_tensor(data.edge_index.flip(0), size=(n, n))
        for name in args.models:
            for layers in args.layers:
                runs = []
                for form, graph in (('edge_index', data.edge_index),
                                    ('pyg', adj_t), ('csr', adj_t)):
                    torch.manual_seed(0)
                    model = build(name, 'node', in_channels=data.num_features,
                                  out_channels=bundle.num_classes,
                                  hidden_channels=128, num_layers=layers,
                                  dropout=0.0, cached=True)
                    if form == 'pyg':   # the same weights, PyG's classes
                        kw = {'cached': True} if name == 'gcn' else {}
                        pyg = _PYG[name](data.num_features, 128, layers,
                                         bundle.num_classes, dropout=0.0,
                                         **kw)
                        pyg.load_state_dict(model.encoder.state_dict())
                        model.encoder = pyg
                    runs.append((model, graph))
                res = dict(zip(('edge_index', 'pyg', 'csr'),
                               _epoch_times(runs, data.x, data.y,
                                            args.epochs)))
                (te, le), (tp, lp), (tc, lc) = (res['edge_index'],
                                                res['pyg'], res['csr'])
                agree = all(abs(a - b) <= 1e-4 * max(1.0, abs(a))
                            for other in (lp, lc) for a, b in zip(le, other))
                print(f'| {ds} | {name} | {layers} | {te:.4f} | {tp:.4f} | '
                      f'{tc:.4f} | {tc / te:.2f}x | {tc / tp:.2f}x | '
                      f'{agree} |', flush=True)


if __name__ == '__main__':
    main()
