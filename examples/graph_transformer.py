r"""Graph transformers through the public API: the Dwivedi & Bresson layer
on its own, then the GraphTransformer (sparse attention, BatchNorm,
Laplacian PE) and GPS against GIN on a TU dataset, by 10-fold CV.

    python examples/graph_transformer.py --dataset mutag --folds 3
"""
import argparse

import torch
from torch_geometric.data import Batch

from graphkit.data.synthetic import sbm_cluster
from graphkit.layers import GraphTransformerLayer
from graphkit.pipelines import default_config, fit
from graphkit.pipelines import results as R
from graphkit.transforms import LaplacianPE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--dataset', default='mutag')
    parser.add_argument('--folds', type=int, default=3,
                        help='how many of the 10 folds to run')
    parser.add_argument('--epochs', type=int, default=30)
    args = parser.parse_args()

    # 1. The layer on a batch of CLUSTER-style graphs with their LapPE.
    graphs = [LaplacianPE(4)(g) for g in sbm_cluster(num_graphs=4)]
    batch = Batch.from_data_list(graphs)
    layer = GraphTransformerLayer(16, heads=4, norm='batch')
    h = torch.nn.Linear(batch.x.size(1) + 4, 16)(
        torch.cat([batch.x, batch.lap_pe], -1))
    print('layer output', tuple(layer(h, batch.edge_index).shape))

    # 2. Whole models by name, on the same folds and seeds.
    summaries = []
    for model in ('graph-transformer', 'gps', 'gin'):
        cfg = default_config(model, args.dataset)   # 10-fold CV presets
        cfg.train.runs, cfg.train.epochs = args.folds, args.epochs
        cfg.out = f'runs/example-{model}-{args.dataset}'
        summaries.append(fit(cfg))
    print(R.markdown_table(summaries))


if __name__ == '__main__':
    main()
