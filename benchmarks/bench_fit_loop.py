r"""Overhead of graphkit's fit loop against a hand-written PyG training loop
for the same model, data and settings, run in the same process.

    python benchmarks/bench_fit_loop.py --dataset cora --epochs 200

Prints seconds per epoch of both and their ratio (graphkit / plain), plus the
test accuracy of each, so the comparison is between equal work.
"""
import argparse
import time

import torch
import torch.nn.functional as F

from graphkit.data import load
from graphkit.models import build
from graphkit.pipelines import default_config, fit


def plain_loop(bundle, cfg, epochs: int, seed: int) -> tuple[float, float]:
    torch.manual_seed(seed)
    data = bundle.data
    split = bundle.split_for_run(0, seed)
    model = build('gcn', 'node', in_channels=bundle.num_features,
                  out_channels=bundle.num_classes, cached=True,
                  **cfg.model.hparams())
    opt = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr,
                           weight_decay=cfg.optim.weight_decay)
    best_val, test_at_best, train_time = -1.0, 0.0, 0.0
    for _ in range(epochs):
        t0 = time.perf_counter()
        model.train()
        opt.zero_grad()
        out = model(data.x, data.edge_index)
        F.cross_entropy(out[split.train_mask],
                        data.y[split.train_mask]).backward()
        opt.step()
        train_time += time.perf_counter() - t0
        model.eval()
        with torch.no_grad():
            pred = model(data.x, data.edge_index).argmax(-1)
        val = float((pred[split.val_mask] == data.y[split.val_mask])
                    .float().mean())
        if val > best_val:
            best_val = val
            test_at_best = float((pred[split.test_mask] ==
                                  data.y[split.test_mask]).float().mean())
    return train_time / epochs, test_at_best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--dataset', default='cora')
    parser.add_argument('--epochs', type=int, default=200)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    cfg = default_config('gcn', args.dataset)
    cfg.train.epochs, cfg.train.runs = args.epochs, 1
    cfg.train.seed, cfg.train.progress = args.seed, False
    cfg.train.checkpoint_every = args.epochs
    cfg.out = 'runs/bench-fit-loop'
    bundle = load(args.dataset, normalize_features=cfg.data.normalize_features)
    plain_s, plain_acc = plain_loop(bundle, cfg, args.epochs, args.seed)
    summary = fit(cfg, bundle=bundle)
    ours_s = summary.records[0].epoch_time_s
    print(f'plain PyG loop : {plain_s * 1e3:8.2f} ms/epoch, '
          f'test acc {plain_acc:.4f}')
    print(f'graphkit fit   : {ours_s * 1e3:8.2f} ms/epoch, '
          f'test acc {summary.test_mean:.4f}')
    print(f'ratio graphkit / plain: {ours_s / plain_s:.3f}')


if __name__ == '__main__':
    main()
