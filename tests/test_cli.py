import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from graphkit.cli import main
from graphkit.pipelines.results import read_records


def test_run_small(tmp_path, capsys):
    code = main(['run', '--model', 'sage', '--dataset', 'karate',
                 '--epochs', '5', '--runs', '2', '--out', str(tmp_path),
                 '--set', 'model.hidden_channels=8', '--no-progress',
                 '--device', 'cpu'])
    assert code == 0
    out = capsys.readouterr().out
    assert '| sage | karate | accuracy | 2 |' in out
    assert len((tmp_path / 'runs.jsonl').read_text().splitlines()) == 2


def test_unknown_names_list_valid_ones(capsys):
    assert main(['run', '--model', 'nope', '--dataset', 'karate']) == 2
    assert 'Valid names:' in capsys.readouterr().err
    assert main(['run', '--model', 'gcn', '--dataset', 'nope']) == 2
    err = capsys.readouterr().err
    assert "Unknown dataset 'nope'" in err and 'cora' in err


def test_bad_set(capsys):
    assert main(['run', '--dataset', 'karate', '--set',
                 'model.num_layers=two']) == 2
    err = capsys.readouterr().err
    assert "'model.num_layers'" in err and 'int' in err


def test_listings(capsys):
    assert main(['models']) == 0
    assert 'gcn' in capsys.readouterr().out
    assert main(['datasets']) == 0
    out = capsys.readouterr().out
    assert 'karate' in out and 'built-in' in out and 'ogbl-ddi' in out
    assert main(['presets']) == 0
    assert 'gcn-cora' in capsys.readouterr().out


def test_plot(tmp_path):
    pytest.importorskip('matplotlib')
    assert main(['run', '--dataset', 'karate', '--epochs', '3', '--out',
                 str(tmp_path), '--plot', '--no-progress']) == 0
    assert (tmp_path / 'curves.png').stat().st_size > 0


def test_plot_compares_finished_runs(tmp_path, capsys, monkeypatch):
    pytest.importorskip('matplotlib')
    from graphkit.pipelines import results as R
    for model in ('gcn', 'mlp'):
        assert main(['run', '--model', model, '--dataset', 'karate',
                     '--epochs', '3', '--out', str(tmp_path / model),
                     '--no-baseline', '--no-progress']) == 0
    seen = []
    save = R._save

    def keep(plt, fig, path, legend_ax=None):
        loss_ax, score_ax = fig.axes
        seen.append(([ln.get_label() for ln in loss_ax.lines
                      if not ln.get_label().startswith('_')],
                     len(score_ax.lines), score_ax.get_ylabel()))
        return save(plt, fig, path, legend_ax)
    monkeypatch.setattr(R, '_save', keep)
    png = tmp_path / 'cmp.png'
    assert main(['plot', str(tmp_path / 'gcn'), str(tmp_path / 'mlp'),
                 '--to', str(png), '--test']) == 0
    assert png.stat().st_size > 0
    # one legend entry per folder (its model), validation + test per run
    assert seen[-1] == (['gcn', 'mlp'], 4, 'accuracy: validation (solid), '
                        'test (dashed)')
    assert main(['plot', str(tmp_path / 'gcn'), '--to', str(png),
                 '--label', 'a', '--label', 'b']) == 2
    assert 'one per folder' in capsys.readouterr().err
    assert main(['plot', str(tmp_path / 'none'), '--to', str(png)]) == 2
    assert 'runs.jsonl' in capsys.readouterr().err


