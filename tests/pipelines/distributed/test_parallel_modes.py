r"""Real multi-process runs (gloo on CPU) of every parallel mode against
single-process training."""
import copy
import json
import os
import time

import pytest
import torch

from graphkit.pipelines.distributed import RankFailureError
from graphkit.pipelines import fit
from graphkit.pipelines.config import RunConfig


def _cfg(model='resgcn', layers=4, epochs=4, out=None, **parallel):
    cfg = RunConfig()
    cfg.data.name = 'csbm'
    cfg.model.name = model
    cfg.model.num_layers = layers
    cfg.model.hidden_channels = 16
    cfg.model.dropout = 0.0
    cfg.model.alpha = 0.1
    cfg.train.epochs = epochs
    cfg.train.runs = 1
    cfg.train.progress = False
    cfg.out = str(out)
    for k, v in parallel.items():
        setattr(cfg.parallel, k, v)
    return cfg


def _single(cfg, out):
    ref = copy.deepcopy(cfg)
    ref.parallel.mode = 'none'
    ref.out = str(out)
    return [h['loss'] for h in fit(ref).records[0].history]


def _fit_worker(rank, cfg, result):
    cfg = copy.deepcopy(cfg)
    summary = fit(cfg)
    if rank == 0:
        rec = summary.records[0]
        with open(result, 'w') as f:
            json.dump({'loss': [h['loss'] for h in rec.history],
                       'history': rec.history, 'test': rec.test}, f)


def _run(run_ranks, world, cfg, tmp_path):
    result = tmp_path / 'result.json'
    codes = run_ranks(world, _fit_worker, cfg, str(result))
    assert codes == [0] * world, codes
    return json.loads(result.read_text())


@pytest.mark.parametrize('model', ['resgcn', 'gcnii'])
def test_graph_parallel_matches_single_process(run_ranks, tmp_path, model):
    cfg = _cfg(model, out=tmp_path / 'dist', mode='graph')
    got = _run(run_ranks, 2, cfg, tmp_path)
    ref = _single(cfg, tmp_path / 'single')
    assert got['loss'] == pytest.approx(ref, abs=1e-5)
    h = got['history'][0]
    assert h['bytes_halo'] > 0 and h['bytes_grad'] > 0
    # both ranks together move 2 L R d b of halo rows (the formula)
    assert h['bytes_total'] >= h['bytes_formula']


@pytest.mark.parametrize('world,model', [(2, 'resgcn'), (3, 'gcnii')])
def test_pipeline_one_chunk_matches_single_process(run_ranks, tmp_path,
                                                   world, model):
    cfg = _cfg(model, layers=5, epochs=5, out=tmp_path / 'dist',
               mode='pipeline', chunks=1)
    got = _run(run_ranks, world, cfg, tmp_path)
    ref = _single(cfg, tmp_path / 'single')
    assert got['loss'] == pytest.approx(ref, abs=1e-5)
    h = got['history'][0]
    # 2 (S - 1) N d b per state tensor, exactly: GCNII also sends H0
    assert h['bytes_pipeline'] > 0
    assert h['bytes_total'] - h.get('bytes_metrics', 0) * world == \
        pytest.approx(h['bytes_formula'], rel=0.01)


def test_hybrid_one_chunk_matches_single_process(run_ranks, tmp_path):
    cfg = _cfg('gcnii', layers=4, epochs=3, out=tmp_path / 'dist',
               mode='hybrid', ways=2, chunks=1)
    got = _run(run_ranks, 4, cfg, tmp_path)
    ref = _single(cfg, tmp_path / 'single')
    assert got['loss'] == pytest.approx(ref, abs=1e-5)
    h = got['history'][0]
    assert h['bytes_halo'] > 0 and h['bytes_pipeline'] > 0
    assert h['peak_memory_mb_max'] > 0   # the largest of the four ranks


