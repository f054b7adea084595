r"""Command line: ``graphkit run | datasets | models | presets``.

This is the only place where logging is configured and where ``--device
auto`` is resolved.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

__all__ = ['main', 'build_parser', 'config_from_args']

log = logging.getLogger('graphkit')


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.ArgumentDefaultsHelpFormatter
    parser = argparse.ArgumentParser(
        prog='graphkit', formatter_class=fmt,
        description='Graph-learning components on PyTorch Geometric.')
    sub = parser.add_subparsers(dest='command')

    run = sub.add_parser('run', formatter_class=fmt,
                         help='train and evaluate a model on a dataset')
    run.add_argument('--model', default=None,
                     help='registered model (default: gcn)')
    run.add_argument('--dataset', default=None,
                     help='dataset name (default: cora)')
    run.add_argument('--encoder', default=None,
                     help='registered encoder inside a wrapper model, e.g. '
                          'the encoder of ncn / ncnc')
    run.add_argument('--backbone', dest='encoder', default=None,
                     help='the strong expert of mowst / mowst-star (same '
                          'setting as --encoder)')
    run.add_argument('--strategy', default=None,
                     help='training strategy: backprop | forward-sf | mowst '
                          '(default: the model\'s own, usually backprop)')
    run.add_argument('--layers', type=int, default=None,
                     help='number of layers (model.num_layers)')
    run.add_argument('--preset', default=None, help='named preset')
    run.add_argument('--split', default=None,
                     help='public | geom-gcn | random | ogb')
    run.add_argument('--runs', type=int, default=None,
                     help='number of runs (default: one per fixed split)')
    run.add_argument('--epochs', type=int, default=None)
    run.add_argument('--seed', type=int, default=None,
                     help='base seed; run i uses seed + i')
    run.add_argument('--device', default='auto', help='auto | cpu | cuda')
    run.add_argument('--data-root', default=None,
                     help='data root (default: $GRAPHKIT_DATA or '
                     '~/.cache/graphkit)')
    run.add_argument('--mirror', default=None,
                     help='offline mirror of raw files (default: '
                     '$GRAPHKIT_MIRROR)')
    run.add_argument('--set', dest='overrides', action='append', default=[],
                     metavar='KEY=VALUE',
                     help='override a config field, e.g. '
                     'model.hidden_channels=128 (repeatable)')
    run.add_argument('--out', default=None,
                     help='output folder (default: runs/<model>-<dataset>)')
    run.add_argument('--resume', action='store_true',
                     help='continue from the last checkpoint in --out')
    run.add_argument('--deterministic', action='store_true')
    run.add_argument('--plot', action='store_true',
                     help='save training curves to <out>/curves.png')
    run.add_argument('--baseline', action='append', default=[],
                     metavar='MODEL',
                     help='also train MODEL (its own preset for the dataset '
                     'if any) on the same data, splits, seeds, runs and '
                     'epochs, and print both (repeatable)')
    run.add_argument('--compare', action='append', default=[],
                     metavar='MODEL',
                     help='also train MODEL with every setting of this run '
                     '(layers, widths, optimiser, loss weights, data, '
                     'splits, seeds, epochs): only the model is swapped; '
                     'outputs in <out>/compare-MODEL (repeatable)')
    run.add_argument('--no-baseline', action='store_true',
                     help='train only the named model, without the '
                     'comparison run its registry entry adds by default '
                     '(encoder, ablation or backprop)')
    run.add_argument('--parallel', default=None,
                     choices=['none', 'ddp', 'graph', 'pipeline', 'hybrid'],
                     help='distributed mode under torchrun (parallel.mode): '
                     'ddp | graph | pipeline (GNNPipe) | hybrid')
    prog = run.add_mutually_exclusive_group()
    prog.add_argument('--progress', dest='progress', action='store_true',
                      default=None)
    prog.add_argument('--no-progress', dest='progress', action='store_false')
    run.add_argument('-v', '--verbose', action='store_true')

    ds = sub.add_parser('datasets', formatter_class=fmt,
                        help='list datasets and whether their files are '
                        'present')
    ds.add_argument('--data-root', default=None)
    ds.add_argument('--mirror', default=None)
    ds.add_argument('--ogb', action='store_true',
                    help='also list every OGB name')
    md = sub.add_parser('models', help='list registered models')
    md.add_argument('--task', default=None)
    sub.add_parser('presets', help='list named presets')
    pl = sub.add_parser('plot', formatter_class=fmt,
                        help='plot the curves of finished runs, one colour '
                        'per output folder (e.g. two models run side by '
                        'side)')
    pl.add_argument('folders', nargs='+', metavar='OUT',
                    help='output folders of graphkit run (with runs.jsonl)')
    pl.add_argument('--to', required=True, metavar='PNG',
                    help='the PNG to write')
    pl.add_argument('--label', action='append', default=[],
                    help='legend label per folder, in order (default: the '
                    'model name from its summary.json)')
    pl.add_argument('--test', action='store_true',
                    help='also draw the test score, dashed')
    return parser


# Flags that set one config field: flag -> (section, field).
_FLAG_FIELDS = {'split': ('data', 'split'), 'runs': ('train', 'runs'),
                'epochs': ('train', 'epochs'), 'seed': ('train', 'seed'),
                'data_root': ('data', 'root'), 'mirror': ('data', 'mirror'),
                'progress': ('train', 'progress'),
                'encoder': ('model', 'encoder'),
                'strategy': ('train', 'strategy'),
                'layers': ('model', 'num_layers'),
                'parallel': ('parallel', 'mode')}


def _protocol(strategy: str) -> str:
    r"""The preset family of a strategy's protocol (``forward-sf`` for all
    forward-learning strategies), else the strategy's name."""
    from graphkit.pipelines.strategies import resolve_strategy
    return getattr(resolve_strategy(strategy), 'protocol', strategy)


