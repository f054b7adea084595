r"""Run records (JSONL), mean ± std over runs, markdown tables and plots."""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

__all__ = ['RunResult', 'Summary', 'append_record', 'read_records',
           'write_text_atomic',
           'summarize', 'markdown_table', 'plot_history', 'plot_confidence',
           'load_run_folder']


@dataclass
class RunResult:
    r"""One run: the scores at the best-validation epoch and timings."""
    run: int
    seed: int
    split: str
    best_epoch: int
    valid: float
    test: float
    train: float | None
    epochs: int
    time_s: float
    epoch_time_s: float
    peak_memory_mb: float | None = None
    stopped_early: bool = False
    history: list[dict[str, float]] = field(default_factory=list)
    extra: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self))


@dataclass
class Summary:
    r"""Mean ± std over runs."""
    model: str
    dataset: str
    metric: str
    runs: int
    test_mean: float
    test_std: float
    valid_mean: float
    valid_std: float
    test_ci95: float
    epoch_time_s: float
    time_s: float
    records: list[RunResult] = field(default_factory=list, repr=False)
    extra: dict[str, tuple[float, float]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop('records')
        return d

    def line(self) -> str:
        return (f"{self.model} on {self.dataset}: test {self.metric} "
                f"{100 * self.test_mean:.2f} ± {100 * self.test_std:.2f} "
                f"(95% CI ± {100 * self.test_ci95:.2f}; valid {100 * self.valid_mean:.2f} ± "
                f"{100 * self.valid_std:.2f}, {self.runs} runs, "
                f"{self.epoch_time_s:.4f} s/epoch)")


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    r"""Writes ``text`` to ``path`` through a temporary file and
    :func:`os.replace`, so a reader (e.g. another rank checking the saved
    configuration on resume) sees the old file or the new one, never a
    half-written one."""
    path = Path(path)
    tmp = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
    tmp.write_text(text)
    os.replace(tmp, path)


def append_record(path: str | os.PathLike, record: RunResult) -> None:
    with open(path, 'a') as f:
        f.write(record.to_json() + '\n')
        f.flush()
        os.fsync(f.fileno())


def read_records(path: str | os.PathLike) -> list[RunResult]:
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    for line in path.read_text().splitlines():
        if line.strip():
            out.append(RunResult(**json.loads(line)))
    return out


def _mean_std(xs: Sequence[float]) -> tuple[float, float]:
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    if not xs:
        return float('nan'), float('nan')
    mean = sum(xs) / len(xs)
    if len(xs) < 2:
        return mean, 0.0
    var = sum((x - mean)**2 for x in xs) / (len(xs) - 1)
    return mean, math.sqrt(var)


def summarize(records: Iterable[RunResult], model: str, dataset: str,
              metric: str) -> Summary:
    r"""Mean and (sample) standard deviation over runs, plus the 95%
    confidence half-width :math:`1.96\,\sigma/\sqrt{n}`."""
    records = list(records)
    tm, ts = _mean_std([r.test for r in records])
    vm, vs = _mean_std([r.valid for r in records])
    em, _ = _mean_std([r.epoch_time_s for r in records])
    n = max(len(records), 1)
    keys = sorted({k for r in records for k in r.extra})
    extra = {k: _mean_std([r.extra.get(k) for r in records]) for k in keys}
    return Summary(model=model, dataset=dataset, metric=metric,
                   runs=len(records), test_mean=tm, test_std=ts,
                   valid_mean=vm, valid_std=vs,
                   test_ci95=1.96 * ts / math.sqrt(n), epoch_time_s=em,
                   time_s=sum(r.time_s for r in records), records=records,
                   extra=extra)


def extra_table(summaries: Sequence[Summary], prefix: str = 'test_') -> str:
    r"""A markdown table of the extra test scores (e.g. Recall / F1 / NDCG
    at K), one row per summary; empty when there are none."""
    keys = sorted({k for s in summaries for k in s.extra
                   if k.startswith(prefix)})
    if not keys:
        return ''
    names = [k[len(prefix):] for k in keys]
    rows = ['| model | ' + ' | '.join(names) + ' |',
            '|---|' + '---|' * len(keys)]
    for s in summaries:
        cells = []
        for k in keys:
            if k not in s.extra:
                cells.append('-')
                continue
            mean, std = s.extra[k]
            cells.append(f'{mean:.4f} ± {std:.4f}')
        rows.append(f'| {s.model} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(rows)


def markdown_table(summaries: Sequence[Summary]) -> str:
    r"""A markdown table with one row per summary (scores in %)."""
    rows = ['| model | dataset | metric | runs | test | valid | s/epoch |',
            '|---|---|---|---|---|---|---|']
    for s in summaries:
        rows.append(f'| {s.model} | {s.dataset} | {s.metric} | {s.runs} | '
                    f'{100 * s.test_mean:.2f} ± {100 * s.test_std:.2f} | '
                    f'{100 * s.valid_mean:.2f} ± {100 * s.valid_std:.2f} | '
                    f'{s.epoch_time_s:.4f} |')
    return '\n'.join(rows)


def _pyplot():
    r"""matplotlib's pyplot on the file-only Agg backend, or a clear error
    naming the extra to install."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError("Plotting needs matplotlib: pip install "
                          "'graphkit[plot]'") from e
    return plt


def _save(plt, fig, path, legend_ax=None) -> Path:
    if legend_ax is not None:
        legend_ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_history(records: Sequence[RunResult] | Mapping[str, Sequence[RunResult]]
                 | Sequence[tuple[str, Sequence[RunResult]]],
                 path: str | os.PathLike, metric: str = 'metric',
                 test: bool = False) -> Path:
    r"""Plots training loss and validation score per epoch to a PNG (needs
    matplotlib: ``pip install graphkit[plot]``).

    Args:
        records: the runs of one model (one line per run), or a mapping
            ``label -> runs`` or a list of ``(label, runs)`` pairs to
            compare models (one colour per label).
        path: the PNG to write.
        metric (str): the score's name, for the axis label.
        test (bool): also draw the test score at every evaluation, dashed
            (a diagnostic of how validation and test move together; model
            selection uses validation only).
    """
    plt = _pyplot()
    if isinstance(records, Mapping):
        groups = list(records.items())
    elif records and isinstance(records[0], tuple):
        groups = list(records)            # (label, runs) pairs
    else:
        groups = [(None, list(records))]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.5))
    colours = plt.rcParams['axes.prop_cycle'].by_key()['color']
    lines = 0
    for g, (label, runs) in enumerate(groups):
        for j, r in enumerate(runs):
            colour = colours[(g if label is not None else j) % len(colours)]
            name = (f'run {r.run}' if label is None else
                    (label if j == 0 else None))
            ep = [h['epoch'] for h in r.history if 'loss' in h]
            ax1.plot(ep, [h['loss'] for h in r.history if 'loss' in h],
                     color=colour, label=name, lw=1)
            ev = [h for h in r.history if 'valid' in h]
            ax2.plot([h['epoch'] for h in ev], [h['valid'] for h in ev],
                     color=colour, lw=1)
            if test:
                et = [h for h in ev if 'test' in h]
                ax2.plot([h['epoch'] for h in et], [h['test'] for h in et],
                         color=colour, lw=1, ls='--')
            lines += 1
    ax1.set_xlabel('epoch')
    ax1.set_ylabel('training loss')
    ax2.set_xlabel('epoch')
    ax2.set_ylabel(f'{metric}: validation' + (' (solid), test (dashed)'
                                              if test else ''))
    return _save(plt, fig, path, ax1 if len(groups) > 1 or lines <= 10
                 else None)


def load_run_folder(folder: str | os.PathLike) -> tuple[str, str, list[RunResult]]:
    r"""``(label, metric, runs)`` of a finished ``graphkit run`` output
    folder, from its ``summary.json`` and ``runs.jsonl``; a clear error if
    the folder holds no finished run."""
    folder = Path(folder)
    runs = read_records(folder / 'runs.jsonl')
    if not runs:
        raise ValueError(f"{folder} holds no finished run: expected "
                         f"{folder / 'runs.jsonl'}, written by graphkit run "
                         f"at the end of each run")
    label, metric = folder.name, 'metric'
    summary = folder / 'summary.json'
    if summary.is_file():
        info = json.loads(summary.read_text())
        label = info.get('model', label)
        metric = info.get('metric', metric)
    return label, metric, runs


def plot_confidence(confidences: dict[int, Any], path: str | os.PathLike,
                    title: str = '') -> Path:
    r"""Histogram of per-node confidences :math:`C_v \in [0, 1]` (e.g.
    Mowst's weak expert on the test nodes at the selected epoch), one
    outline per run, to a PNG."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    bins = [i / 20 for i in range(21)]
    for run, c in sorted(confidences.items()):
        ax.hist([float(v) for v in c], bins=bins, histtype='step',
                label=f'run {run}')
    ax.set_xlabel('confidence C of the weak expert')
    ax.set_ylabel('test nodes')
    if title:
        ax.set_title(title, fontsize=9)
    return _save(plt, fig, path, ax if len(confidences) <= 10 else None)
