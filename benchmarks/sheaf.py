r"""Neural Sheaf Diffusion: training-step time and peak memory of the three
map families against a GCN of the same width and depth, and the share of
the step spent on the sheaf (learning the maps and building the Laplacian).

    python benchmarks/sheaf.py [--datasets squirrel ogbl-ddi] [--steps 10]
                               [--device cuda]

Each model runs in a fresh subprocess, so peak memories do not mix. Each
process keeps freed memory in its heap, as ``graphkit run`` does
(:func:`graphkit.utils.allocator.keep_freed_memory`);
``GRAPHKIT_MALLOC_TUNING=0`` keeps the C library's defaults instead. For
every sheaf model the step is timed four ways (the first, second and fourth
interleaved with each other and with the GCNs; the third interleaved with
the fourth in a second round):

1. as trained (maps learned from the features at every layer), ``T``;
2. with the learners' node terms (their linear maps of the node features)
   replayed as fixed leaves that still get gradients: the per-edge maps and
   the Laplacian are still computed and differentiated, no learner weight
   is applied, ``R``;
3. with the Laplacians' learned values given as fixed leaves that still
   get gradients: no map or Laplacian is built, but the diffusion still
   computes the gradient of the values (a sampled dense product on the
   Laplacian's pattern, as much arithmetic as the diffusion product
   itself), ``V``;
4. with the Laplacians computed once and frozen, ``F``.

``sheaf share = 1 - F / T`` is the part of the step a GCN does not have.
It is printed split into the learners' weights ``(T - R) / T``, building
the per-edge maps and the Laplacian with its backward pass
``(R - V) / T``, and the values' gradient ``(V - F) / T`` (``V - F`` from
the second round). Building the
Laplacian, what a GCN's fixed normalisation avoids, is the first two.

The GCN gets the graph as a sparse CSR adjacency, PyG's faster CPU path
(one sparse product per layer instead of per-edge messages). Its row gives
its own process's time and memory; the ratio of every sheaf model is to a
GCN trained in that model's process, its steps interleaved with the sheaf
model's, so the ratio does not depend on the load of the machine; the
second ratio is to PyG's own ``GCN`` class, timed the same way.

* ``squirrel`` (node classification, geom-gcn split 0): the official
  Squirrel script's shape, d = 3 plus a low-pass stalk, 5 layers, 32
  channels (width 128); GCN: 5 layers of 128.
* ``ogbl-ddi`` (link prediction encoder on learned 256-d embeddings, the
  whole 2.1 M-edge training graph, forward and backward of the encoder):
  d = 2 stalks of 128 channels (width 256), 2 layers; GCN: 2 layers of 256.
"""
import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from common import measure, peak_mb, reset_peak, sync

SETTINGS = {
    'squirrel': dict(stalk_dim=3, num_layers=5, hidden_channels=32,
                     add_lp=True),
    'ogbl-ddi': dict(stalk_dim=2, num_layers=2, hidden_channels=128),
}


def _inputs(name):
    from graphkit.data import load
    if name == 'ogbl-ddi':
        b = load(name)
        ei = b.split_for_run(0, 0).edge_index  # training graph, both ways
        n = b.data.num_nodes
        x = torch.randn(n, 256)
        target = None
    else:
        b = load(name, split='geom-gcn', normalize_features=True)
        split = b.split_for_run(0, 0)
        ei, x, n = b.data.edge_index, b.data.x, b.data.num_nodes
        target = (b.data.y, split.train_mask, b.num_classes)
    return x, ei, n, target


def _gcn(name, x, ei, n, out_dim, stock=False):
    r"""The GCN baseline of the same width and depth, and its graph: a
    sparse CSR adjacency, PyG's faster CPU path (one sparse product per
    layer, what graphkit's tasks pass on large graphs). The registered
    GCN, or with ``stock`` PyG's own class (whose backward re-sorts the
    transposed adjacency every step)."""
    from graphkit.models import build
    from torch_geometric.nn.models import GCN
    from torch_geometric.utils import to_torch_csr_tensor
    cfg = SETTINGS[name]
    width = (cfg['stalk_dim'] + int(cfg.get('add_lp', False))) * \
        cfg['hidden_channels']
    if stock:
        model = GCN(x.size(1), width, cfg['num_layers'], out_dim,
                    dropout=0.0, cached=True)
    else:
        model = build('gcn', 'node', in_channels=x.size(1),
                      out_channels=out_dim, hidden_channels=width,
                      num_layers=cfg['num_layers'], dropout=0.0,
                      cached=True).encoder
    return model.to(ei.device), to_torch_csr_tensor(ei, size=(n, n))


