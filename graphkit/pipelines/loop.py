r"""The one fit loop.

:func:`fit` trains ``runs`` runs; run :math:`i` is seeded with
``seed + i`` before its model, split and loaders are built. The test score
reported for a run is the one at its best-validation epoch. Runs stop early
after ``patience`` evaluations without improvement, write a checkpoint
every ``checkpoint_every`` epochs and can be resumed exactly (model,
optimizer, loop state and every RNG state are restored). A JSONL record is
appended per finished run, and the summary (mean ± std) is saved as JSON and
markdown.
"""
from __future__ import annotations

import json
import logging
import os
import platform
import random
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from graphkit import data as gdata
from graphkit.data import loaders as gloaders
from graphkit import models
from graphkit.pipelines import results as R
from graphkit.pipelines.config import ConfigError, RunConfig
from graphkit.pipelines.strategies import NonFiniteLossError, resolve_strategy
from graphkit.pipelines.tasks import Task, make_task
from graphkit.utils.tensor import peak_memory_mb

log = logging.getLogger(__name__)

__all__ = ['fit', 'Trainer', 'load_bundle', 'run_task', 'resolve_device',
           'set_determinism', 'CHECKPOINT', 'RECORDS']

CHECKPOINT = 'checkpoint.pt'
RECORDS = 'runs.jsonl'
Callback = Callable[..., None]


def resolve_device(name: str) -> torch.device:
    r"""``auto`` picks CUDA when available (PyG's ``device('auto')``)."""
    if name == 'auto':
        from torch_geometric import device as pyg_device
        return pyg_device('auto')
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"Invalid device '{name}': expected auto, cpu, "
                         f"cuda or cuda:N") from e


def set_determinism() -> None:
    r"""Deterministic kernels (and cuDNN / cuBLAS settings on GPUs)."""
    os.environ.setdefault('CUBLAS_WORKSPACE_CONFIG', ':4096:8')
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True