@pytest.mark.parametrize('mode,world', [('pipeline', 2), ('hybrid', 4)])
def test_several_chunks_still_converge(run_ranks, tmp_path, mode, world):
    cfg = _cfg('resgcn', layers=6, epochs=40, out=tmp_path / 'dist',
               mode=mode, chunks=4)
    cfg.optim.lr = 0.005
    got = _run(run_ranks, world, cfg, tmp_path)
    loss = got['loss']
    assert loss[-1] < 0.5 * loss[0], loss
    assert got['test'] > 0.8


@pytest.mark.parametrize('model', ['resgcn', 'gcnii'])
def test_activation_checkpoint_gives_the_same_training(run_ranks, tmp_path,
                                                       model):
    # hybrid with several chunks: halo exchange, history, cross-chunk
    # gradients and dropout (the recomputation must redraw the same masks)
    curves = []
    for on in (False, True):
        cfg = _cfg(model, layers=4, epochs=4, out=tmp_path / f'ckpt-{on}',
                   mode='hybrid', ways=2, chunks=2,
                   activation_checkpoint=on)
        cfg.model.dropout = 0.3
        curves.append(_run(run_ranks, 4, cfg, tmp_path)['loss'])
    assert curves[1] == pytest.approx(curves[0], abs=1e-6)
    assert len(set(curves[0])) == len(curves[0])   # it does train


def _ddp_worker(rank, cfg, result):
    def keep(run, epoch, metrics, trainer):
        if rank == 0:
            state = {k.removeprefix('module.'): v.clone()
                     for k, v in trainer.model.state_dict().items()}
            torch.save(state, result)
    fit(copy.deepcopy(cfg), callbacks=[keep])


def test_ddp_matches_single_process_global_batch(run_ranks, tmp_path):
    # mean aggregation over every neighbour: a seed's output does not depend
    # on the other seeds of its batch, so shards reproduce the global batch;
    # 199 = 100 + 99 and the last batch 101 = 51 + 50 check the weighting
    cfg = _cfg('sage', layers=2, epochs=1, out=tmp_path / 'dist',
               mode='ddp')
    cfg.train.batch_size = 199
    cfg.train.num_neighbors = (-1, -1)
    cfg.optim.optimizer = 'sgd'
    cfg.optim.lr = 0.5
    result = tmp_path / 'ddp.pt'
    assert run_ranks(2, _ddp_worker, cfg, str(result)) == [0, 0]
    got = torch.load(result)

    ref = copy.deepcopy(cfg)
    ref.parallel.mode = 'none'
    ref.out = str(tmp_path / 'single')
    store = {}
    fit(ref, callbacks=[lambda run, epoch, metrics, trainer: store.update(
        {k: v.clone() for k, v in trainer.model.state_dict().items()})])
    assert got.keys() == store.keys()
    for k in got:
        assert torch.allclose(got[k], store[k], atol=1e-6), k


def _ddp_flag_worker(rank, cfg, result):
    def keep(run, epoch, metrics, trainer):
        if rank == 0:
            inner = trainer.model.module
            state = {k: v.clone() for k, v in inner.state_dict().items()}
            state['recompute'] = getattr(inner, 'encoder',
                                         inner).activation_checkpoint
            torch.save(state, result)
    fit(copy.deepcopy(cfg), callbacks=[keep])


def test_ddp_activation_checkpoint_gives_the_same_parameters(run_ranks,
                                                              tmp_path):
    # a 4-layer GCNII with dropout on sampled subgraphs: recomputing each
    # layer in backward must redraw the same masks and give the same steps
    states = []
    for on in (False, True):
        cfg = _cfg('gcnii', layers=4, epochs=2, out=tmp_path / f'ddp-{on}',
                   mode='ddp', activation_checkpoint=on)
        cfg.model.dropout = 0.3
        cfg.train.batch_size = 100
        cfg.train.num_neighbors = (5, 5, 5, 5)
        result = tmp_path / f'ddp-{on}.pt'
        assert run_ranks(2, _ddp_flag_worker, cfg, str(result)) == [0, 0]
        states.append(torch.load(result))
    assert states[0].pop('recompute') is False
    assert states[1].pop('recompute') is True
    assert states[0].keys() == states[1].keys()
    for k in states[0]:
        assert torch.allclose(states[0][k], states[1][k], atol=1e-6), k


