r"""An NSD training step of the working tree against an earlier commit,
interleaved in one process: the step-time ratio and the largest loss
difference.

    python benchmarks/sheaf_compare.py --base HEAD~1 --family general \
        [--dataset squirrel] [--steps 20]

Timings of the sheaf steps move by 10-20% between runs on a shared CPU, so
a change is judged here by steps that alternate between the two versions
of the code (the order swapped every round), each on its own model built
from the same seed and settings as ``benchmarks/sheaf.py``. The base commit
is checked out into a temporary ``git worktree`` and imported under the
same package name after the working tree's modules are set aside, so the
two models run the code of their own version. Both processes keep freed
memory in the heap (``graphkit.utils.allocator.keep_freed_memory``), as
``graphkit run`` does.
"""
import argparse
import importlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]


def _unload() -> None:
    for name in list(sys.modules):
        if name in ('graphkit', 'sheaf', 'common') or \
                name.startswith('graphkit.'):
            del sys.modules[name]


def _stepper(tree: Path, family: str, dataset: str):
    r"""A training step of an NSD model built from the code in ``tree``,
    and the list its losses go to."""
    _unload()
    sys.path[:0] = [str(tree), str(tree / 'benchmarks')]
    try:
        bench = importlib.import_module('sheaf')
        from graphkit.models import NSD
        from graphkit.models.sheaf import sheaf_graph
        try:
            from graphkit.utils.allocator import keep_freed_memory
        except ImportError:     # a commit from before the setting
            keep_freed_memory = None
    finally:
        del sys.path[:2]
    if keep_freed_memory is not None:
        keep_freed_memory()
    torch.manual_seed(0)
    x, ei, n, target = bench._inputs(dataset)
    cfg = bench.SETTINGS[dataset]
    width = (cfg['stalk_dim'] + int(cfg.get('add_lp', False))) * \
        cfg['hidden_channels']
    model = NSD(x.size(1), target[2] if target else width, family=family,
                **cfg)
    graph = sheaf_graph(ei, n)
    emb = torch.nn.Parameter(x.clone()) if target is None else None
    opt = torch.optim.Adam(list(model.parameters()) +
                           ([emb] if emb is not None else []), lr=0.01)
    losses: list[float] = []

    def step() -> None:
        opt.zero_grad()
        out = model(emb if emb is not None else x, graph)
        if target is None:
            loss = out.pow(2).mean()
        else:
            y, mask, _ = target
            loss = F.cross_entropy(out[mask], y[mask])
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return step, losses


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--base', required=True,
                   help='the commit to compare against (e.g. HEAD~1)')
    p.add_argument('--family', default='diag',
                   choices=['diag', 'bundle', 'general'])
    p.add_argument('--dataset', default='squirrel',
                   choices=['squirrel', 'ogbl-ddi'])
    p.add_argument('--steps', type=int, default=20)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / 'base'
        subprocess.run(['git', '-C', str(ROOT), 'worktree', 'add', '-f',
                        '--detach', str(base), args.base], check=True,
                       capture_output=True)
        try:
            old, old_losses = _stepper(base, args.family, args.dataset)
            new, new_losses = _stepper(ROOT, args.family, args.dataset)
            for _ in range(3):          # warm-up: caches and the heap
                old()
                new()
            times: dict = {old: [], new: []}
            for i in range(args.steps):
                for f in ((old, new) if i % 2 == 0 else (new, old)):
                    t0 = time.perf_counter()
                    f()
                    times[f].append(time.perf_counter() - t0)
        finally:
            subprocess.run(['git', '-C', str(ROOT), 'worktree', 'remove',
                            '--force', str(base)], capture_output=True)
    t_old, t_new = (statistics.median(times[f]) for f in (old, new))
    diff = max(abs(a - b) for a, b in zip(old_losses, new_losses))
    print(f'NSD {args.family} on {args.dataset}, {args.steps} interleaved '
          f'steps: {args.base} {t_old:.4f} s, working tree {t_new:.4f} s, '
          f'ratio {t_new / t_old:.3f}; largest loss difference {diff:.2e}')


if __name__ == '__main__':
    main()
