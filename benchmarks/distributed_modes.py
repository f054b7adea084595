r"""The four distributed modes side by side on one deep model and graph:
test accuracy at the best-validation epoch, epoch time, bytes sent per
training epoch (all ranks) and the reduction against graph-parallel, and a
PNG of the four loss curves.

    python benchmarks/distributed_modes.py --dataset squirrel \
        --model resgcn --layers 32 --procs 4 --epochs 100 \
        --plot runs/distributed-squirrel-resgcn.png

Each mode is a real ``torchrun`` launch of ``graphkit run`` with the same
model, data split (Geom-GCN split 0 for the Geom-GCN graphs), seed and
epoch budget. ``ddp`` samples ``--fanout`` neighbours per node at each
of the model's layers; its default batch holds every training seed, so
each rank takes a quarter of them and every mode makes one optimiser step
per epoch. ``--resume`` reuses finished modes from ``--out`` and
continues an interrupted one from its last checkpoint. The
notes' formulas: graph-parallel :math:`2LRdb`, pipeline
:math:`2(S-1)Ndb` per state tensor, so their ratio grows with :math:`L`.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

MODES = ('ddp', 'graph', 'pipeline', 'hybrid')


def launch(mode, args, out: Path, extra: tuple[str, ...] = ()) -> dict:
    r"""One ``torchrun`` launch of ``graphkit run`` in ``mode`` (``extra``:
    more ``KEY=VALUE`` config overrides); returns its run record."""
    records = out / 'runs.jsonl'
    if not (args.resume and records.is_file()):
        cmd = [sys.executable, '-m', 'torch.distributed.run',
               '--nproc-per-node', str(args.procs), '--master-port',
               str(29500 + (os.getpid() % 2000)), '-m', 'graphkit', 'run',
               '--model', args.model, '--dataset', args.dataset,
               '--layers', str(args.layers), '--epochs', str(args.epochs),
               '--runs', '1', '--parallel', mode, '--out', str(out),
               '--no-progress',
               '--set', f'model.hidden_channels={args.hidden}',
               '--set', f'model.dropout={args.dropout}',
               '--set', f'optim.lr={args.lr}',
               '--set', 'data.undirected=true']
        if args.split:
            cmd += ['--split', args.split]
        for kv in (*args.set, *extra):
            cmd += ['--set', kv]
        if args.resume:  # continue an interrupted mode from its checkpoint
            cmd.append('--resume')
        if mode == 'ddp':
            cmd += ['--set', f'train.batch_size={args.batch_size}',
                    '--set', 'train.num_neighbors=' +
                    ','.join([str(args.fanout)] * args.layers)]
        env = dict(os.environ,
                   OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', '1'))
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                              timeout=args.timeout)
        if proc.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n"
                               f"{proc.stderr[-3000:]}")
    return json.loads(records.read_text().splitlines()[-1])


def plot_losses(recs: dict, path: str, title: str) -> None:
    r"""PNG of the training-loss curves (log scale) of the run records
    ``recs`` (label -> record)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, rec in recs.items():
        ax.plot([h['epoch'] for h in rec['history']],
                [h['loss'] for h in rec['history']], label=label)
    ax.set_xlabel('epoch')
    ax.set_ylabel('training loss')
    ax.set_yscale('log')
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    print(f'\nloss curves: {path}')


def peak_mb(rec: dict) -> str:
    r"""The largest rank's peak memory of a run record (MiB); older
    records carry rank 0's only, marked so."""
    peaks = [h['peak_memory_mb_max'] for h in rec['history']
             if 'peak_memory_mb_max' in h]
    if peaks:
        return f'{max(peaks):.0f}'
    return f"{rec.get('peak_memory_mb') or float('nan'):.0f} (rank 0)"


def common_parser(description: str) -> argparse.ArgumentParser:
    r"""The model, data and launch options shared by the distributed
    benchmarks."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument('--dataset', default='squirrel')
    p.add_argument('--split', default='geom-gcn')
    p.add_argument('--model', default='resgcn')
    p.add_argument('--layers', type=int, default=32)
    p.add_argument('--hidden', type=int, default=100)
    p.add_argument('--dropout', type=float, default=0.3)
    p.add_argument('--lr', type=float, default=0.005)
    p.add_argument('--epochs', type=int, default=100)
    p.add_argument('--procs', type=int, default=4)
    p.add_argument('--batch-size', type=int, default=10 ** 9,
                   help='ddp global batch (default: all training seeds, '
                        'one step per epoch as in the full-graph modes)')
    p.add_argument('--fanout', type=int, default=10,
                   help='ddp neighbours sampled per node and layer (-1: '
                        'all)')
    p.add_argument('--out', default='runs/distributed-modes')
    p.add_argument('--plot', default=None, help='PNG of the loss curves')
    p.add_argument('--set', action='append', default=[],
                   metavar='KEY=VALUE',
                   help='config override for every launch, e.g. '
                        'parallel.activation_checkpoint=true')
    p.add_argument('--resume', action='store_true')
    p.add_argument('--timeout', type=float, default=7200)
    return p


def main() -> None:
    p = common_parser(__doc__.split('\n')[0])
    p.add_argument('--modes', nargs='+', default=list(MODES),
                   choices=MODES)
    args = p.parse_args()

    base = Path(args.out) / f'{args.dataset}-{args.model}-{args.layers}'
    recs = {m: launch(m, args, base / m) for m in args.modes}

    def per_epoch(rec, key):
        hist = [h for h in rec['history'][1:] if key in h] or \
            [h for h in rec['history'] if key in h]
        return sum(h[key] for h in hist) / len(hist) if hist else None

    ref = per_epoch(recs['graph'], 'bytes_total') if 'graph' in recs \
        else None
    print(f"\n{args.model}, {args.layers} layers, {args.dataset}, "
          f"{args.procs} processes, {args.epochs} epochs\n")
    print('| mode | test acc. (best valid) | best epoch | s/epoch | bytes '
          '/ epoch (all ranks) | formula | graph ÷ mode | peak MiB '
          '(largest rank) |')
    print('|---|---|---|---|---|---|---|---|')
    for mode, rec in recs.items():
        sent = per_epoch(rec, 'bytes_total')
        formula = per_epoch(rec, 'bytes_formula')
        ratio = f'{ref / sent:.2f}x' if ref and sent else '–'
        print(f"| {mode} | {100 * rec['test']:.2f} | {rec['best_epoch']} | "
              f"{rec['epoch_time_s']:.3f} | "
              f"{'–' if sent is None else f'{sent:.3e}'} | "
              f"{'–' if formula is None else f'{formula:.3e}'} | {ratio} | "
              f"{peak_mb(rec)} |")
    if args.plot:
        plot_losses(recs, args.plot, f'{args.model}-{args.layers}, '
                    f'{args.dataset}, {args.procs} processes')


if __name__ == '__main__':
    main()