def _has_preset(name: str) -> bool:
    from graphkit.pipelines.presets import preset_names
    return name.lower() in preset_names()


def config_from_args(args: argparse.Namespace):
    r"""Turns parsed ``run`` flags into a :class:`RunConfig`."""
    from graphkit.pipelines import apply_overrides, default_config, get_preset
    if args.preset:
        cfg = get_preset(args.preset)
        if args.model:
            cfg.model.name = args.model
        if args.dataset:
            cfg.data.name = args.dataset
    elif args.strategy and _has_preset(
            f'{_protocol(args.strategy)}-{args.dataset}'):
        # a strategy's own protocol on this dataset (e.g. forward-sf-cora)
        cfg = get_preset(f'{_protocol(args.strategy)}-{args.dataset}')
        if args.model:
            cfg.model.name = args.model
    else:
        cfg = default_config(args.model or 'gcn', args.dataset or 'cora')
    for flag, (section, name) in _FLAG_FIELDS.items():
        value = getattr(args, flag)
        if value is not None:
            setattr(getattr(cfg, section), name, value)
    if args.out is not None:
        cfg.out = args.out
    cfg.deterministic = cfg.deterministic or args.deterministic
    apply_overrides(cfg, args.overrides)
    from graphkit.pipelines.loop import resolve_device
    cfg.device = str(resolve_device(args.device))
    return cfg


def _beside(cfg, label: str, base=None, kind: str = 'baseline'):
    r"""``base`` (default: a copy of ``cfg`` without its preset name) as a
    comparison run beside ``cfg``, with outputs in
    ``<out>/<kind>-<label>``."""
    import copy
    from pathlib import Path

    from graphkit.pipelines.loop import _default_out
    if base is None:
        base = copy.deepcopy(cfg)
        base.preset = None
    out = Path(cfg.out) if cfg.out else _default_out(cfg)
    base.out = str(out / f'{kind}-{label}')
    return base


def baseline_config(cfg, model: str):
    r"""The config of a baseline ``model`` run beside ``cfg``: the
    baseline's own preset for the dataset (or the defaults), with ``cfg``'s
    data section, runs, seed, epoch budget and device, so both see the same
    splits, seeds and number of epochs; its outputs go to
    ``<out>/baseline-<model>``."""
    import copy

    from graphkit.models import resolve
    from graphkit.pipelines import default_config
    resolve(model)  # a clear error for an unknown name, before training
    base = default_config(model, cfg.data.name)
    base.data = copy.deepcopy(cfg.data)
    base.train.runs, base.train.seed = cfg.train.runs, cfg.train.seed
    base.train.epochs = cfg.train.epochs
    base.train.progress = cfg.train.progress
    base.device, base.deterministic = cfg.device, cfg.deterministic
    return _beside(cfg, model, base)


