r"""Full-batch training step time of Mowst and Mowst* against their backbone,
per phase, all in one process on the same data and split.

    python benchmarks/mowst_step_time.py [--datasets wisconsin chameleon] \
        [--backbones gcn sage] [--steps 100] [--repeats 3]

Each model uses the ``mowst-<dataset>`` preset (the backbone alone gets the
same width, depth, dropout and optimiser). One training step is timed in
each of Mowst's phases:

* ``pretrain``: the strong expert alone on its own loss;
* ``weak``: the weak expert and gate train, the strong expert runs frozen
  (no gradient, training mode: its dropout is active, as in the reference);
* ``strong``: the strong expert trains, the weak expert and gate run
  frozen;

and one step of Mowst* (both experts and the gate train together). The
steps interleave (backbone, pretrain, weak, strong, Mowst*, repeated), and
each figure is the median over ``--repeats`` of the mean over ``--steps``
steps, printed as a ratio to the backbone's step. ``--dense-mlp`` turns
off the weak expert's sparse-input first layer, to show what it saves.
"""
import argparse
import statistics
import time

import torch

from graphkit.cli import encoder_baseline_config
from graphkit.pipelines import default_config
from graphkit.pipelines.loop import Trainer, load_bundle
from graphkit.pipelines.tasks import make_task


def _step_ms(trainer, task, batch, steps):
    for _ in range(5):                       # warm-up (caches, allocator)
        trainer.strategy.step(task, batch)
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.strategy.step(task, batch)
    return (time.perf_counter() - t0) / steps * 1e3


def _set_phase(trainer, phase):
    # the presets' validated schedule reads its phase from ``current``;
    # begin_epoch routes the model for it (strong expert alone in pretrain)
    s = trainer.strategy
    assert s.validated, 'the mowst-<dataset> presets use validated turns'
    s.current = phase
    s.begin_epoch(s.epoch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--datasets', nargs='+',
                        default=['texas', 'wisconsin', 'cornell', 'cora',
                                 'citeseer', 'chameleon', 'squirrel',
                                 'actor'])
    parser.add_argument('--backbones', nargs='+', default=['gcn', 'sage'])
    parser.add_argument('--steps', type=int, default=100)
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--dense-mlp', action='store_true',
                        help='run the weak expert with dense products')
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cpu = torch.device('cpu')
    print(f'weak expert: {"dense" if args.dense_mlp else "sparse-input"} '
          f'first layer; ratios to the backbone\'s step')
    print('| dataset | backbone | backbone ms/step | Mowst pretrain | '
          'Mowst weak turn | Mowst strong turn | Mowst* |')
    print('|---|---|---|---|---|---|---|')
    for ds in args.datasets:
        bundle = None
        for bb in args.backbones:
            cfgs = {}
            for model in ('mowst', 'mowst-star'):
                cfg = default_config(model, ds)
                cfg.model.encoder = bb
                cfgs[model] = cfg
            if bundle is None:
                bundle = load_bundle(cfgs['mowst'])
            task = make_task(bundle, batch_size=None, eval_batch_size=None,
                             num_neighbors=[10, 10], metric=None, device=cpu)
            batch = next(iter(task.train_batches(
                torch.Generator().manual_seed(0))))
            base = Trainer(encoder_baseline_config(cfgs['mowst']), task, 0,
                           cpu)
            mowst = Trainer(cfgs['mowst'], task, 0, cpu)
            star = Trainer(cfgs['mowst-star'], task, 0, cpu)
            for t in (mowst, star):
                if args.dense_mlp:
                    t.model.weak.sparse_input = False
            times = {k: [] for k in ('base', 'pretrain', 'weak', 'strong',
                                     'star')}
            for _ in range(args.repeats):
                times['base'].append(_step_ms(base, task, batch, args.steps))
                for phase in ('pretrain', 'weak', 'strong'):
                    _set_phase(mowst, phase)
                    times[phase].append(_step_ms(mowst, task, batch,
                                                 args.steps))
                times['star'].append(_step_ms(star, task, batch, args.steps))
            med = {k: statistics.median(v) for k, v in times.items()}
            b = med['base']
            print(f"| {ds} | {bb} | {b:.2f} | {med['pretrain'] / b:.2f}x | "
                  f"{med['weak'] / b:.2f}x | {med['strong'] / b:.2f}x | "
                  f"{med['star'] / b:.2f}x |", flush=True)


if __name__ == '__main__':
    main()
