r"""Forward learning: a GCN stack trained layer by layer on local losses
(no gradient crosses a layer), against the same stack trained by backprop.

    python examples/forward.py --dataset cora --layers 4 --runs 2 \
        --strategy forward-sf      # or forward-ff-vn, forward-ff-la,
                                   # forward-topdown, forward-topdown-loss
"""
import argparse

from graphkit.cli import backprop_baseline_config
from graphkit.pipelines import default_config, fit
from graphkit.pipelines import results as R


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--dataset', default='cora')
    parser.add_argument('--strategy', default='forward-sf')
    parser.add_argument('--model', default='gcn',
                        help='any registered conv stack: gcn, sage, gat')
    parser.add_argument('--layers', type=int, default=2)
    parser.add_argument('--runs', type=int, default=2)
    args = parser.parse_args()

    # the paper's protocol: 64/16/20 random splits, 128 wide, lr 1e-3
    cfg = default_config('forward-sf', args.dataset)
    cfg.model.name, cfg.model.num_layers = args.model, args.layers
    cfg.train.strategy, cfg.train.runs = args.strategy, args.runs
    cfg.out = (f'runs/example-{args.strategy}-{args.model}{args.layers}-'
               f'{args.dataset}')
    forward = fit(cfg)
    backprop = fit(backprop_baseline_config(cfg))   # same splits and seeds
    print(R.markdown_table([forward, backprop]))


if __name__ == '__main__':
    main()