def encoder_baseline_config(cfg):
    r"""The config that trains ``cfg``'s encoder (e.g. Mowst's strong
    expert) alone with the same model settings, optimiser, data, splits,
    seeds and epochs; its outputs go to ``<out>/baseline-<encoder>``."""
    name = cfg.model.encoder or 'gcn'
    base = _beside(cfg, name)
    base.model.name, base.model.encoder = name, None
    base.train.strategy = None
    return base


def ablation_baseline_config(cfg, model: str, kind: str = 'baseline'):
    r"""``cfg`` with the model swapped for ``model`` (e.g. NCN's GAE
    ablation) and every other setting kept: the same encoder, widths,
    optimiser, data, splits, seeds and epochs; its outputs go to
    ``<out>/<kind>-<model>``."""
    from graphkit.models import resolve
    resolve(model)  # a clear error for an unknown name, before training
    base = _beside(cfg, model, kind=kind)
    base.model.name = model
    return base


def compare_config(cfg, model: str):
    r"""``--compare``: ``model`` trained with every setting of ``cfg``
    (the protocol of reference codes that train all models through one
    script with one set of hyperparameters); outputs in
    ``<out>/compare-<model>``."""
    return ablation_baseline_config(cfg, model, kind='compare')


def backprop_baseline_config(cfg):
    r"""The same model, data, splits, seeds and settings as ``cfg``,
    trained end to end by backprop (the comparison for layer-local
    strategies); its outputs go to ``<out>/baseline-backprop``."""
    base = _beside(cfg, 'backprop')
    base.train.strategy = 'backprop'
    return base


def _cmd_run(args: argparse.Namespace) -> int:
    from graphkit.models import resolve
    from graphkit.pipelines import fit
    from graphkit.pipelines import results as R
    cfg = config_from_args(args)
    if args.no_baseline and (args.baseline or args.compare):
        from graphkit.pipelines.config import ConfigError
        flag = '--baseline' if args.baseline else '--compare'
        raise ConfigError(f"--no-baseline and {flag} contradict each "
                          f"other; give one of them")
    baselines = [baseline_config(cfg, name) for name in args.baseline]
    baselines += [compare_config(cfg, name) for name in args.compare]
    entry = resolve(cfg.model.name)
    auto = not (args.baseline or args.compare or args.no_baseline)
    if entry.compare_encoder and auto:
        baselines.append(encoder_baseline_config(cfg))
    if auto:
        baselines += [ablation_baseline_config(cfg, name)
                      for name in entry.compare_with]
    if cfg.train.strategy and auto:
        from graphkit.pipelines.strategies import resolve_strategy
        if getattr(resolve_strategy(cfg.train.strategy), 'compare_backprop',
                   False):
            baselines.append(backprop_baseline_config(cfg))
    confidences: dict = {}
    callbacks = [_confidence_keeper(confidences)] if args.plot else []
    summary = fit(cfg, resume=args.resume, callbacks=callbacks)
    summaries = [summary] + [fit(b, resume=args.resume) for b in baselines]
    from graphkit.pipelines.distributed import env_rank
    if cfg.parallel.mode != 'none' and env_rank() != 0:
        return 0   # rank 0 reports
    print(R.markdown_table(summaries))
    extra = R.extra_table(summaries)
    if extra:
        print(extra)
    for s in summaries:
        print(s.line())
    if args.plot:
        from pathlib import Path
        from graphkit.pipelines.loop import _default_out
        out = Path(cfg.out) if cfg.out else _default_out(cfg)
        if len(summaries) > 1:   # the model and its baselines together
            path = R.plot_history([(s.model, s.records) for s in summaries],
                                  out / 'curves.png', summary.metric)
        else:
            path = R.plot_history(summary.records, out / 'curves.png',
                                  summary.metric)
        print(f'curves: {path}')
        if confidences:
            path = R.plot_confidence(
                confidences, out / 'confidence.png',
                f'{cfg.model.name} ({cfg.model.encoder or "gcn"}) on '
                f'{cfg.data.name}, selected epoch')
            print(f'confidence distribution: {path}')
    return 0


