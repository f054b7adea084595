r"""NCN / NCNC link prediction: the reference preset on Cora, the same
predictor over another registered encoder, and the common-neighbour
functions on their own.

    python examples/ncn.py --runs 1 --epochs 20
    python examples/ncn.py --encoder sage --runs 1 --epochs 20
"""
import argparse

import torch

from graphkit import data as gdata
from graphkit.pipelines import default_config, fit
from graphkit.pipelines import results as R
from graphkit.utils.common_neighbors import (csr_adjacency, neighbor_overlap,
                                             ra_score)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--dataset', default='cora')
    parser.add_argument('--encoder', default=None,
                        help='any registered encoder (default: the preset)')
    parser.add_argument('--runs', type=int, default=1)
    parser.add_argument('--epochs', type=int, default=None)
    args = parser.parse_args()

    # Common neighbours of a few held-out pairs, straight from the CSR graph.
    bundle = gdata.load(args.dataset, task='link')
    split = bundle.split_for_run(0, 0)
    adj = csr_adjacency(split.edge_index, bundle.data.num_nodes)
    pairs = split.test_pos[:, :5]
    ov = neighbor_overlap(adj, pairs[0], pairs[1])
    counts = torch.bincount(ov.common[0], minlength=5)
    print('test pairs', pairs.t().tolist())
    print('common neighbours', counts.tolist(), '| resource allocation',
          [round(v, 3) for v in ra_score(adj, *pairs).tolist()])

    summaries = []
    for model in ('ncn', 'ncnc'):
        cfg = default_config(model, args.dataset)   # reference settings
        if args.encoder:
            cfg.model.encoder = args.encoder
        cfg.train.runs = args.runs
        if args.epochs:
            cfg.train.epochs = args.epochs
        cfg.out = f'runs/example-{model}-{args.dataset}'
        summaries.append(fit(cfg))
    print(R.markdown_table(summaries))


if __name__ == '__main__':
    main()
