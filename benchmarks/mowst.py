r"""Mowst and Mowst* against their strong expert trained alone: test accuracy
(mean ± std over the 10 Geom-GCN splits), the share of test nodes the weak
expert decides, and the training time per epoch as a ratio to the backbone,
all in one process with the same splits and seeds.

    python benchmarks/mowst.py [--datasets texas chameleon] \
        [--backbones gcn sage] [--runs 10] [--out runs/mowst-table]

Every row uses the ``mowst-<dataset>`` preset (the backbone gets the same
width, depth, dropout, optimiser and epoch budget). Prints one markdown
table, the README's.
"""
import argparse
import math
from pathlib import Path

from graphkit.cli import encoder_baseline_config
from graphkit.pipelines import default_config, fit
from graphkit.pipelines import results as R
from graphkit.pipelines.loop import RECORDS

DATASETS = ['cora', 'citeseer', 'chameleon', 'squirrel', 'actor', 'texas',
            'wisconsin', 'cornell']


def _run_or_load(cfg, model, ds, load, resume=False):
    if not load:
        return fit(cfg, resume=resume)
    records = R.read_records(Path(cfg.out) / RECORDS)
    if not records:
        raise FileNotFoundError(f"--from-runs: no finished runs in "
                                f"{cfg.out}; run without --from-runs first")
    return R.summarize(records, model, ds, 'accuracy')


def _paired(a, b):
    r"""Mean and standard error of the per-split differences a - b (%)."""
    ta = {r.run: r.test for r in a.records}
    diffs = [100 * (ta[r.run] - r.test) for r in b.records if r.run in ta]
    n = len(diffs)
    mean = sum(diffs) / max(n, 1)
    var = sum((d - mean) ** 2 for d in diffs) / max(n - 1, 1)
    return mean, math.sqrt(var / max(n, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--datasets', nargs='+', default=DATASETS)
    parser.add_argument('--backbones', nargs='+', default=['gcn', 'sage'])
    parser.add_argument('--runs', type=int, default=10)
    parser.add_argument('--epochs', type=int, default=None)
    parser.add_argument('--out', default='runs/mowst-table')
    parser.add_argument('--resume', action='store_true',
                        help='keep the runs already finished in --out and '
                             'train only the missing ones')
    parser.add_argument('--from-runs', action='store_true',
                        help='print the table from the runs already in '
                             '--out instead of training')
    args = parser.parse_args()
    print('| dataset | backbone | backbone alone | Mowst | Mowst* | '
          'Mowst − backbone, paired (± s.e.) | Mowst: weak share (weak / '
          'strong acc.) | s/epoch vs backbone (Mowst, Mowst*) |')
    print('|---|---|---|---|---|---|---|---|')
    for ds in args.datasets:
        for bb in args.backbones:
            res = {}
            for model in ('mowst', 'mowst-star'):
                cfg = default_config(model, ds)
                cfg.model.encoder = bb
                cfg.train.runs, cfg.train.progress = args.runs, False
                if args.epochs:
                    cfg.train.epochs = args.epochs
                cfg.out = str(Path(args.out) / f'{model}-{bb}-{ds}')
                res[model] = _run_or_load(cfg, model, ds, args.from_runs,
                                          args.resume)
                if model == 'mowst':
                    base = encoder_baseline_config(cfg)
                    res['base'] = _run_or_load(base, bb, ds, args.from_runs,
                                               args.resume)

            def acc(s):
                return f'{100 * s.test_mean:.2f} ± {100 * s.test_std:.2f}'

            m, st, b = res['mowst'], res['mowst-star'], res['base']
            share = m.extra.get('test_weak_share', (float('nan'), 0))[0]
            wacc = m.extra.get('test_weak_acc', (float('nan'), 0))[0]
            sacc = m.extra.get('test_strong_acc', (float('nan'), 0))[0]
            d, se = _paired(m, b)
            print(f'| {ds} | {bb} | {acc(b)} | {acc(m)} | {acc(st)} | '
                  f'{d:+.2f} ± {se:.2f} | {100 * share:.1f}% '
                  f'({100 * wacc:.1f} / {100 * sacc:.1f}) | '
                  f'{m.epoch_time_s / b.epoch_time_s:.2f}x, '
                  f'{st.epoch_time_s / b.epoch_time_s:.2f}x |', flush=True)


if __name__ == '__main__':
    main()
