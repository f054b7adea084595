r"""Distributed training: one deep residual GCN trained data-parallel,
graph-parallel, as a GNNPipe layer pipeline or as their hybrid, on as
many processes as the launcher starts (gloo on CPU, NCCL on GPUs).

    torchrun --nproc-per-node 2 examples/distributed.py --mode pipeline
    torchrun --nproc-per-node 4 examples/distributed.py --mode hybrid \
        --model gcnii --layers 32 --dataset squirrel

The same run from the command line:

    torchrun --nproc-per-node 2 -m graphkit run --model resgcn \
        --dataset csbm --layers 16 --parallel pipeline
"""
import argparse
import logging

from graphkit.pipelines.distributed import env_rank
from graphkit.pipelines import default_config, fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--mode', default='pipeline',
                        choices=['ddp', 'graph', 'pipeline', 'hybrid'])
    parser.add_argument('--model', default='resgcn',
                        help='resgcn or gcnii (any model for ddp)')
    parser.add_argument('--dataset', default='csbm')
    parser.add_argument('--layers', type=int, default=16)
    parser.add_argument('--hidden', type=int, default=64)
    parser.add_argument('--epochs', type=int, default=100)
    parser.add_argument('--chunks', type=int, default=None,
                        help='chunks per way (default: 4 x stages)')
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if env_rank() == 0
                        else logging.WARNING)

    cfg = default_config(args.model, args.dataset)
    cfg.model.num_layers, cfg.model.hidden_channels = args.layers, args.hidden
    cfg.optim.lr = 0.005
    cfg.train.epochs, cfg.train.runs = args.epochs, 1
    cfg.parallel.mode, cfg.parallel.chunks = args.mode, args.chunks
    if args.mode == 'ddp':           # sampled mini-batches, sharded
        cfg.train.batch_size = 256
        cfg.train.num_neighbors = (10, 10)
    cfg.out = f'runs/example-distributed-{args.mode}'
    summary = fit(cfg)
    if env_rank() == 0:
        rec = summary.records[0]
        last = rec.history[-1]
        print(summary.line())
        print(f"bytes per epoch, all ranks: {last['bytes_total']:.4g}"
              + (f" (formula {last['bytes_formula']:.4g})"
                 if 'bytes_formula' in last else ''))


if __name__ == '__main__':
    main()
