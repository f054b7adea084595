r"""Sheaf diffusion: NSD on a heterophilous graph, the learned restriction
maps' Laplacian, and Sheaf4Rec against LightGCN on MovieLens-100K.

    python examples/sheaf.py --dataset texas --family bundle --runs 3
    python examples/sheaf.py --recommend --epochs 5
"""
import argparse

import torch

from graphkit.cli import baseline_config
from graphkit.pipelines import default_config, fit
from graphkit.pipelines import results as R


def node_classification(dataset: str, family: str, runs: int) -> None:
    cfg = default_config(f'nsd-{family}', dataset)   # geom-gcn splits
    cfg.train.runs = runs
    cfg.out = f'runs/example-nsd-{family}-{dataset}'
    captured = {}
    summary = fit(cfg, callbacks=[
        lambda trainer, **_: captured.update(trainer=trainer)])
    print(summary.line())

    # The sheaf the first layer learned, as a sparse Nd x Nd operator.
    trainer = captured['trainer']
    nsd = trainer.model.encoder
    data = trainer.task.bundle.data
    nsd.eval()
    with torch.no_grad():
        from graphkit.models.sheaf import sheaf_graph
        graph = sheaf_graph(data.edge_index, data.num_nodes)
        _, laplacians = nsd.diffuse(nsd.input_stalks(data.x), graph)
    for layer, lap in enumerate(laplacians):
        learned = getattr(lap, 'parts', [lap])[0]  # without fixed lp/hp stalks
        s = learned.structure
        # maps near 0 give a Laplacian near 0: that layer only rescales
        print(f'layer {layer} learned sheaf Laplacian: {s.size} x {s.size}, '
              f'{s.nnz} off-diagonal non-zeros, mean |off-diagonal| '
              f'{learned.off_diagonal().abs().mean():.4f}')


def recommendation(epochs: int) -> None:
    cfg = default_config('sheaf4rec', 'movielens-100k')
    cfg.train.epochs, cfg.out = epochs, 'runs/example-sheaf4rec'
    base = baseline_config(cfg, 'lightgcn')           # same split and seed
    base.train.epochs = epochs
    summaries = [fit(cfg), fit(base)]
    print(R.markdown_table(summaries))
    print(R.extra_table(summaries))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--dataset', default='texas')
    parser.add_argument('--family', default='bundle',
                        choices=['diag', 'bundle', 'general'])
    parser.add_argument('--runs', type=int, default=3)
    parser.add_argument('--recommend', action='store_true')
    parser.add_argument('--epochs', type=int, default=5)
    args = parser.parse_args()
    if args.recommend:
        recommendation(args.epochs)
    else:
        node_classification(args.dataset, args.family, args.runs)


if __name__ == '__main__':
    main()
