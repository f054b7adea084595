r"""NCN / NCNC link prediction: training-epoch time, inference time and peak
memory against a GAE with the same encoder and width, the cost of the
common-neighbour operator against the ``torch.sparse`` COO product, and the
count heuristics CN / AA / RA as scores on the same split.

    python benchmarks/ncnc.py [--datasets cora citeseer] [--epochs 3]
    python benchmarks/ncnc.py --datasets ogbl-ddi --max-steps 2
    python benchmarks/ncnc.py --datasets ogbl-ddi --models ncn ncnc \
        --batch-size 1024 --max-steps 1 --epochs 1

Every model uses its ``<model>-<dataset>`` preset (the reference
hyperparameters, target-link removal, batch size) on the seed-0 split and
runs in a fresh subprocess, so peak memories do not mix. The GAE baseline
is ``ncn-gae``: the preset's encoder and NCN's pair and output MLPs on
:math:`h_i \odot h_j`, without the common-neighbour term (the reference
code's ``cn0``), in the same training loop. ``--max-steps`` caps the batches
timed per epoch (the epoch time is extrapolated from them), for graphs
where a CPU epoch takes minutes; ``--batch-size`` replaces the preset's
training batch, for models whose full-size step does not fit the time
available (NCNC on ogbl-ddi).
"""
import argparse
import statistics
import time

import torch
from common import measure, peak_mb, reset_peak

# The official code's times on the same kind of machine (research notes).
OFFICIAL = {('ncn', 'cora'): (0.66, 0.08), ('ncnc', 'cora'): (1.43, 0.77)}


def _setup(dataset, model_name, batch_size=None):
    from graphkit import data as gdata
    from graphkit import models
    from graphkit.pipelines import get_preset
    from graphkit.pipelines.tasks import make_task
    cfg = get_preset(f'ncn-{dataset}' if model_name == 'gae'
                     else f'{model_name}-{dataset}')
    bundle = gdata.load(dataset, task='link')
    task = make_task(bundle, batch_size=batch_size or cfg.train.batch_size,
                     eval_batch_size=cfg.train.eval_batch_size,
                     target_link_removal=cfg.train.target_link_removal)
    task.setup(bundle.split_for_run(0, 0))
    hp = cfg.model.hparams()
    model = models.build('ncn-gae' if model_name == 'gae' else model_name,
                         task='link', **task.model_dims(), **hp)
    from graphkit.pipelines.strategies.base import Strategy
    groups = Strategy.param_groups(model, cfg.optim.lr, cfg.optim.decoder_lr)
    opt = torch.optim.Adam(groups, lr=cfg.optim.lr)
    return task, model, opt


def _run(dataset, model_name, epochs, max_steps, batch_size, queue):
    torch.manual_seed(0)
    task, model, opt = _setup(dataset, model_name, batch_size)
    base = reset_peak()
    times, steps_done, total_steps = [], 0, 0
    for epoch in range(epochs + 1):   # epoch 0 warms up
        model.train()
        batches = list(task.train_batches(
            torch.Generator().manual_seed(epoch)))
        total_steps = len(batches)
        if max_steps:
            batches = batches[:max_steps]
        t0 = time.perf_counter()
        for idx in batches:
            opt.zero_grad()
            loss = task.loss(model, idx)
            loss.backward()
            opt.step()
        if epoch:
            times.append((time.perf_counter() - t0) * total_steps /
                         len(batches))
            steps_done += len(batches)
    train_peak = peak_mb() - base
    t0 = time.perf_counter()
    scores = task.evaluate(model) if not max_steps else {}
    infer = time.perf_counter() - t0 if not max_steps else float('nan')
    queue.put(dict(epoch=statistics.median(times), infer=infer,
                   peak=train_peak, steps=total_steps,
                   test=scores.get('test', float('nan'))))


