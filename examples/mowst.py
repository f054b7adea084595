r"""Mowst: a weak MLP and a strong GNN expert mixed by the MLP's confidence,
against the same GNN alone, and which expert decides which nodes.

    python examples/mowst.py --dataset texas --backbone sage --runs 2
"""
import argparse

from graphkit.cli import encoder_baseline_config
from graphkit.pipelines import default_config, fit
from graphkit.pipelines import results as R


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--dataset', default='texas')
    parser.add_argument('--backbone', default='gcn',
                        help='any registered node encoder')
    parser.add_argument('--runs', type=int, default=2)
    args = parser.parse_args()

    summaries = []
    for model in ('mowst', 'mowst-star'):
        cfg = default_config(model, args.dataset)   # Geom-GCN splits
        cfg.model.encoder = args.backbone
        cfg.train.runs = args.runs
        cfg.out = f'runs/example-{model}-{args.backbone}-{args.dataset}'
        summaries.append(fit(cfg))
    # the backbone alone, same settings, splits and seeds
    summaries.append(fit(encoder_baseline_config(cfg)))
    print(R.markdown_table(summaries))
    print(R.extra_table(summaries[:1]))   # weak share, accuracy per expert


if __name__ == '__main__':
    main()