def _rng_state() -> dict[str, Any]:
    state = {'torch': torch.get_rng_state(), 'numpy': np.random.get_state(),
             'python': random.getstate()}
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state['torch'])
    np.random.set_state(state['numpy'])
    random.setstate(state['python'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def _environment() -> dict[str, Any]:
    import torch_geometric
    try:
        sha = subprocess.run(['git', 'rev-parse', 'HEAD'],
                             capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ''
    return {'git_sha': sha or None, 'python': platform.python_version(),
            'torch': torch.__version__,
            'torch_geometric': torch_geometric.__version__}


# Scores every task reports; anything else a task's evaluate() returns (e.g.
# test_ndcg@20) is kept per run as ``RunResult.extra``.
_MAIN_SCORES = ('valid', 'test', 'train', 'valid_loss', 'epoch')


def strategy_options(cfg: RunConfig, name: str) -> dict[str, Any]:
    r"""The ``train.<prefix>_<option>`` fields of ``cfg`` that belong to
    strategy ``name``, as keyword arguments (e.g. ``mowst_turn_epochs`` ->
    ``turn_epochs``). The prefix is the strategy's ``option_prefix`` (a
    family of strategies shares one, e.g. ``forward``), else its name.
    Strategies with ``needs_epochs`` also get the run's ``epochs``."""
    cls = resolve_strategy(name)
    prefix = getattr(cls, 'option_prefix', None) or name
    prefix = prefix.replace('-', '_') + '_'
    opts = {k[len(prefix):]: v for k, v in asdict(cfg.train).items()
            if k.startswith(prefix) and v is not None}
    if getattr(cls, 'needs_epochs', False):
        opts['epochs'] = cfg.train.epochs
    return opts


class Trainer:
    r"""Trains one run; its :meth:`state_dict` resumes it exactly."""

    def __init__(self, cfg: RunConfig, task: Task, run: int,
                 device: torch.device, dist_ctx: Any = None) -> None:
        self.cfg, self.task, self.run = cfg, task, run
        self.seed = cfg.train.seed + run
        torch_geometric_seed(self.seed)
        self.split = task.bundle.split_for_run(run, self.seed)
        task.setup(self.split)
        dims = task.model_dims()
        hparams = cfg.model.hparams()
        name = cfg.train.strategy
        if name:        # the strategy may shape the model (e.g. forward)
            self.model = resolve_strategy(name).build_model(
                cfg.model.name, task, dims, hparams,
                **strategy_options(cfg, name)).to(device)
        else:
            self.model = models.build(cfg.model.name, task=task.kind,
                                      **dims, **hparams).to(device)
            name = getattr(self.model, 'default_strategy', 'backprop')
        self.strategy = resolve_strategy(name)(
            self.model, **asdict(cfg.optim), **strategy_options(cfg, name))
        # distributed modes wrap the model, strategy and task on this rank
        self.parallel = None
        if dist_ctx is not None:
            from graphkit.pipelines.distributed import parallelize
            self.parallel = parallelize(cfg, task, self.model, self.strategy,
                                        dist_ctx, self.seed)
            self.model = self.parallel.model
            self.strategy = self.parallel.strategy
            self.task = self.parallel.task
        self.epoch = 0
        self.best: dict[str, Any] | None = None
        self.bad_evals = 0
        self.val_losses: list[float] = []
        self.history: list[dict[str, float]] = []
        self.train_time = 0.0
        self.elapsed = 0.0
        self.stopped_early = False
        factor = cfg.train.lr_plateau_factor
        if factor is not None and not 0.0 < factor < 1.0:
            raise ConfigError(f"train.lr_plateau_factor must lie in (0, 1), "
                              f"got {factor}")
        self.plateau = {'best': float('inf'), 'bad': 0}

    # -- Stateful ------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {'run': self.run, 'epoch': self.epoch, 'best': self.best,
                'bad_evals': self.bad_evals, 'val_losses': self.val_losses,
                'history': self.history,
                'train_time': self.train_time, 'elapsed': self.elapsed,
                'plateau': dict(self.plateau),
                'model': self.model.state_dict(),
                'strategy': self.strategy.state_dict(), 'rng': _rng_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state['model'])
        self.strategy.load_state_dict(state['strategy'])
        for key in ('epoch', 'best', 'bad_evals', 'val_losses', 'history',
                    'train_time', 'elapsed'):
            setattr(self, key, state[key])
        self.plateau = dict(state.get('plateau', self.plateau))
        _set_rng_state(state['rng'])

    # -- selection -----------------------------------------------------------
    def _improved(self, scores: dict[str, float]) -> bool:
        if self.best is None:
            return True
        if self.cfg.train.select_by == 'loss':
            return scores['valid_loss'] < self.best['valid_loss']
        if self.task.higher_is_better:
            return scores['valid'] > self.best['valid']
        return scores['valid'] < self.best['valid']

    def _should_stop(self, valid_loss: float) -> bool:
        tc = self.cfg.train
        previous = self.val_losses[-tc.patience:] if tc.patience else []
        self.val_losses.append(valid_loss)
        if not tc.patience:
            return False
        if tc.early_stop == 'patience':
            return self.bad_evals >= tc.patience
        if tc.early_stop == 'gpr':
            return (len(previous) == tc.patience
                    and valid_loss > float(np.mean(previous)))
        raise ValueError(f"Unknown early_stop rule '{tc.early_stop}': "
                         f"expected 'patience' or 'gpr'")

    def _optimizers(self) -> list[torch.optim.Optimizer]:
        r"""Every optimizer the strategy holds (one, or one per expert or
        layer)."""
        found: list[torch.optim.Optimizer] = []
        for value in vars(self.strategy).values():
            for opt in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(opt, torch.optim.Optimizer) and \
                        all(opt is not o for o in found):
                    found.append(opt)
        return found

    def _plateau_step(self, valid_loss: float) -> bool:
        r"""The learning-rate plateau rule; returns whether the rate fell
        below ``train.min_lr`` (the run then ends)."""
        tc = self.cfg.train
        if tc.lr_plateau_factor is None:
            return False
        if valid_loss < self.plateau['best']:
            self.plateau = {'best': valid_loss, 'bad': 0}
            return False
        self.plateau['bad'] += 1
        if self.plateau['bad'] <= tc.lr_plateau_patience:
            return False
        self.plateau['bad'] = 0
        lrs = []
        for opt in self._optimizers():
            for group in opt.param_groups:
                group['lr'] *= tc.lr_plateau_factor
                lrs.append(group['lr'])
        return bool(lrs) and max(lrs) < tc.min_lr

    def train_epoch(self, epoch: int) -> dict[str, float]:
        gen = gloaders.epoch_generator(self.seed, epoch)
        self.strategy.begin_epoch(epoch)
        losses = []
        for batch in self.task.train_batches(gen):
            try:
                out = self.strategy.step(self.task, batch)
            except NonFiniteLossError as e:
                raise NonFiniteLossError(
                    f"Training stopped: {e} at epoch {epoch} (run "
                    f"{self.run}, seed {self.seed}, step {len(losses)}). "
                    f"Try a lower learning rate (optim.lr) or gradient "
                    f"clipping (optim.grad_clip).") from None
            losses.append(out['loss'])
        entry = {'epoch': epoch, 'loss': float(np.mean(losses))}
        if self.parallel is not None:
            entry = self.parallel.epoch_metrics(entry)
        return entry

    def _log_progress(self, epoch: int, total: int, entry: dict) -> None:
        line = f"run {self.run}: epoch {epoch}/{total}, loss " \
               f"{entry['loss']:.4f}"
        if 'valid' in entry:
            line += f", valid {entry['valid']:.4f}"
        if self.best:
            line += (f", best valid {self.best['valid']:.4f} (test "
                     f"{self.best['test']:.4f}) at epoch "
                     f"{self.best['epoch']}")
        log.info('%s, %.2f s/epoch', line, self.train_time / max(epoch, 1))

    def fit(self, checkpoint: Path | None = None,
            callbacks: Sequence[Callback] = (),
            progress: bool = False,
            log_interval: float = 0.0) -> R.RunResult:
        r"""Train from the current epoch to the end (or an early stop),
        checkpointing to ``checkpoint`` every ``train.checkpoint_every``
        epochs. ``progress`` shows a progress bar; ``log_interval > 0``
        logs the progress at most once per that many seconds instead (and
        at the last epoch)."""
        from tqdm.auto import tqdm
        if not log_interval >= 0:
            raise ValueError(f"train.log_interval must be a number of "
                             f"seconds >= 0 (0: no progress lines), got "
                             f"{log_interval}")
        tc = self.cfg.train
        start = time.perf_counter() - self.elapsed
        total = self.strategy.total_epochs(tc.epochs)
        bar = tqdm(range(self.epoch + 1, total + 1), disable=not progress,
                   initial=self.epoch, total=total,
                   desc=f'run {self.run}', leave=False, dynamic_ncols=True)
        last_log = time.perf_counter()
        for epoch in bar:
            t0 = time.perf_counter()
            entry = self.train_epoch(epoch)
            self.train_time += time.perf_counter() - t0
            stop = False
            if epoch % tc.eval_every == 0 or epoch == total:
                scores = self.task.evaluate(self.model)
                entry.update(scores)
                # (not selectable: e.g. a Mowst expert's pretraining)
                if self.strategy.selectable and self._improved(scores):
                    self.best = dict(scores, epoch=epoch)
                    self.bad_evals = 0
                elif self.strategy.selectable:
                    self.bad_evals += 1
                stop = self._should_stop(scores['valid_loss'])
                stop = self._plateau_step(scores['valid_loss']) or stop
                entry['lr'] = max((g['lr'] for o in self._optimizers()
                                   for g in o.param_groups), default=0.0)
                bar.set_postfix(loss=f"{entry['loss']:.4f}",
                                valid=f"{scores['valid']:.4f}")
            else:
                scores = None
            # the strategy may restore or roll back weights, or finish
            stop = self.strategy.end_epoch(epoch, scores) or stop
            self.history.append(entry)
            self.epoch = epoch
            self.elapsed = time.perf_counter() - start
            if checkpoint is not None and (epoch % tc.checkpoint_every == 0
                                           or stop):
                tmp = checkpoint.with_suffix('.tmp')
                torch.save(self.state_dict(), tmp)
                os.replace(tmp, checkpoint)
            for cb in callbacks:
                cb(run=self.run, epoch=epoch, metrics=entry, trainer=self)
            now = time.perf_counter()
            if log_interval > 0 and (stop or epoch == total
                                     or now - last_log >= log_interval):
                self._log_progress(epoch, total, entry)
                last_log = now
            if stop:
                self.stopped_early = True
                break
        bar.close()
        if self.best is None and self.epoch > 0:
            why = self.strategy.unselected_reason() or (
                "every validation score was non-finite (NaN or inf)")
            raise ValueError(
                f"Run {self.run} (seed {self.seed}) ended after "
                f"{self.epoch} epoch(s) with no epoch to select as its best: "
                f"{why}")
        best = self.best or {}
        return R.RunResult(
            run=self.run, seed=self.seed, split=getattr(self.split, 'name',
                                                        ''),
            best_epoch=int(best.get('epoch', 0)),
            valid=float(best.get('valid', float('nan'))),
            test=float(best.get('test', float('nan'))),
            train=best.get('train'), epochs=self.epoch,
            time_s=time.perf_counter() - start,
            epoch_time_s=self.train_time / max(self.epoch, 1),
            peak_memory_mb=peak_memory_mb(next(self.model.parameters())
                                           .device),
            stopped_early=self.stopped_early, history=self.history,
            extra={k: float(v) for k, v in best.items()
                   if k not in _MAIN_SCORES and isinstance(v, (int, float))})


def torch_geometric_seed(seed: int) -> None:
    from torch_geometric import seed_everything
    seed_everything(seed)


def _default_out(cfg: RunConfig) -> Path:
    return Path('runs') / f'{cfg.model.name}-{cfg.data.name}'.replace(
        '/', '_')


def _check_resume_config(out: Path, cfg: RunConfig) -> None:
    path = out / 'config.json'
    if not path.is_file():
        return
    saved = json.loads(path.read_text()).get('config', {})
    now = json.loads(json.dumps(cfg.to_dict()))
    diffs = []
    for sec, vals in now.items():
        old = saved.get(sec)
        if isinstance(vals, dict) and isinstance(old, dict):
            # (fields added since the checkpoint was written are skipped)
            diffs += [f'{sec}.{k}' for k, v in vals.items()
                      if k not in ('progress', 'log_interval')
                      and k in old and old[k] != v]
        elif sec in saved and sec not in ('out', 'device') and old != vals:
            # (a section added since the checkpoint was written is skipped)
            diffs.append(sec)
    if diffs:
        raise ValueError(f"Cannot resume from {out}: the configuration "
                         f"differs at {', '.join(diffs)}. Resume with the "
                         f"same settings, or drop --resume to start over.")


def fit(cfg: RunConfig, *, resume: bool = False,
        bundle: gdata.DatasetBundle | None = None,
        callbacks: Sequence[Callback] = ()) -> R.Summary:
    r"""Trains ``cfg.train.runs`` runs and returns their
    :class:`~graphkit.pipelines.results.Summary`.

    With ``cfg.parallel.mode`` other than ``none`` (under ``torchrun``),
    every rank runs this function: the process group is joined for the
    duration, the distributed strategy wraps the model, and only rank 0
    writes the records, summary and progress bar (pipeline and hybrid
    ranks also write their own checkpoint shard).

    Args:
        cfg (RunConfig): the full configuration.
        resume (bool): continue from ``<out>/checkpoint.pt`` and the runs
            already recorded in ``<out>/runs.jsonl``.
        bundle (DatasetBundle, optional): an already loaded dataset.
        callbacks (list): called as ``cb(run=, epoch=, metrics=, trainer=)``
            after each epoch (and after its checkpoint is written).
    """
    from graphkit.pipelines.distributed import check_mode, session
    if check_mode(cfg.parallel.mode) == 'none':
        return _fit(cfg, resume, bundle, callbacks, None)
    with session(cfg.parallel.backend, cfg.parallel.timeout_s,
                 resolve_device(cfg.device)) as ctx:
        return _fit(cfg, resume, bundle, callbacks, ctx)


def load_bundle(cfg: RunConfig, ctx: Any = None) -> gdata.DatasetBundle:
    r"""Loads ``cfg.data``. Under a distributed launch the first process
    on each machine loads first (copying raw files from the mirror and
    writing PyG's processed files) while the others wait, so no two
    processes write the same file; the others then read it. If that first
    load fails, every process stops with an error at once."""
    dc = cfg.data

    def load() -> gdata.DatasetBundle:
        return gdata.load(dc.name, root=dc.root, mirror=dc.mirror,
                          split=dc.split, seed=cfg.train.seed,
                          task=dc.task or _model_task(cfg, dc.name),
                          ratios=dc.ratios, options=dc.options,
                          normalize_features=dc.normalize_features,
                          undirected=dc.undirected,
                          pre_transform=models.pre_transform_for(
                              cfg.model.name, **cfg.model.hparams()))

    if ctx is None:
        return load()
    from graphkit.pipelines.distributed import first_per_machine
    return first_per_machine(ctx, load, f"dataset '{dc.name}'")


def run_task(cfg: RunConfig, bundle: gdata.DatasetBundle,
             device: torch.device) -> Task:
    r"""The task a run of ``cfg`` trains on ``bundle``: batch sizes,
    sampling, metric and the task options of ``cfg.train`` (embedding
    regularisation, target-link removal), on ``device``."""
    task_options = {}
    if cfg.train.embedding_reg is not None:
        if bundle.task != 'recommendation':
            raise ConfigError(f"train.embedding_reg applies to "
                              f"recommendation tasks only; '{bundle.name}' "
                              f"is a {bundle.task} dataset")
        task_options['reg'] = cfg.train.embedding_reg
    if cfg.train.target_link_removal:
        if bundle.task not in ('link', 'recommendation'):
            raise ConfigError(f"train.target_link_removal applies to link "
                              f"prediction and recommendation only; "
                              f"'{bundle.name}' is a {bundle.task} dataset")
        task_options['target_link_removal'] = True
    return make_task(bundle, batch_size=cfg.train.batch_size,
                     eval_batch_size=cfg.train.eval_batch_size,
                     num_neighbors=cfg.train.num_neighbors,
                     metric=cfg.data.metric, device=device, **task_options)


def _fit(cfg: RunConfig, resume: bool,
         bundle: gdata.DatasetBundle | None,
         callbacks: Sequence[Callback], ctx: Any) -> R.Summary:
    device = resolve_device(cfg.device) if ctx is None else ctx.device
    main = ctx is None or ctx.is_main
    if cfg.deterministic:
        set_determinism()
    if bundle is None:
        bundle = load_bundle(cfg, ctx)
    task = run_task(cfg, bundle, device)
    runs = cfg.train.runs or max(bundle.num_splits or 1, 1)
    out = Path(cfg.out) if cfg.out else _default_out(cfg)
    out.mkdir(parents=True, exist_ok=True)
    records_path, ckpt_path = out / RECORDS, out / CHECKPOINT
    if resume:
        _check_resume_config(out, cfg)
    elif main:
        for name in (RECORDS, CHECKPOINT, 'summary.json', 'summary.md'):
            (out / name).unlink(missing_ok=True)
    if main:
        R.write_text_atomic(out / 'config.json', json.dumps(
            {'config': cfg.to_dict(), 'environment': _environment()},
            indent=2))
    done = R.read_records(records_path) if resume else []
    progress = main and (cfg.train.progress if cfg.train.progress is not None
                         else sys.stderr.isatty())
    log.info('%s on %s (%s): %d run(s), metric %s, split %s, output %s',
             cfg.model.name, bundle.name, task.kind, runs, task.metric,
             bundle.split_kind, out)
    for run in range(len(done), runs):
        trainer = Trainer(cfg, task, run, device, dist_ctx=ctx)
        write_ckpt, read_ckpt = ckpt_path, ckpt_path
        if trainer.parallel is not None:
            write_ckpt = trainer.parallel.checkpoint_file(ckpt_path)
            read_ckpt = trainer.parallel.resume_file(ckpt_path)
            if not resume and write_ckpt is not None:
                write_ckpt.unlink(missing_ok=True)
        if resume and read_ckpt.is_file():
            state = torch.load(read_ckpt, map_location=device,
                               weights_only=False)
            if state['run'] == run:
                trainer.load_state_dict(state)
                log.info('Resumed run %d at epoch %d', run, trainer.epoch)
        record = trainer.fit(write_ckpt, callbacks, progress,
                             log_interval=cfg.train.log_interval
                             if main and not progress else 0.0)
        if main:
            R.append_record(records_path, record)
        if trainer.parallel is not None:
            trainer.parallel.ctx.comm.barrier()  # all ranks done reading
        if write_ckpt is not None:
            write_ckpt.unlink(missing_ok=True)
        done.append(record)
        log.info('run %d (seed %d, %s): best epoch %d, valid %.4f, test '
                 '%.4f, %.4f s/epoch', run, record.seed, record.split,
                 record.best_epoch, record.valid, record.test,
                 record.epoch_time_s)
    label = cfg.model.name + (f' [{cfg.train.strategy}]'
                              if cfg.train.strategy else '')
    summary = R.summarize(done, label, bundle.name, task.metric)
    if main:
        R.write_text_atomic(out / 'summary.json',
                            json.dumps(summary.to_dict(), indent=2))
        R.write_text_atomic(
            out / 'summary.md', R.markdown_table([summary]) + '\n' +
            (R.extra_table([summary]) + '\n' if summary.extra else ''))
    return summary


def _model_task(cfg: RunConfig, dataset: str) -> str | None:
    r"""The task implied by the model when the dataset supports several
    (e.g. a link-only model on Cora)."""
    spec = gdata.get_spec(dataset)
    entry = models.resolve(cfg.model.name)
    if spec.task in entry.tasks:
        return spec.task
    for t in entry.tasks:
        if t in spec.supported_tasks:
            return t
    raise ValueError(f"Model '{entry.name}' ({', '.join(entry.tasks)}) "
                     f"cannot run on dataset '{spec.name}' "
                     f"({', '.join(spec.supported_tasks)})")