def _run(name, model_name, steps, device, queue):
    from graphkit.models import NSD
    from graphkit.models.sheaf import sheaf_graph
    from graphkit.utils.allocator import keep_freed_memory
    keep_freed_memory()     # as `graphkit run` does; for every model alike
    torch.manual_seed(0)
    device = torch.device(device)
    x, ei, n, target = _inputs(name)
    x, ei = x.to(device), ei.to(device)
    if target is not None:
        target = (target[0].to(device), target[1].to(device), target[2])
    cfg = SETTINGS[name]
    width = (cfg['stalk_dim'] + int(cfg.get('add_lp', False))) * \
        cfg['hidden_channels']
    out_dim = target[2] if target else width
    if model_name == 'gcn':
        model, graph = _gcn(name, x, ei, n, out_dim)
    else:
        model = NSD(x.size(1), out_dim, family=model_name.split('-')[1],
                    **cfg)
        graph = sheaf_graph(ei, n)
    model = model.to(device)

    def trainable(module):
        # a module's step: its own optimiser (and its own learned input
        # embedding when the dataset has no features)
        emb = torch.nn.Parameter(x.clone()) if target is None else None
        params = list(module.parameters()) + ([emb] if emb is not None
                                              else [])
        return torch.optim.Adam(params, lr=0.01), emb

    opt, embedding = trainable(model)

    def loss_of(out):
        if target is None:
            return out.pow(2).mean()
        y, mask, _ = target
        return F.cross_entropy(out[mask], y[mask])

    def stepper(optimiser, emb):
        def step(forward):
            optimiser.zero_grad()
            loss = loss_of(forward(emb if emb is not None else x))
            loss.backward()
            optimiser.step()
        return step

    step = stepper(opt, embedding)

    def timed(*forwards):
        # Steps of the given (forward, step) pairs alternate, so machine
        # load hits all alike; returns the median step time of each.
        for _ in range(2):
            for forward, st in forwards:
                st(forward)
        times = [[] for _ in forwards]
        for _ in range(steps):
            for i, (forward, st) in enumerate(forwards):
                sync(device)
                t0 = time.perf_counter()
                st(forward)
                sync(device)
                times[i].append(time.perf_counter() - t0)
        return [statistics.median(t) for t in times]

    before = reset_peak(device)
    (trained, ) = timed((lambda inp: model(inp, graph), step))
    memory = peak_mb(device) - before
    frozen = gcn_time = None
    if model_name != 'gcn':
        with torch.no_grad():
            _, laps = model.diffuse(model.input_stalks(
                x if embedding is None else embedding), graph)

        def fixed(inp):
            h, _ = model.diffuse(model.input_stalks(inp), graph, laps)
            return model.lin2(h.reshape(h.size(0), -1))

        def given(inp):
            h, _ = model.diffuse(model.input_stalks(inp), graph, leaves)
            return model.lin2(h.reshape(h.size(0), -1))

        replay = _replay_learners(model)

        def replayed(inp):
            replay['on'] = True
            try:
                return model(inp, graph)
            finally:
                replay['on'] = False
        gcn, gcn_graph = _gcn(name, x, ei, n, out_dim)
        stock, _ = _gcn(name, x, ei, n, out_dim, stock=True)
        gcn, stock = gcn.to(device), stock.to(device)
        trained, learned_maps, frozen, gcn_time, stock_time = timed(
            (lambda inp: model(inp, graph), step), (replayed, step),
            (fixed, step),
            (lambda inp: gcn(inp, gcn_graph), stepper(*trainable(gcn))),
            (lambda inp: stock(inp, gcn_graph), stepper(*trainable(stock))))
        # The values' gradient, timed apart (in the interleaving above, the
        # extra Laplacian copies slowed the trained step by 10-15%): as the
        # step time it adds to the frozen Laplacians.
        leaves = [_as_leaves(lap) for lap in laps]
        lap_leaves, frozen_again = timed((given, step), (fixed, step))
        lap_leaves = frozen + (lap_leaves - frozen_again)
        frozen = (learned_maps, lap_leaves, frozen)
        gcn_time = (gcn_time, stock_time)
    queue.put((trained, memory, frozen, gcn_time))


