r"""Every component on a GPU against the same component on the CPU: the same
weights must give the same evaluation and the same gradients, and the
script prints the training-step time on each device.

    python benchmarks/devices.py [--cases nsd-diag:texas mowst:texas ...]

For each case the registered preset's model is built once on the CPU and
copied to ``cuda`` (same initial weights, dropout set to 0 and the same seed before each step, so both
devices compute the same function). Checked, per case:

* ``eval``: the evaluation's validation loss on both devices (relative
  difference) and its metric (absolute difference, a fraction);
* ``grad``: after one training step of the run's own strategy on the same
  batch, the relative difference of all gradients, ``|g_gpu - g_cpu| /
  |g_cpu|`` (2-norms over every parameter);
* the median time of a training step on each device (the GPU's after
  ``torch.cuda.synchronize``) and the CPU / GPU ratio.

A case passes with a relative loss difference below 1e-4 and a gradient
difference below 1e-3 (float32 sums in another order). With ``--device cpu``
the script checks itself: two copies on the CPU, run on one thread, must
agree exactly. Where a task draws
random samples for its batches (negative edges, BPR triples), both devices
draw them from the same seeded CPU generator. The script exits with status 1
if any case fails.
"""
import argparse
import copy
import statistics
import sys
import time
import traceback

import torch

# (model, dataset, config overrides); a model name "name/backbone" sets the
# encoder, "name+strategy" the training strategy.
CASES = {
    'gcn:cora': ('gcn', 'cora', {}),
    'gcnii:texas': ('gcnii', 'texas', {'model.num_layers': 8}),
    'resgcn:texas': ('resgcn', 'texas', {'model.num_layers': 8}),
    'higcn:texas': ('higcn', 'texas', {}),
    'nsd-diag:texas': ('nsd-diag', 'texas', {}),
    'nsd-bundle:texas': ('nsd-bundle', 'texas', {}),
    'nsd-general:texas': ('nsd-general', 'texas', {}),
    'nsd-diag:squirrel': ('nsd-diag', 'squirrel', {}),
    'sheaf4rec:movielens-100k': ('sheaf4rec', 'movielens-100k', {}),
    'lightgcn:movielens-100k': ('lightgcn', 'movielens-100k', {}),
    'ncnc:cora': ('ncnc', 'cora', {}),
    'mowst/sage:texas': ('mowst/sage', 'texas', {}),
    'mowst-star/gcn:texas': ('mowst-star/gcn', 'texas', {}),
    'gcn+forward-sf:cora': ('gcn+forward-sf', 'cora', {}),
    'graph-transformer:texas': ('graph-transformer', 'texas', {}),
    'graph-transformer:mutag': ('graph-transformer', 'mutag', {}),
    'gps:mutag': ('gps', 'mutag', {}),
}


def _case(key):
    r"""A named case, or any ``model:dataset`` (with ``/encoder`` and
    ``+strategy`` as in :data:`CASES`) with the preset's settings."""
    if key in CASES:
        return CASES[key]
    spec, sep, dataset = key.rpartition(':')
    if not sep or not spec or not dataset:
        raise ValueError(f"case '{key}' is not model:dataset (e.g. "
                         f"nsd-diag:texas, mowst/sage:texas)")
    return spec, dataset, {}


def _config(spec, dataset, overrides):
    from graphkit.pipelines import default_config
    from graphkit.pipelines.config import apply_overrides
    name, _, strategy = spec.partition('+')
    name, _, encoder = name.partition('/')
    cfg = default_config(name, dataset)
    if encoder:
        cfg.model.encoder = encoder
    if strategy:
        cfg.train.strategy = strategy
    cfg.train.runs = 1
    apply_overrides(cfg, [f'{k}={v}' for k, v in overrides.items()])
    return cfg


def _no_dropout(model):
    from graphkit.utils.tensor import set_dropout
    set_dropout(model, 0.0)
    for m in model.modules():      # e.g. input_dropout, PyG MLP's lists
        for k, v in list(vars(m).items()):
            if 'drop' not in k.lower() and k != 'dprate':
                continue
            if isinstance(v, float):
                setattr(m, k, 0.0)
            elif isinstance(v, list) and all(isinstance(p, float)
                                             for p in v):
                setattr(m, k, [0.0] * len(v))


def _trainer(cfg, bundle, device):
    from graphkit.pipelines.loop import Trainer, run_task
    return Trainer(cfg, run_task(cfg, bundle, device), 0, device)


def _step(trainer, epoch=1):
    from torch_geometric import seed_everything
    from graphkit.data import loaders
    seed_everything(epoch)   # the same draws (on the CPU) on both devices
    gen = loaders.epoch_generator(trainer.seed, epoch)
    trainer.strategy.begin_epoch(epoch)
    batch = next(iter(trainer.task.train_batches(gen)))
    return trainer.strategy.step(trainer.task, batch)['loss']