def _confidence_keeper(store: dict):
    r"""A fit callback keeping, per run, the weak-expert confidences of the
    test nodes at the selected (best-validation) epoch of mixture-of-expert
    models."""
    def keep(run, epoch, metrics, trainer):
        model = trainer.model
        best = trainer.best or {}
        if not hasattr(model, 'experts') or best.get('epoch') != epoch:
            return
        out = trainer.task.predict(model, call=model.experts)
        mask = trainer.task.masks['test'].to(out.confidence.device)
        store[run] = out.confidence[mask].cpu()
    return keep


def _cmd_plot(args: argparse.Namespace) -> int:
    from graphkit.pipelines import results as R
    if args.label and len(args.label) != len(args.folders):
        raise ValueError(f"--label was given {len(args.label)} time(s) for "
                         f"{len(args.folders)} folder(s): give one per "
                         f"folder or none")
    groups, metrics = [], set()
    for i, folder in enumerate(args.folders):
        label, metric, runs = R.load_run_folder(folder)
        groups.append((args.label[i] if args.label else label, runs))
        metrics.add(metric)
    metric = metrics.pop() if len(metrics) == 1 else 'score'
    path = R.plot_history(groups, args.to, metric, test=args.test)
    print(f'curves: {path}')
    return 0


def _cmd_datasets(args: argparse.Namespace) -> int:
    from graphkit.data import dataset_names, get_spec
    from graphkit.data.sources import resolve_mirror, resolve_root
    root = resolve_root(args.data_root)
    mirror = resolve_mirror(args.mirror)
    names = dataset_names(include_ogb=args.ogb)
    if not args.ogb:
        names += ['ogbl-ddi', 'ogbg-molesol', 'ogbg-molfreesolv',
                  'ogbg-molbace', 'ogbg-molbbbp', 'ogbn-arxiv',
                  'ogbl-collab']
    print(f'{"name":<20} {"task":<15} {"files":<8} description')
    for name in names:
        spec = get_spec(name)
        layout = spec.layout(spec.name, None) if spec.layout else None
        if layout is None:
            where = 'built-in'
        elif not layout.missing(root):
            where = 'root'
        elif mirror is not None and not layout.missing(mirror):
            where = 'mirror'
        else:
            where = 'missing'
        tasks = '/'.join(spec.supported_tasks)
        print(f'{spec.name:<20} {tasks:<15} {where:<8} {spec.description}')
    print(f'\nroot: {root}\nmirror: {mirror or "(not set)"}')
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from graphkit.models import model_names, resolve
    for name in model_names(args.task):
        e = resolve(name)
        print(f'{name:<20} {e.kind:<8} {"/".join(e.tasks):<18} '
              f'{e.description}')
    return 0


def _cmd_presets(args: argparse.Namespace) -> int:
    from graphkit.pipelines.presets import _PRESETS, preset_names
    for name in preset_names():
        doc = (_PRESETS[name].__doc__ or '').strip().split('\n')[0]
        print(f'{name:<24} {doc}')
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:
        argv = ['run']
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    verbose = getattr(args, 'verbose', False)
    if args.command == 'run':
        # freed blocks stay in the heap for the next step instead of
        # being re-faulted page by page (see graphkit.utils.allocator)
        from graphkit.utils.allocator import keep_freed_memory
        keep_freed_memory()
    from graphkit.pipelines.distributed import env_rank
    rank = env_rank()
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level if rank == 0 else logging.WARNING,
                        format='%(asctime)s %(levelname)s %(name)s: '
                        '%(message)s', datefmt='%H:%M:%S')
    from graphkit.data.sources import DatasetNotAvailableError
    from graphkit.pipelines.config import ConfigError
    from graphkit.pipelines.strategies import NonFiniteLossError
    from graphkit.pipelines.distributed import RankFailureError
    commands = {'run': _cmd_run, 'datasets': _cmd_datasets,
                'models': _cmd_models, 'presets': _cmd_presets,
                'plot': _cmd_plot}
    try:
        return commands[args.command](args)
    except (ConfigError, DatasetNotAvailableError, NonFiniteLossError,
            ValueError, TypeError) as e:
        print(f'graphkit: error: {e}', file=sys.stderr)
        if verbose:
            raise
        return 2
    except RankFailureError as e:
        print(f'graphkit: error: {e}', file=sys.stderr)
        return 3