def _cn_operator(dataset, repeats=3):
    r"""Common neighbours of the test pairs: CSR gathers + sorted-key
    intersection against the sparse COO product (Si * Sj)."""
    from graphkit import data as gdata
    from graphkit.utils.common_neighbors import csr_adjacency, \
        neighbor_overlap
    b = gdata.load(dataset, task='link')
    split = b.split_for_run(0, 0)
    n = b.data.num_nodes
    pairs = torch.cat([split.test_pos, split.test_neg], 1)
    ei = split.edge_index
    adj = csr_adjacency(ei, n)
    coo = torch.sparse_coo_tensor(ei, torch.ones(ei.size(1)),
                                  (n, n)).coalesce()

    def ours():
        return neighbor_overlap(adj, pairs[0], pairs[1]).common[0].numel()

    def coo_product():
        si = torch.index_select(coo, 0, pairs[0])
        sj = torch.index_select(coo, 0, pairs[1])
        prod = (si * sj).coalesce()
        return int((prod.values() != 0).sum())

    assert ours() == coo_product()
    out = {}
    for name, fn in (('csr', ours), ('coo', coo_product)):
        ts = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        out[name] = min(ts)
    return out, pairs.size(1)


def _cn_throughput(dataset, batches, queue):
    r"""Target pairs per second of the common-neighbour operator at each
    batch size, against a dense :math:`A_{i:} \odot A_{j:}` reference
    (where its :math:`B \times N` product fits in 2 GB) and a per-pair
    Python set intersection that builds the same (pair, neighbour) index
    lists; peak memory above the loaded graph. Pairs are
    half training edges, half uniform random pairs."""
    from graphkit import data as gdata
    from graphkit.utils.common_neighbors import csr_adjacency, \
        neighbor_overlap
    b = gdata.load(dataset, task='link')
    split = b.split_for_run(0, 0)
    n, ei = b.data.num_nodes, split.edge_index
    adj = csr_adjacency(ei, n)
    dense = torch.zeros(n, n, dtype=torch.bool)
    dense[ei[0], ei[1]] = True
    sets = [set() for _ in range(n)]
    for u, v in ei.t().tolist():
        sets[u].add(v)
    g = torch.Generator().manual_seed(0)
    rows = []
    for size in batches:
        edges = ei[:, torch.randint(ei.size(1), (size // 2, ), generator=g)]
        rand = torch.randint(n, (2, size - size // 2), generator=g)
        src, dst = torch.cat([edges, rand], 1)

        def ours():
            return neighbor_overlap(adj, src, dst,
                                    one_sided=False).common[0].numel()

        def ours_one_sided():
            ov = neighbor_overlap(adj, src, dst, one_sided=True)
            return ov.common[0].numel()

        def dense_ref():   # the same output, from whole dense rows
            return (dense[src] & dense[dst]).nonzero().size(0)

        def python_sets():   # the same output: (pair, neighbour) lists
            pair_ids, nodes = [], []
            for k, (i, j) in enumerate(zip(src.tolist(), dst.tolist())):
                common = sets[i] & sets[j]
                nodes.extend(common)
                pair_ids.extend([k] * len(common))
            torch.tensor(pair_ids, dtype=torch.long)
            return torch.tensor(nodes, dtype=torch.long).numel()

        row = {'batch': size}
        counts = set()
        fits = size * n <= 2 * 1024 ** 3
        for name, fn in (('ours', ours), ('ours+1s', ours_one_sided),
                         ('dense', dense_ref if fits else None),
                         ('python', python_sets)):
            if fn is None:
                row[name] = None
                continue
            fn()   # warm-up
            base = reset_peak()
            ts = []
            for _ in range(3 if name != 'python' else 1):
                t0 = time.perf_counter()
                counts.add(fn())
                ts.append(time.perf_counter() - t0)
            row[name] = (size / min(ts), max(peak_mb() - base, 0.0))
        assert len(counts) == 1, counts   # every method finds the same sets
        rows.append(row)
    queue.put(rows)


def _heuristics(dataset):
    from graphkit import data as gdata
    from graphkit.pipelines import metrics as M
    from graphkit.utils.common_neighbors import (aa_score, cn_score,
                                                 csr_adjacency, ra_score)
    b = gdata.load(dataset, task='link')
    split = b.split_for_run(0, 0)
    adj = csr_adjacency(split.edge_index, b.data.num_nodes)
    out = {}
    for name, fn in (('CN', cn_score), ('AA', aa_score), ('RA', ra_score)):
        pos = fn(adj, *split.test_pos)
        neg = fn(adj, *split.test_neg)
        out[name] = M.compute(b.metric, pos=pos, neg=neg)
    return out, b.metric


def _print_throughput(ds, args) -> None:
    rows = measure(_cn_throughput, (ds, args.cn_batches), args.timeout)
    if rows is None:
        print("common-neighbour throughput: failed or timed out\n")
        return
    print("Common neighbours, target pairs per second (peak MB above the "
          "loaded graph):\n")
    print("| batch | ours (common only) | ours (+ one-sided sets) | dense "
          "A_i * A_j | Python sets | ours / dense | ours / Python |")
    print("|---|---|---|---|---|---|---|")

    def cell(v):
        return 'does not fit' if v is None else f"{v[0]:,.0f} ({v[1]:.0f})"

    for r in rows:
        ours, dense, py = r['ours'][0], r['dense'], r['python'][0]
        print(f"| {r['batch']:,} | {cell(r['ours'])} | {cell(r['ours+1s'])} "
              f"| {cell(dense)} | {cell(r['python'])} | "
              f"{'-' if dense is None else f'{ours / dense[0]:.1f}x'} | "
              f"{ours / py:.1f}x |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--datasets', nargs='+', default=['cora'])
    parser.add_argument('--models', nargs='+',
                        default=['gae', 'ncn', 'ncnc'])
    parser.add_argument('--epochs', type=int, default=3)
    parser.add_argument('--max-steps', type=int, default=0)
    parser.add_argument('--timeout', type=float, default=3600)
    parser.add_argument('--batch-size', type=int, default=None,
                        help="training batch (target pairs) instead of the "
                        "preset's; with --max-steps, the epoch time is the "
                        "mean step time times the steps an epoch of that "
                        "batch has")
    parser.add_argument('--cn-batches', nargs='+', type=int,
                        default=[1024, 4096, 16384, 65536],
                        help='batch sizes for the common-neighbour '
                        'throughput table (pairs per second)')
    parser.add_argument('--cn-only', action='store_true',
                        help='only the common-neighbour throughput table')
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for ds in args.datasets:
        print(f"\n## {ds}\n")
        _print_throughput(ds, args)
        if args.cn_only:
            continue
        print("| model | s/epoch | vs GAE | inference s | peak MB (train) "
              "| test after warm-up | official s/epoch, inference s |")
        print("|---|---|---|---|---|---|---|")
        base = None
        for m in args.models:
            r = measure(_run, (ds, m, args.epochs, args.max_steps,
                               args.batch_size), args.timeout)
            if r is None:
                print(f"| {m} | failed or timed out | | | | | |")
                continue
            base = r['epoch'] if m == 'gae' else base
            ratio = f"{r['epoch'] / base:.2f}x" if base else '-'
            off = OFFICIAL.get((m, ds))
            off = f"{off[0]} / {off[1]}" if off else '-'
            print(f"| {m} | {r['epoch']:.3f} ({r['steps']} steps) | {ratio} "
                  f"| {r['infer']:.3f} | {r['peak']:.0f} | {r['test']:.4f} "
                  f"| {off} |")
        if ds.startswith('ogbl-'):
            continue
        (t, npairs) = _cn_operator(ds)
        print(f"\nCommon neighbours of {npairs} test pairs: CSR gathers "
              f"{t['csr'] * 1e3:.1f} ms, sparse COO product "
              f"{t['coo'] * 1e3:.1f} ms ({t['coo'] / t['csr']:.1f}x)")
        scores, metric = _heuristics(ds)
        print("Heuristics (test " + metric + "): " + ', '.join(
            f"{k} {v * 100:.2f}" for k, v in scores.items()))


if __name__ == '__main__':
    main()
