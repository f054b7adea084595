r"""GNNPipe's three convergence techniques, switched off one at a time, on
one deep model and graph: test accuracy at the best-validation epoch, the
final training loss, and a PNG of the loss curves.

    python benchmarks/pipeline_techniques.py --model gcnii --epochs 50 \
        --plot runs/pipeline-techniques-gcnii.png

Every variant is a real ``torchrun`` launch of ``graphkit run --parallel
pipeline`` with the same model, split, seed and epoch budget:

- ``all on``: chunk shuffling, the historical snapshot refreshed every 23
  epochs, and cross-chunk gradients (the defaults);
- ``no shuffle``: ``parallel.shuffle_chunks=false``, a fixed chunk order;
- ``snapshot 1``: ``parallel.snapshot_period=1``, stale rows hold the last
  value written instead of one consistent older model version;
- ``no cross-chunk grad``: ``parallel.cross_chunk_grad=false``, gradients
  reaching historical rows are dropped;
- ``all off``: the three together;
- ``1 chunk``: ``parallel.chunks=1``, no staleness at all, which computes
  exactly full-batch training (the reference the others approximate).

The authors ablate the same three switches on GCNII (their
``convergence_tricks`` scripts). ``--resume`` reuses finished variants
from ``--out``.
"""
from pathlib import Path

from distributed_modes import common_parser, launch, plot_losses

VARIANTS = {
    'all on': (),
    'no shuffle': ('parallel.shuffle_chunks=false',),
    'snapshot 1': ('parallel.snapshot_period=1',),
    'no cross-chunk grad': ('parallel.cross_chunk_grad=false',),
    'all off': ('parallel.shuffle_chunks=false', 'parallel.snapshot_period=1',
                'parallel.cross_chunk_grad=false'),
    '1 chunk': ('parallel.chunks=1',),
}


def main() -> None:
    p = common_parser(__doc__.split('\n')[0])
    p.add_argument('--variants', nargs='+', default=list(VARIANTS),
                   choices=list(VARIANTS))
    p.set_defaults(model='gcnii', epochs=50,
                   out='runs/pipeline-techniques')
    args = p.parse_args()
    base = Path(args.out) / f'{args.dataset}-{args.model}-{args.layers}'
    recs = {v: launch('pipeline', args, base / v.replace(' ', '-'),
                      VARIANTS[v]) for v in args.variants}
    print(f"\npipeline, {args.model}, {args.layers} layers, {args.dataset}, "
          f"{args.procs} stages, {args.epochs} epochs\n")
    print('| variant | test acc. (best valid) | best epoch | valid acc. | '
          'final training loss | s/epoch |')
    print('|---|---|---|---|---|---|')
    for v, rec in recs.items():
        print(f"| {v} | {100 * rec['test']:.2f} | {rec['best_epoch']} | "
              f"{100 * rec['valid']:.2f} | {rec['history'][-1]['loss']:.4f} "
              f"| {rec['epoch_time_s']:.3f} |")
    if args.plot:
        plot_losses(recs, args.plot, f'pipeline techniques: {args.model}-'
                    f'{args.layers}, {args.dataset}, {args.procs} stages')


if __name__ == '__main__':
    main()
