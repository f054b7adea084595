r"""Distributed modes: epoch time as processes are added, and communication
volume as the model deepens.

Each setting is a real ``torchrun`` launch of ``graphkit run`` (gloo on CPU,
NCCL on GPUs); the per-epoch numbers come from the run records: training
time per epoch and the bytes all ranks sent per training epoch, next to the
notes' formula (graph: :math:`2LRdb`; pipeline: :math:`2(S-1)Ndb` per state
tensor).

    python benchmarks/distributed.py                      # csbm, 2 cores
    python benchmarks/distributed.py --dataset squirrel --hidden 100 \
        --procs 1 2 4 --depths 8 16 32

Goal (GNNPipe's argument): pipeline traffic stays flat as depth grows,
graph-parallel traffic grows linearly with it.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def launch(mode: str, procs: int, args, layers: int, out: Path) -> dict:
    cmd = [sys.executable, '-m', 'torch.distributed.run',
           '--nproc-per-node', str(procs), '--master-port',
           str(29500 + (os.getpid() % 2000)), '-m', 'graphkit', 'run',
           '--model', args.model, '--dataset', args.dataset,
           '--layers', str(layers), '--epochs', str(args.epochs),
           '--runs', '1', '--parallel', mode, '--out', str(out),
           '--no-progress', '--set', f'model.hidden_channels={args.hidden}',
           '--set', 'train.eval_every=1000']
    if args.options:
        cmd += ['--set', f'data.options={args.options}']
    if mode == 'ddp':
        cmd += ['--set', f'train.batch_size={args.batch_size}']
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS',
                                                          '1'))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env,
                          timeout=args.timeout)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    rec = json.loads((out / 'runs.jsonl').read_text().splitlines()[-1])
    hist = rec['history'][1:] or rec['history']   # skip the warm-up epoch
    avg = {k: sum(h.get(k, 0.0) for h in hist) / len(hist)
           for k in ('bytes_total', 'bytes_formula')}
    return {'epoch_s': rec['epoch_time_s'], **avg}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--dataset', default='csbm')
    p.add_argument('--options', default='{"num_nodes": 3000, '
                   '"avg_degree": 16}', help='csbm generator options')
    p.add_argument('--model', default='resgcn')
    p.add_argument('--hidden', type=int, default=64)
    p.add_argument('--layers', type=int, default=16)
    p.add_argument('--epochs', type=int, default=4)
    p.add_argument('--batch-size', type=int, default=512)
    p.add_argument('--procs', type=int, nargs='+', default=[1, 2, 4])
    p.add_argument('--depths', type=int, nargs='+', default=[8, 16, 32])
    p.add_argument('--modes', nargs='+',
                   default=['ddp', 'graph', 'pipeline', 'hybrid'])
    p.add_argument('--timeout', type=float, default=1800)
    args = p.parse_args()
    if args.dataset != 'csbm':
        args.options = ''
    tmp = Path(tempfile.mkdtemp(prefix='bench-distributed-'))

    print(f'## Epoch time (s), {args.model} {args.layers} layers, '
          f'{args.dataset}\n')
    print('| mode | ' + ' | '.join(f'{n} proc' for n in args.procs) +
          ' | speed-up |')
    print('|---|' + '---|' * (len(args.procs) + 1))
    for mode in args.modes:
        times = []
        for n in args.procs:
            if mode == 'hybrid' and (n < 4 or n % 2):
                times.append(None)   # 2 ways x at least 2 stages
                continue
            res = launch(mode, n, args, args.layers, tmp / f'{mode}-{n}')
            times.append(res['epoch_s'])
        cells = ['-' if t is None else f'{t:.3f}' for t in times]
        done = [t for t in times if t is not None]
        ratio = f'{done[0] / done[-1]:.2f}x' if len(done) > 1 else '-'
        print(f'| {mode} | ' + ' | '.join(cells) + f' | {ratio} |')

    n = max(args.procs)
    print(f'\n## Bytes per training epoch, all {n} ranks, by depth\n')
    print('| layers | graph | graph formula | pipeline | pipeline formula '
          '| graph / pipeline |')
    print('|---|---|---|---|---|---|')
    for depth in args.depths:
        g = launch('graph', n, args, depth, tmp / f'graph-d{depth}')
        q = launch('pipeline', n, args, depth, tmp / f'pipe-d{depth}')
        print(f"| {depth} | {g['bytes_total']:.3e} | "
              f"{g['bytes_formula']:.3e} | {q['bytes_total']:.3e} | "
              f"{q['bytes_formula']:.3e} | "
              f"{g['bytes_total'] / q['bytes_total']:.2f}x |")


if __name__ == '__main__':
    main()
