r"""Forward learning against backprop as depth grows: peak memory and
training time per epoch of a GCN stack with 2 to 32 layers, trained by
backprop, by SF with cached aggregation and by SF without it.

    python benchmarks/forward_memory.py [--datasets citeseer squirrel] \
        [--layers 2 4 8 16 32] [--epochs 5]

Each measurement runs in a fresh subprocess (peak resident memory above the
level after loading the data and building the model, or the CUDA peak on a
GPU). The subprocesses run with a fixed glibc mmap threshold, so that
freed tensors leave the resident set and the peak tracks live memory
(``--glibc-default`` keeps the adaptive threshold). SF runs its greedy schedule with ``--epochs`` + 1 epochs per layer:
each layer trains on a fixed input, and moving up costs one no-gradient
pass of the finished layer. Its epoch time here is one epoch of every layer
(the median per layer, summed over layers), the same work as one backprop
epoch; the one-off input passes are summed separately. Peak memory covers
training every layer. Ratios are to backprop at the same depth.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (FIXED_MMAP_THRESHOLD, measure, peak_mb,  # noqa: E402
                    reset_peak)


def _config(dataset, layers, strategy, cache):
    from graphkit.pipelines import (DataConfig, ModelConfig, OptimConfig,
                                    RunConfig, TrainConfig)
    return RunConfig(
        data=DataConfig(name=dataset, split='random',
                        ratios=(0.64, 0.16, 0.2), normalize_features=True),
        model=ModelConfig(name='gcn', hidden_channels=128,
                          num_layers=layers, dropout=0.0),
        optim=OptimConfig(lr=1e-3, weight_decay=5e-4),
        train=TrainConfig(epochs=1000, runs=1, strategy=strategy,
                          forward_cache=cache, progress=False))


def _child(dataset, layers, mode, epochs, queue):
    import torch

    from graphkit import data as gdata
    from graphkit.pipelines.loop import Trainer
    from graphkit.pipelines.tasks import make_task
    torch.manual_seed(0)
    strategy = 'backprop' if mode == 'backprop' else 'forward-sf'
    cfg = _config(dataset, layers, strategy, mode == 'sf-cached')
    dc = cfg.data
    bundle = gdata.load(dc.name, split=dc.split, ratios=dc.ratios,
                        normalize_features=True)
    device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    task = make_task(bundle, device=device)
    trainer = Trainer(cfg, task, 0, device)
    if device.type == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = reset_peak()

    def timed_epochs(first_epoch):
        t0 = time.perf_counter()
        trainer.train_epoch(first_epoch)   # SF: includes the input pass
        first = time.perf_counter() - t0
        times = []
        for e in range(first_epoch + 1, first_epoch + epochs + 1):
            t0 = time.perf_counter()
            trainer.train_epoch(e)
            if device.type == 'cuda':
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        med = statistics.median(times)
        return med, max(first - med, 0.0)

    if mode == 'backprop':
        epoch, setup = timed_epochs(1)
    else:
        # the greedy schedule itself, epochs + 1 epochs per layer: one
        # epoch of every layer (each on its frozen input) summed, and the
        # one-off input passes (the first layer's, then each move up)
        strategy = trainer.strategy
        strategy.layer_epochs, strategy.patience = epochs + 1, 0
        epoch = setup = 0.0
        e = 0
        for layer in range(layers):
            times = []
            for k in range(epochs + 1):
                e += 1
                t0 = time.perf_counter()
                trainer.train_epoch(e)
                if device.type == 'cuda':
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                strategy.end_epoch(e, None)
                setup += time.perf_counter() - t0
            med = statistics.median(times[1:])
            epoch += med
            if layer == 0:
                setup += max(times[0] - med, 0.0)
    if device.type == 'cuda':
        mem = (torch.cuda.max_memory_allocated() - before) / 2**20
    else:
        mem = peak_mb() - before
    queue.put((epoch, setup, mem))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--datasets', nargs='+',
                        default=['citeseer', 'squirrel'])
    parser.add_argument('--layers', nargs='+', type=int,
                        default=[2, 4, 8, 16, 32])
    parser.add_argument('--epochs', type=int, default=5)
    parser.add_argument('--timeout', type=float, default=900)
    parser.add_argument('--glibc-default', action='store_true',
                        help="keep glibc's adaptive mmap threshold (the "
                             "peak then also counts freed blocks the "
                             "allocator kept)")
    args = parser.parse_args()
    print('| dataset | layers | method | s/epoch | vs backprop | one-off '
          'input pass (s) | peak MB | vs backprop |')
    print('|---|---|---|---|---|---|---|---|')
    for ds in args.datasets:
        for layers in args.layers:
            base = None
            for mode in ('backprop', 'sf-cached', 'sf-uncached'):
                res = measure(_child, (ds, layers, mode, args.epochs),
                              args.timeout,
                              env=None if args.glibc_default else
                              FIXED_MMAP_THRESHOLD)
                if res is None:
                    print(f'| {ds} | {layers} | {mode} | failed or timed '
                          f'out | | | | |', flush=True)
                    continue
                epoch, setup, mem = res
                base = base or (epoch, mem)
                print(f'| {ds} | {layers} | {mode} | {epoch:.4f} | '
                      f'{epoch / base[0]:.2f}x | {setup:.3f} | {mem:.1f} | '
                      f'{mem / max(base[1], 1e-9):.2f}x |', flush=True)


if __name__ == '__main__':
    main()
