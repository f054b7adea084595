r"""Full-batch training epochs of the registered GCN, SAGE and GIN with
``edge_index`` against the transposed ``torch.sparse_csr`` adjacency that
full-batch node tasks pass them, in the same process.

    python benchmarks/sparse_adjacency.py [--datasets cora amazon-photo] \
        [--models gcn sage gin] [--layers 2 4] [--epochs 10]

Both graph forms get the same initial weights; the script also checks that
their losses agree. Prints one markdown table with the time ratio.
"""
import argparse
import time

import torch
import torch.nn.functional as F
from torch_geometric.utils import to_torch_csr_tensor

from graphkit import data as gdata
from graphkit.models import build


def _epoch_time(model, x, graph, y, epochs):
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    times, losses = [], []
    for i in range(epochs + 2):
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = F.cross_entropy(model(x, graph), y)
        loss.backward()
        opt.step()
        if i >= 2:                  # two warm-up epochs
            times.append(time.perf_counter() - t0)
        losses.append(float(loss.detach()))
    return sorted(times)[len(times) // 2], losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--datasets', nargs='+',
                        default=['cora', 'amazon-photo'])
    parser.add_argument('--models', nargs='+', default=['gcn', 'sage', 'gin'])
    parser.add_argument('--layers', nargs='+', type=int, default=[2, 4])
    parser.add_argument('--epochs', type=int, default=10)
    args = parser.parse_args()
    print('| dataset | model | layers | edge_index s/epoch | sparse CSR '
          's/epoch | ratio | losses agree |')
    print('|---|---|---|---|---|---|---|')
    for ds in args.datasets:
        bundle = gdata.load(ds)
        data = bundle.data
        n = data.num_nodes
        adj_t = to_torch_csr_tensor(data.edge_index.flip(0), size=(n, n))
        for name in args.models:
            for layers in args.layers:
                res = {}
                for form, graph in (('edge_index', data.edge_index),
                                    ('csr', adj_t)):
                    torch.manual_seed(0)
                    model = build(name, 'node', in_channels=data.num_features,
                                  out_channels=bundle.num_classes,
                                  hidden_channels=128, num_layers=layers,
                                  dropout=0.0, cached=True)
                    res[form] = _epoch_time(model, data.x, graph, data.y,
                                            args.epochs)
                (te, le), (tc, lc) = res['edge_index'], res['csr']
                agree = all(abs(a - b) <= 1e-4 * max(1.0, abs(a))
                            for a, b in zip(le, lc))
                print(f'| {ds} | {name} | {layers} | {te:.4f} | {tc:.4f} | '
                      f'{tc / te:.2f}x | {agree} |', flush=True)


if __name__ == '__main__':
    main()