def _grads(model):
    return [p.grad.detach().double().cpu().flatten()
            for p in model.parameters() if p.grad is not None]


def check(key, steps, device):
    from graphkit.pipelines.loop import load_bundle
    spec, dataset, overrides = _case(key)
    cfg = _config(spec, dataset, overrides)
    bundle = load_bundle(cfg)
    cpu = _trainer(cfg, bundle, torch.device('cpu'))
    gpu = _trainer(cfg, bundle, device)
    _no_dropout(cpu.model)
    _no_dropout(gpu.model)
    gpu.model.load_state_dict(copy.deepcopy(cpu.model.state_dict()))
    s_cpu, s_gpu = cpu.task.evaluate(cpu.model), gpu.task.evaluate(gpu.model)
    loss_diff = abs(s_gpu['valid_loss'] - s_cpu['valid_loss']) / max(
        abs(s_cpu['valid_loss']), 1e-12)
    metric_diff = abs(s_gpu['valid'] - s_cpu['valid'])
    _step(cpu)
    _step(gpu)
    gc, gg = _grads(cpu.model), _grads(gpu.model)
    if len(gc) != len(gg) or not gc:
        grad_diff = float('nan')
    else:
        a, b = torch.cat(gc), torch.cat(gg)
        grad_diff = float((b - a).norm() / a.norm().clamp_min(1e-30))
    times = {}
    for name, tr in (('cpu', cpu), ('gpu', gpu)):
        dev = next(tr.model.parameters()).device
        ts = []
        for i in range(steps):
            if dev.type == 'cuda':
                torch.cuda.synchronize(dev)
            t0 = time.perf_counter()
            _step(tr, epoch=2 + i)
            if dev.type == 'cuda':
                torch.cuda.synchronize(dev)
            ts.append(time.perf_counter() - t0)
        times[name] = statistics.median(ts)
    # the same device must agree exactly; another one to rounding
    tol = (0.0, 0.0) if device.type == 'cpu' else (1e-4, 1e-3)
    ok = loss_diff <= tol[0] and grad_diff <= tol[1]
    return ok, loss_diff, metric_diff, grad_diff, times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--cases', nargs='+', default=list(CASES),
                        metavar='CASE',
                        help=f"model:dataset pairs, e.g. mowst/sage:texas "
                             f"or gcn+forward-sf:cora (default: "
                             f"{', '.join(CASES)})")
    parser.add_argument('--steps', type=int, default=5,
                        help='timed training steps per device')
    parser.add_argument('--device', default='cuda',
                        help="the device compared with the CPU; 'cpu' "
                             "checks the harness itself (every difference "
                             "must then be 0)")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        sys.exit(f"benchmarks/devices.py compares the CPU with a CUDA "
                 f"device, and none is available "
                 f"(torch.cuda.is_available() = False); '--device cpu' "
                 f"checks the harness on the CPU alone")
    if device.type == 'cpu':
        # one thread: some multithreaded CPU kernels (e.g. the embedding
        # gradient's accumulation) sum in a varying order
        torch.set_num_threads(1)
    name = (torch.cuda.get_device_name(device) if device.type == 'cuda'
            else 'CPU against CPU, one thread')
    print(f'{name}, torch {torch.__version__}')
    other = 'GPU' if device.type == 'cuda' else 'CPU copy'
    print(f'| case | valid loss rel. diff | valid metric diff | grad rel. '
          f'diff | CPU s/step | {other} s/step | CPU / {other} | ok |')
    print('|---|---|---|---|---|---|---|---|')
    failed = []
    for key in args.cases:
        try:
            ok, ld, md, gd, t = check(key, args.steps, device)
        except Exception as e:    # report every case, then fail at the end
            failed.append(key)
            where = [f for f in traceback.extract_tb(e.__traceback__)
                     if 'graphkit' in f.filename]
            at = (f' (at {where[-1].filename.split("graphkit")[-1]}:'
                  f'{where[-1].lineno})' if where else '')
            msg = str(e).splitlines()[0][:200] if str(e) else ''
            print(f'| {key} | error{at}: {type(e).__name__}: {msg} '
                  f'|||||||', flush=True)
            continue
        if not ok:
            failed.append(key)
        print(f"| {key} | {ld:.1e} | {md:.4f} | {gd:.1e} | {t['cpu']:.4f} "
              f"| {t['gpu']:.4f} | {t['cpu'] / t['gpu']:.1f} | "
              f"{'yes' if ok else 'NO'} |", flush=True)
    if failed:
        sys.exit(f"{len(failed)} case(s) differ between the devices or "
                 f"failed: {', '.join(failed)}")


if __name__ == '__main__':
    main()