def _as_leaves(lap):
    # The Laplacian's learned parts as fixed leaves that need a gradient:
    # the diffusion still computes the gradient of its values (the sampled
    # product), but no map or Laplacian is built.
    from graphkit.layers.sheaf import SheafLaplacian, StackedLaplacian
    if isinstance(lap, StackedLaplacian):    # the fixed parts stay fixed
        return StackedLaplacian([_as_leaves(lap.parts[0])] + lap.parts[1:])

    def leaf(t):
        return None if t is None else t.detach().clone().requires_grad_()
    return SheafLaplacian(lap.structure, leaf(lap.diag), leaf(lap.values),
                          leaf(lap.scale))


def _replay_learners(model):
    # While replay['on'], every sheaf learner's node terms (its linear map
    # of the node features) are the ones it gave on its first replayed
    # call, as leaves that need a gradient: the per-edge maps and the
    # Laplacian are still computed (forward and backward) from them, but no
    # learner weight is applied.
    from graphkit.layers.sheaf import SheafLearner
    replay = {'on': False}
    for learner in model.modules():
        if not isinstance(learner, SheafLearner):
            continue
        original, saved = learner.node_terms, {}

        def node_terms(*args, _original=original, _saved=saved, **kwargs):
            if not replay['on']:
                return _original(*args, **kwargs)
            if 'out' not in _saved:
                with torch.no_grad():
                    _saved['out'] = tuple(
                        t.requires_grad_() for t in
                        _original(*args, **kwargs))
            return _saved['out']
        learner.node_terms = node_terms
    return replay


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--datasets', nargs='+',
                        default=['squirrel', 'ogbl-ddi'])
    parser.add_argument('--models', nargs='+',
                        default=['gcn', 'nsd-diag', 'nsd-bundle',
                                 'nsd-general'])
    parser.add_argument('--steps', type=int, default=10)
    parser.add_argument('--timeout', type=float, default=1800)
    parser.add_argument('--device', default='cpu',
                        help="cpu or cuda (peak memory: resident size on "
                             "CPU, allocated device memory on CUDA)")
    args = parser.parse_args()
    print('| dataset | model | s/step | ratio to GCN | ratio to PyG\'s GCN '
          '| peak MB | sheaf share | learner weights | maps and Laplacian '
          '| values\' gradient |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    for name in args.datasets:
        for model_name in args.models:
            res = measure(_run, (name, model_name, args.steps, args.device),
                          args.timeout)
            if res is None:
                print(f'| {name} | {model_name} | failed or > '
                      f'{args.timeout:.0f} s | - | - | - | - |', flush=True)
                continue
            t, mem, frozen, gcn_time = res
            # the ratios to the GCNs timed in the same process, interleaved
            ratio, stock = ('1.00', '-') if model_name == 'gcn' else ('-', '-')
            if gcn_time:
                ratio = f'{t / gcn_time[0]:.2f}'
                stock = f'{t / gcn_time[1]:.2f}'
            parts = ['-'] * 4
            if frozen:
                maps_given, values_given, lap_fixed = frozen
                parts = [f'{100 * x / t:.0f}%' for x in (
                    t - lap_fixed, t - maps_given, maps_given - values_given,
                    values_given - lap_fixed)]
            print(f'| {name} | {model_name} | {t:.3f} | {ratio} | {stock} | '
                  f'{mem:.0f} | {" | ".join(parts)} |', flush=True)


if __name__ == '__main__':
    main()
