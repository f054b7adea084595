r"""Quick start: load a dataset, build a registered model and train it with
the shared fit loop.

    python examples/quickstart.py --dataset cora --model gcn --runs 3
"""
import argparse

import graphkit
from graphkit.pipelines import default_config, fit


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--dataset', default='karate')
    parser.add_argument('--model', default='gcn')
    parser.add_argument('--runs', type=int, default=3)
    args = parser.parse_args()

    bundle = graphkit.data.load(args.dataset)
    print(bundle)

    cfg = default_config(args.model, args.dataset)
    cfg.train.runs = args.runs
    cfg.out = f'runs/example-{args.model}-{args.dataset}'
    summary = fit(cfg, bundle=bundle)
    print(summary.line())


if __name__ == '__main__':
    main()