@pytest.mark.slow
def test_killed_process_resumes_to_same_result(tmp_path):
    r"""SIGKILL a real `graphkit run` mid-way, resume it with --resume, and
    compare with an uninterrupted run of the same seed."""
    base = [sys.executable, '-m', 'graphkit', 'run', '--dataset', 'csbm',
            '--model', 'gcn', '--epochs', '150', '--runs', '2',
            '--device', 'cpu', '--no-progress', '--set',
            'train.checkpoint_every=1']
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    ref = subprocess.run(base + ['--out', str(tmp_path / 'ref')], env=env,
                         capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / 'killed'
    proc = subprocess.Popen(base + ['--out', str(out)], env=env,
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:
        records = out / 'runs.jsonl'
        ckpt = out / 'checkpoint.pt'
        if records.exists() and records.read_text().strip() and \
                ckpt.exists():
            # run 0's checkpoint lingers for a moment after its record is
            # written; wait for one that belongs to run 1
            try:
                state = torch.load(ckpt, weights_only=False)
            except (OSError, RuntimeError, EOFError):
                state = {}  # replaced while reading; look again
            if state.get('run') == 1:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / 'summary.json').exists(), 'finished before the kill'
    resumed = subprocess.run(base + ['--out', str(out), '--resume'],
                             env=env, capture_output=True, text=True,
                             timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert 'Resumed run 1' in resumed.stderr
    a = [json.loads(line) for line in
         (tmp_path / 'ref' / 'runs.jsonl').read_text().splitlines()]
    b = [json.loads(line) for line in
         (out / 'runs.jsonl').read_text().splitlines()]
    assert len(a) == len(b) == 2
    for ra, rb in zip(a, b):
        assert ra['history'] == rb['history']
        assert (ra['best_epoch'], ra['test']) == (rb['best_epoch'],
                                                  rb['test'])


def test_baseline_runs_on_the_same_splits_and_seeds(tmp_path, capsys):
    code = main(['run', '--model', 'sage', '--dataset', 'karate', '--epochs',
                 '3', '--runs', '2', '--out', str(tmp_path / 'r'),
                 '--baseline', 'mlp', '--no-progress'])
    assert code == 0
    out = capsys.readouterr().out
    assert '| sage | karate |' in out and '| mlp | karate |' in out
    main_runs = read_records(tmp_path / 'r' / 'runs.jsonl')
    base_runs = read_records(tmp_path / 'r' / 'baseline-mlp' / 'runs.jsonl')
    assert [r.seed for r in main_runs] == [r.seed for r in base_runs]
    assert [r.split for r in main_runs] == [r.split for r in base_runs]
    assert main(['run', '--dataset', 'karate', '--baseline', 'nope']) == 2
    assert 'nope' in capsys.readouterr().err


def test_compare_trains_another_model_with_every_setting(tmp_path, capsys):
    code = main(['run', '--model', 'sage', '--dataset', 'karate', '--epochs',
                 '2', '--runs', '2', '--out', str(tmp_path / 'r'),
                 '--set', 'model.hidden_channels=8', '--set', 'optim.lr=0.03',
                 '--compare', 'gcn', '--baseline', 'gcn', '--no-progress'])
    assert code == 0
    out = capsys.readouterr().out
    assert '| sage | karate |' in out and out.count('| gcn | karate |') == 2
    main_cfg = json.loads((tmp_path / 'r' / 'config.json').read_text())
    same = json.loads((tmp_path / 'r' / 'compare-gcn' /
                       'config.json').read_text())
    own = json.loads((tmp_path / 'r' / 'baseline-gcn' /
                      'config.json').read_text())
    # --compare swaps the model and keeps every setting; --baseline takes
    # the baseline's own settings
    assert same['config']['model'] == dict(main_cfg['config']['model'],
                                           name='gcn')
    assert same['config']['optim'] == main_cfg['config']['optim']
    assert own['config']['optim']['lr'] != 0.03
    runs = read_records(tmp_path / 'r' / 'compare-gcn' / 'runs.jsonl')
    assert [r.seed for r in runs] == [
        r.seed for r in read_records(tmp_path / 'r' / 'runs.jsonl')]
    assert main(['run', '--dataset', 'karate', '--compare', 'nope']) == 2
    assert 'nope' in capsys.readouterr().err
    assert main(['run', '--dataset', 'karate', '--compare', 'mlp',
                 '--no-baseline']) == 2
    assert 'contradict' in capsys.readouterr().err


def test_ncn_trains_its_gae_ablation_beside_it(tmp_path, capsys):
    code = main(['run', '--model', 'ncn', '--dataset', 'csbm', '--set',
                 'data.task=link', '--set', 'data.metric=auc', '--epochs',
                 '2', '--runs', '1', '--set', 'model.hidden_channels=16',
                 '--out', str(tmp_path / 'r'), '--no-progress'])
    assert code == 0
    out = capsys.readouterr().out
    assert '| ncn | csbm |' in out and '| ncn-gae | csbm |' in out
    main_cfg = json.loads((tmp_path / 'r' / 'config.json').read_text())
    gae_cfg = json.loads((tmp_path / 'r' / 'baseline-ncn-gae' /
                          'config.json').read_text())
    # the ablation keeps every setting but the model
    assert gae_cfg['config']['model'] == dict(main_cfg['config']['model'],
                                              name='ncn-gae')
    assert gae_cfg['config']['optim'] == main_cfg['config']['optim']
    runs = read_records(tmp_path / 'r' / 'baseline-ncn-gae' / 'runs.jsonl')
    assert [r.split for r in runs] == [
        r.split for r in read_records(tmp_path / 'r' / 'runs.jsonl')]


def test_no_baseline_trains_the_named_model_only(tmp_path, capsys):
    args = ['run', '--model', 'ncn', '--dataset', 'csbm', '--set',
            'data.task=link', '--set', 'data.metric=auc', '--epochs', '1',
            '--runs', '1', '--set', 'model.hidden_channels=16', '--out',
            str(tmp_path / 'r'), '--no-progress']
    assert main(args + ['--no-baseline']) == 0
    out = capsys.readouterr().out
    assert '| ncn | csbm |' in out and 'ncn-gae' not in out
    assert not (tmp_path / 'r' / 'baseline-ncn-gae').exists()
    assert main(args + ['--no-baseline', '--baseline', 'gcn']) == 2
    assert 'contradict' in capsys.readouterr().err
