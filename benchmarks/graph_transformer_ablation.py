r"""The graph transformer paper's ablations, side by side on one dataset:
sparse (neighbour) vs full attention, BatchNorm vs LayerNorm, LapPE vs no
positional encoding (and random-walk PE), plus GPS.

    python benchmarks/graph_transformer_ablation.py --dataset pattern \
        --graphs 1000 200 200 --layers 4 --hidden 64 --epochs 40
    python benchmarks/graph_transformer_ablation.py --dataset proteins

Every setting starts from the dataset's ``graph-transformer-<dataset>``
preset (the paper's config for PATTERN / CLUSTER, 10-fold CV for TU sets)
and changes only the named switches, so all settings share data, splits,
seeds, optimiser and epoch budget. ``--graphs`` shrinks the synthetic sets
(train / valid / test graphs) and ``--layers`` / ``--hidden`` / ``--epochs``
the model and budget, for a CPU. ``--resume`` continues interrupted
settings from their checkpoints under ``--out``.
"""
import argparse
import copy
import json
from pathlib import Path

# name -> (model, attention, norm, pe)
SETTINGS = {
    'sparse, BN, LapPE': ('graph-transformer', 'sparse', 'batch', 'lap'),
    'sparse, BN, no PE': ('graph-transformer', 'sparse', 'batch', 'none'),
    'sparse, LN, LapPE': ('graph-transformer', 'sparse', 'layer', 'lap'),
    'sparse, LN, no PE': ('graph-transformer', 'sparse', 'layer', 'none'),
    'full, BN, LapPE': ('graph-transformer', 'full', 'batch', 'lap'),
    'full, LN, LapPE': ('graph-transformer', 'full', 'layer', 'lap'),
    'sparse, BN, RWPE': ('graph-transformer', 'sparse', 'batch', 'rw'),
    'GPS (GIN + attention), LapPE': ('gps', 'sparse', 'batch', 'lap'),
}


def config(args, setting):
    from graphkit.pipelines import get_preset
    model, attention, norm, pe = SETTINGS[setting]
    cfg = copy.deepcopy(get_preset(f'graph-transformer-{args.dataset}'))
    if args.graphs and args.dataset in ('pattern', 'cluster'):
        cfg.data.options = dict(zip(('num_train', 'num_valid', 'num_test'),
                                    args.graphs))
    m = cfg.model
    m.name, m.attention, m.norm, m.pe = model, attention, norm, pe
    if model == 'gps':
        m.heads, m.local, m.attn_dropout = 4, 'gine', 0.5
    if args.layers:
        m.num_layers = args.layers
    if args.hidden:
        m.hidden_channels = args.hidden
    if args.epochs:
        cfg.train.epochs = args.epochs
    if args.runs:
        cfg.train.runs = args.runs
    if args.batch_size:
        cfg.train.batch_size = args.batch_size
    cfg.train.progress = False
    slug = setting.replace(', ', '-').replace(' ', '_').replace('(', '') \
        .replace(')', '').replace('+', '')
    cfg.out = str(Path(args.out) / args.dataset / slug)
    return cfg


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--dataset', default='pattern')
    p.add_argument('--settings', nargs='+', default=list(SETTINGS),
                   choices=list(SETTINGS), metavar='SETTING')
    p.add_argument('--graphs', type=int, nargs=3, default=None,
                   metavar=('TRAIN', 'VALID', 'TEST'))
    p.add_argument('--layers', type=int)
    p.add_argument('--hidden', type=int)
    p.add_argument('--epochs', type=int)
    p.add_argument('--runs', type=int)
    p.add_argument('--batch-size', type=int)
    p.add_argument('--out', default='runs/graph-transformer-ablation')
    p.add_argument('--resume', action='store_true')
    args = p.parse_args()

    from graphkit.pipelines import fit
    rows = []
    for setting in args.settings:
        cfg = config(args, setting)
        s = fit(cfg, resume=args.resume)
        rows.append((setting, s))
        print(f"{setting}: {s.line()}", flush=True)
    metric = rows[0][1].metric
    print(f"\n{args.dataset}: test {metric} (%), mean ± s.d. over "
          f"{rows[0][1].runs} run(s)\n")
    print("| setting | test | valid | s/epoch |")
    print('|---|---|---|---|')
    for setting, s in rows:
        print(f"| {setting} | {100 * s.test_mean:.2f} ± "
              f"{100 * s.test_std:.2f} | {100 * s.valid_mean:.2f} ± "
              f"{100 * s.valid_std:.2f} | {s.epoch_time_s:.2f} |")
    out = Path(args.out) / args.dataset / 'summary.json'
    out.write_text(json.dumps({k: s.to_dict() for k, s in rows}, indent=1,
                              default=str))


if __name__ == '__main__':
    main()