def test_ddp_bytes_match_the_allreduce_formula(run_ranks, tmp_path):
    # 300 training seeds in batches of 140: two full steps and a last
    # batch of 20; each step all-reduces every gradient once
    cfg = _cfg('sage', layers=2, epochs=2, out=tmp_path / 'dist',
               mode='ddp')
    cfg.train.batch_size = 140
    out = _run(run_ranks, 2, cfg, tmp_path)
    h = out['history'][-1]
    assert h['bytes_formula'] > 0
    assert h['bytes_total'] - h.get('bytes_metrics', 0) * 2 == \
        pytest.approx(h['bytes_formula'], rel=1e-6)


def _failing_worker(rank, cfg, result, how):
    def fail(run, epoch, metrics, trainer):
        if rank == 1 and epoch == 2:
            if how == 'stall':   # alive but silent, longer than the timeout
                time.sleep(cfg.parallel.timeout_s + 3)
            os._exit(17)
    start = time.monotonic()
    try:
        fit(copy.deepcopy(cfg), callbacks=[fail])
    except RankFailureError as err:
        with open(f'{result}.{rank}', 'w') as f:
            json.dump({'error': str(err),
                       'seconds': time.monotonic() - start}, f)
        os._exit(3)


@pytest.mark.parametrize('how', ['exit', 'stall'])
def test_failed_rank_makes_the_others_exit_with_a_clear_error(
        run_ranks, tmp_path, how):
    cfg = _cfg('resgcn', epochs=50, out=tmp_path / 'dist', mode='graph',
               timeout_s=2.0)
    codes = run_ranks(2, _failing_worker, cfg, str(tmp_path / 'err'), how,
                      timeout=60)
    assert codes == [3, 17]
    info = json.loads((tmp_path / 'err.0').read_text())
    assert 'rank 0 of 2' in info['error']
    assert 'parallel.timeout_s = 2 s' in info['error']
    assert info['seconds'] < 2.0 + 10.0


def _interrupted_worker(rank, cfg, result, stop_after):
    # every rank dies right after the checkpoint of epoch ``stop_after``
    def die(run, epoch, metrics, trainer):
        if epoch == stop_after:
            os._exit(9)
    fit(copy.deepcopy(cfg), callbacks=[die])


def _resumed_worker(rank, cfg, result):
    trained = []
    summary = fit(copy.deepcopy(cfg), resume=True, callbacks=[
        lambda run, epoch, metrics, trainer: trained.append(epoch)])
    if rank == 0:
        with open(result, 'w') as f:
            json.dump({'loss': [h['loss'] for h in
                                summary.records[0].history],
                       'trained': trained}, f)


@pytest.mark.parametrize('mode,world,extra', [
    ('graph', 2, {}),
    ('pipeline', 2, {'chunks': 3}),
    ('hybrid', 4, {'ways': 2, 'chunks': 2}),
    ('ddp', 2, {}),
])
def test_killed_run_resumes_exactly(run_ranks, tmp_path, mode, world, extra):
    # a run killed on every rank after epoch 3 and resumed from its
    # checkpoints gives the loss curve of the run that was never stopped
    # (with several chunks: the historical embeddings, chunk order and
    # random state are restored too)
    cfg = _cfg('resgcn', layers=4, epochs=6, out=tmp_path / 'straight',
               mode=mode, **extra)
    cfg.train.checkpoint_every = 1
    if mode == 'ddp':
        cfg.model.name, cfg.model.num_layers = 'sage', 2
        cfg.train.batch_size = 128
    straight = _run(run_ranks, world, cfg, tmp_path)['loss']

    cfg.out = str(tmp_path / 'killed')
    codes = run_ranks(world, _interrupted_worker, cfg, '', 3)
    assert codes == [9] * world, codes
    result = tmp_path / 'resumed.json'
    assert run_ranks(world, _resumed_worker, cfg, str(result)) == [0] * world
    got = json.loads(result.read_text())
    assert got['trained'] == [4, 5, 6]   # it did not start over
    resumed = got['loss']
    assert len(resumed) == 6
    assert resumed == pytest.approx(straight, abs=1e-6)
