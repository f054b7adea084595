r"""Mowst's cost against its backbone: neighbour-sampled (mini-batch)
inference over every node, where Mowst runs the strong expert only on the
nodes its weak expert does not keep (Algorithm 1, ``inference='sample'``),
and mini-batch training time per epoch.

    python benchmarks/mowst_inference.py [--dataset actor] [--backbone gcn] \
        [--eval-batch-size 256] [--repeats 5]

1. Mowst and the backbone alone are trained with the ``mowst-<dataset>``
   preset on the first Geom-GCN split (full batch, validated turns).
2. Inference over all nodes in layer-exact mini-batches (every neighbour,
   ``--eval-batch-size`` seed nodes per batch), timed for the backbone, for
   Mowst's conditional inference, and for Mowst running both experts on
   every node.
3. A few epochs of neighbour-sampled training (fan-out 10, 10) of each,
   for the training time per epoch.

Everything runs in this process; the ratios are to the backbone.
"""
import argparse
import statistics
import time

from graphkit.cli import encoder_baseline_config
from graphkit.pipelines import default_config, fit
from graphkit.pipelines.tasks import NodeTask


def _keeper(store):
    def keep(*, trainer, **_):
        store['trainer'] = trainer
    return keep


def _timed(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--dataset', default='actor')
    parser.add_argument('--backbone', default='gcn')
    parser.add_argument('--eval-batch-size', type=int, default=256)
    parser.add_argument('--train-batch-size', type=int, default=256)
    parser.add_argument('--train-epochs', type=int, default=6)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--out', default='runs/mowst-inference')
    args = parser.parse_args()

    cfg = default_config('mowst', args.dataset)
    cfg.model.encoder = args.backbone
    cfg.train.runs, cfg.train.progress = 1, False
    cfg.out = f'{args.out}/mowst-{args.backbone}-{args.dataset}'
    mowst, base = {}, {}
    fit(cfg, callbacks=[_keeper(mowst)])
    fit(encoder_baseline_config(cfg), callbacks=[_keeper(base)])
    trained = mowst['trainer'].task
    model, bmodel = mowst['trainer'].model, base['trainer'].model

    # layer-exact mini-batch inference over the same split; the full-batch
    # runs cached GCN's normalised graph, which subgraphs must not reuse
    from torch_geometric.nn.conv import GCNConv
    for mod in list(model.modules()) + list(bmodel.modules()):
        if isinstance(mod, GCNConv):
            mod.cached = False
            mod._cached_edge_index = mod._cached_adj_t = None
    task = NodeTask(trained.bundle, batch_size=args.eval_batch_size,
                    eval_batch_size=args.eval_batch_size,
                    num_neighbors=(-1, ) * cfg.model.num_layers)
    task.setup(mowst['trainer'].split)
    model.inference = 'sample'
    t_base, out_base = _timed(lambda: task.predict(bmodel), args.repeats)
    t_cond, out_cond = _timed(lambda: task.predict(model), args.repeats)
    strong_share = model.last_strong_share
    t_both, _ = _timed(lambda: task.predict(model, call=model.experts),
                       args.repeats)

    # neighbour-sampled training time per epoch
    mb = default_config('mowst', args.dataset)
    mb.model.encoder = args.backbone
    mb.train.runs, mb.train.progress = 1, False
    mb.train.epochs = args.train_epochs
    mb.train.eval_every = args.train_epochs
    mb.train.batch_size, mb.train.num_neighbors = (args.train_batch_size,
                                                   (10, 10))
    mb.train.mowst_pretrain_epochs = args.train_epochs // 3
    mb.train.mowst_turn_epochs = max(args.train_epochs // 3, 1)
    mb.train.mowst_turn_patience = 0
    mb.out = f'{args.out}/minibatch-{args.backbone}-{args.dataset}'
    s_mb = fit(mb)
    s_mb_base = fit(encoder_baseline_config(mb))

    def acc(out):
        return 100 * task.score(out, 'test')

    n = trained.bundle.data.num_nodes
    print(f'{args.dataset} ({n} nodes), {args.backbone} backbone, first '
          f'split; inference in batches of {args.eval_batch_size} '
          f'seed nodes with all neighbours; median of {args.repeats}')
    print('| | backbone alone | Mowst |')
    print('|---|---|---|')
    print(f'| test accuracy, mini-batch inference (%) | {acc(out_base):.2f} '
          f'| {acc(out_cond):.2f} (random rule, one draw) |')
    print(f'| nodes decided by the strong expert | 100% | '
          f'{100 * strong_share:.1f}% |')
    print(f'| inference over all nodes (s) | {t_base:.3f} | {t_cond:.3f} '
          f'({t_cond / t_base:.2f}x) |')
    print(f'| inference, both experts on every node (s) | - | {t_both:.3f} '
          f'({t_both / t_base:.2f}x) |')
    print(f'| neighbour-sampled training, s/epoch (batch '
          f'{args.train_batch_size}) | {s_mb_base.epoch_time_s:.3f} | '
          f'{s_mb.epoch_time_s:.3f} '
          f'({s_mb.epoch_time_s / s_mb_base.epoch_time_s:.2f}x) |')


if __name__ == '__main__':
    main()
