r"""Mowst against its backbone with both tuned on validation accuracy, the
paper's protocol (the reference scripts search lr x dropout x gate settings
for Mowst and a grid of their own for the baselines).

Every configuration of the grid is run on all splits, for Mowst and for the
backbone alone; each model keeps the configuration with the best mean
validation accuracy, and its test accuracy over the same splits is reported,
with the paired per-split difference::

    python benchmarks/mowst_tuned.py --datasets texas wisconsin cornell \
        --backbones sage [--lrs 0.01 0.001] [--dropouts 0.3 0.5 0.7] \
        [--gate-dropouts 0.0 0.5] [--pretrain preset backbone] \
        [--switch-dropouts none 0.5] [--out runs/mowst-tuned]

``--gate-dropouts``, ``--pretrain`` and ``--switch-dropouts`` (every
dropout of the model set to this value when pretraining ends, the
reference's ``--dropout_gate``; ``none`` keeps them) apply to Mowst only
(the backbone has no gate and no pretraining), so Mowst gets more
candidates than its backbone, as in the reference protocol.
``--pretrain preset`` pretrains the strong expert with the preset's phase
budget (at most 400 epochs, patience 50), ``backbone`` with the budget of
the backbone alone (``train.epochs`` and ``train.patience``). Every other
setting is the ``mowst-<dataset>`` preset's.
Finished configurations are read back from ``--out`` with ``--resume``.
"""
import argparse
import itertools
from pathlib import Path

from graphkit.cli import encoder_baseline_config
from graphkit.pipelines import default_config, fit
from graphkit.pipelines import results as R
from graphkit.pipelines.loop import RECORDS

from mowst import _paired


def _fit_or_load(cfg, resume: bool):
    records = R.read_records(Path(cfg.out) / RECORDS) if resume else []
    if resume and len(records) >= cfg.train.runs:
        return R.summarize(records, cfg.model.name, cfg.data.name,
                           'accuracy')
    return fit(cfg, resume=False)


def _tag(lr: float, dropout: float, gate: float | None = None,
         pretrain: str = 'preset', switch: float | None = None) -> str:
    tag = f'lr{lr:g}-do{dropout:g}'
    if gate is not None:
        tag = f'{tag}-gdo{gate:g}'
    if pretrain != 'preset':
        tag = f'{tag}-pretrain-{pretrain}'
    return tag if switch is None else f'{tag}-switch{switch:g}'


def _switch(value: str) -> float | None:
    if value == 'none':
        return None
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected 'none' or a dropout in [0, 1), got {value!r}")


def _keep(best: dict, key: str, res, tag: str, label: str) -> None:
    r"""Prints one configuration's scores and keeps it in ``best[key]``
    if its mean validation accuracy is the highest so far."""
    print(f'{label} {tag}: valid {100 * res.valid_mean:.2f} test '
          f'{100 * res.test_mean:.2f}', flush=True)
    if key not in best or res.valid_mean > best[key][0].valid_mean:
        best[key] = (res, tag)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--datasets', nargs='+', default=['texas'])
    parser.add_argument('--backbones', nargs='+', default=['sage'])
    parser.add_argument('--lrs', nargs='+', type=float, default=[0.01, 0.001])
    parser.add_argument('--dropouts', nargs='+', type=float,
                        default=[0.3, 0.5, 0.7])
    parser.add_argument('--gate-dropouts', nargs='+', type=float,
                        default=[0.0, 0.5])
    parser.add_argument('--pretrain', nargs='+', default=['preset'],
                        choices=['preset', 'backbone'],
                        help="the strong expert's pretraining budget: the "
                             "preset's, or the backbone alone's")
    parser.add_argument('--switch-dropouts', nargs='+', type=_switch,
                        default=[None],
                        help="dropout of every module after pretraining "
                             "('none': unchanged)")
    parser.add_argument('--runs', type=int, default=10)
    parser.add_argument('--out', default='runs/mowst-tuned')
    parser.add_argument('--resume', action='store_true',
                        help='read back the configurations already finished '
                             'in --out instead of training them again')
    args = parser.parse_args()
    switches = [v for v in args.switch_dropouts if v is not None]
    for value in args.dropouts + args.gate_dropouts + switches:
        if not 0.0 <= value < 1.0:
            raise SystemExit(f'dropout values must lie in [0, 1), got {value}')
    rows = []
    for ds, bb in itertools.product(args.datasets, args.backbones):
        best = {}
        for lr, do in itertools.product(args.lrs, args.dropouts):
            for gate, pre, sw in itertools.product(
                    args.gate_dropouts, args.pretrain, args.switch_dropouts):
                cfg = default_config('mowst', ds)
                cfg.model.encoder = bb
                cfg.model.dropout, cfg.optim.lr = do, lr
                cfg.model.gate_dropout = gate
                cfg.train.runs, cfg.train.progress = args.runs, False
                if pre == 'backbone':
                    cfg.train.mowst_pretrain_epochs = cfg.train.epochs
                    cfg.train.mowst_pretrain_patience = cfg.train.patience
                cfg.train.mowst_dropout = sw
                tag = _tag(lr, do, gate, pre, sw)
                cfg.out = str(Path(args.out) / f'mowst-{bb}-{ds}' / tag)
                _keep(best, 'mowst', _fit_or_load(cfg, args.resume), tag,
                      f'{ds} {bb} mowst')
            base = encoder_baseline_config(cfg)
            base.out = str(Path(args.out) / f'{bb}-{ds}' / _tag(lr, do))
            _keep(best, 'base', _fit_or_load(base, args.resume),
                  _tag(lr, do), f'{ds} {bb} alone')
        rows.append((ds, bb, best))

    def acc(s):
        return (f'{100 * s.test_mean:.2f} ± {100 * s.test_std:.2f} '
                f'(valid {100 * s.valid_mean:.2f})')

    print('\n| dataset | backbone | backbone alone, tuned (config) | Mowst, '
          'tuned (config) | Mowst − backbone, paired (± s.e.) |')
    print('|---|---|---|---|---|')
    for ds, bb, best in rows:
        (m, mtag), (b, btag) = best['mowst'], best['base']
        d, se = _paired(m, b)
        print(f'| {ds} | {bb} | {acc(b)} ({btag}) | {acc(m)} ({mtag}) | '
              f'{d:+.2f} ± {se:.2f} |', flush=True)


if __name__ == '__main__':
    main()
