r"""Graph transformer layer speed and memory against PyG's operators.

    python benchmarks/graph_transformer.py [--datasets proteins pattern] \
        [--layers 4] [--hidden 64] [--heads 8] [--batch 128] [--steps 20]
    python benchmarks/graph_transformer.py --scaling [--sizes 500 ...]

**Throughput.** Stacks of ``--layers`` layers at the same width, on the
same mini-batches of graphs: graphkit's :class:`GraphTransformerLayer`
(sparse attention, BatchNorm, FFN), PyG's ``TransformerConv`` (UniMP
attention only: no FFN, no norm) and PyG's ``GPSConv`` (GIN local model +
dense multi-head attention). Graphs per second for a training step
(forward, backward, Adam) and for inference (median over ``--steps``
batches), and the peak memory of training; ratios are to TransformerConv,
measured in the same run.

**Scaling** (``--scaling``). Peak memory of one training step of a single
layer on random graphs with average degree 10 and a growing number of
nodes ``N``: the sparse layer's memory follows the edges (about ``10 N``),
the full-attention variant's follows ``N^2``.

Each measurement runs in a fresh subprocess: resident-memory peak above the
level after building the inputs on CPU, ``torch.cuda.max_memory_allocated``
on a GPU.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import measure, peak_mb, reset_peak  # noqa: E402


def _graphs(dataset, count):
    import torch
    from graphkit.data import load
    if dataset in ('pattern', 'cluster'):
        bundle = load(dataset, options={'num_train': count, 'num_valid': 1,
                                        'num_test': 1})
    else:
        bundle = load(dataset, split='random')
    ds = bundle.data
    idx = torch.arange(min(count, len(ds)))
    return [ds[int(i)] for i in idx]


class _Stack:
    r"""Builds ``layers`` operators of one kind with a shared call."""

    def __init__(self, kind, d, heads, layers):
        import torch
        from torch_geometric.nn import MLP, GINConv, GPSConv, TransformerConv

        from graphkit.layers.graph_transformer import GraphTransformerLayer
        self.kind = kind
        if kind == 'graphkit':
            mods = [GraphTransformerLayer(d, heads) for _ in range(layers)]
        elif kind == 'TransformerConv':
            mods = [TransformerConv(d, d // heads, heads=heads)
                    for _ in range(layers)]
        else:
            mods = [GPSConv(d, GINConv(MLP([d, d, d], norm=None)),
                            heads=heads) for _ in range(layers)]
        self.model = torch.nn.ModuleList(mods)

    def __call__(self, x, edge_index, batch):
        for m in self.model:
            x = m(x, edge_index, batch) if self.kind == 'GPSConv' else \
                m(x, edge_index)
        return x


def _throughput_child(dataset, kind, d, heads, layers, batch_size, steps,
                      queue):
    import torch
    from torch_geometric.loader import DataLoader
    torch.manual_seed(0)
    dev = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    graphs = _graphs(dataset, batch_size * 4)
    batches = []
    for b in DataLoader(graphs, batch_size=batch_size):
        x = torch.randn(b.num_nodes, d)  # same inputs for every operator
        batches.append((x.to(dev), b.edge_index.to(dev), b.batch.to(dev),
                        b.num_graphs))
    stack = _Stack(kind, d, heads, layers)
    model = stack.model.to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sync = torch.cuda.synchronize if dev.type == 'cuda' else (lambda: None)
    base = reset_peak()
    if dev.type == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    train, infer = [], []
    for step in range(steps + 2):
        x, ei, batch, n = batches[step % len(batches)]
        model.train()
        sync()
        t = time.perf_counter()
        opt.zero_grad()
        stack(x, ei, batch).pow(2).mean().backward()
        opt.step()
        sync()
        if step >= 2:  # warm-up
            train.append(n / (time.perf_counter() - t))
        model.eval()
        with torch.no_grad():
            t = time.perf_counter()
            stack(x, ei, batch)
            sync()
            if step >= 2:
                infer.append(n / (time.perf_counter() - t))
    mem = (torch.cuda.max_memory_allocated() / 2**20 if dev.type == 'cuda'
           else peak_mb() - base)
    queue.put({'train': statistics.median(train),
               'infer': statistics.median(infer), 'mem': mem,
               'nodes': sum(b[0].size(0) for b in batches) / len(batches),
               'edges': sum(b[1].size(1) for b in batches) / len(batches)})


def _scaling_child(n, attention, d, heads, queue):
    import torch

    from graphkit.layers.graph_transformer import (GraphTransformerLayer,
                                                   complete_edge_index)
    torch.manual_seed(0)
    dev = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    m = 5 * n  # 10 N directed edges
    src, dst = torch.randint(n, (m, )), torch.randint(n, (m, ))
    ei = torch.cat([torch.stack([src, dst]), torch.stack([dst, src])], 1)
    if attention == 'full':
        ei = complete_edge_index(None, n)
    x = torch.randn(n, d, requires_grad=True)
    layer = GraphTransformerLayer(d, heads).to(dev)
    x, ei = x.to(dev), ei.to(dev)
    base = reset_peak()
    if dev.type == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    layer(x, ei).pow(2).mean().backward()
    if dev.type == 'cuda':
        torch.cuda.synchronize()
        mem = torch.cuda.max_memory_allocated() / 2**20
    else:
        mem = peak_mb() - base
    queue.put({'mem': mem, 'edges': ei.size(1),
               'time': time.perf_counter() - t})


def throughput(args):
    print("| dataset | operator | nodes / batch | edges / batch | train "
          "graphs/s | inference graphs/s | peak MB | train time vs "
          "TransformerConv | inference time vs TransformerConv | memory vs "
          "TransformerConv |")
    print('|' + '---|' * 10)
    for dataset in args.datasets:
        res = {}
        for kind in ('TransformerConv', 'graphkit', 'GPSConv'):
            res[kind] = measure(_throughput_child,
                                (dataset, kind, args.hidden, args.heads,
                                 args.layers, args.batch, args.steps),
                                args.timeout)
        ref = res['TransformerConv']
        for kind, r in res.items():
            if r is None:
                print(f"| {dataset} | {kind} | failed or timed out |")
                continue
            rt = ref['train'] / r['train'] if ref else float('nan')
            ri = ref['infer'] / r['infer'] if ref else float('nan')
            rm = r['mem'] / ref['mem'] if ref and ref['mem'] > 0 else \
                float('nan')
            print(f"| {dataset} | {kind} | {r['nodes']:.0f} | "
                  f"{r['edges']:.0f} | {r['train']:.1f} | {r['infer']:.1f} |"
                  f" {r['mem']:.0f} | {rt:.2f}x | {ri:.2f}x | {rm:.2f}x |")


def scaling(args):
    print("| N | attention | edges | peak MB | MB per 1k edges | "
          "s / step |")
    print('|---|---|---|---|---|---|')
    for n in args.sizes:
        for attention in ('sparse', 'full'):
            if attention == 'full' and n > args.max_full:
                continue
            r = measure(_scaling_child, (n, attention, args.hidden,
                                         args.heads), args.timeout)
            if r is None:
                print(f"| {n} | {attention} | failed or timed out |")
                continue
            print(f"| {n} | {attention} | {r['edges']} | {r['mem']:.0f} | "
                  f"{1000 * r['mem'] / r['edges']:.3f} | {r['time']:.3f} |")


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--datasets', nargs='+', default=['proteins', 'pattern'])
    p.add_argument('--layers', type=int, default=4)
    p.add_argument('--hidden', type=int, default=64)
    p.add_argument('--heads', type=int, default=8)
    p.add_argument('--batch', type=int, default=128)
    p.add_argument('--steps', type=int, default=20)
    p.add_argument('--scaling', action='store_true')
    p.add_argument('--sizes', type=int, nargs='+',
                   default=[500, 1000, 2000, 4000, 8000, 16000])
    p.add_argument('--max-full', type=int, default=4000)
    p.add_argument('--timeout', type=float, default=900)
    args = p.parse_args()
    if args.scaling:
        scaling(args)
    else:
        throughput(args)


if __name__ == '__main__':
    main()
