r"""End-to-end checks on real data from the offline mirror."""
import pytest

from graphkit.cli import main
from graphkit.pipelines import apply_overrides, default_config, fit

pytestmark = [pytest.mark.dataset, pytest.mark.slow]


def test_default_main_job_is_gcn_on_cora(require, data_root, tmp_path,
                                         monkeypatch, capsys):
    require('Planetoid/Cora/raw/ind.cora.x')
    monkeypatch.setenv('GRAPHKIT_DATA', str(data_root))
    monkeypatch.chdir(tmp_path)
    assert main([]) == 0
    out = capsys.readouterr().out
    assert '| gcn | cora | accuracy | 1 |' in out
    assert (tmp_path / 'runs' / 'gcn-cora' / 'summary.json').is_file()


def test_gcn_cora_public_split_ten_runs(require, data_root, tmp_path):
    mirror = require('Planetoid/Cora/raw/ind.cora.x')
    cfg = default_config('gcn', 'cora')
    cfg.data.root, cfg.data.mirror = str(data_root), str(mirror)
    cfg.train.runs, cfg.train.progress = 10, False
    cfg.out = str(tmp_path)
    summary = fit(cfg)
    # Kipf & Welling report 81.5%; the acceptance bar is 80.5%.
    assert summary.test_mean >= 0.805, summary.line()


def test_texas_geom_gcn_one_run_per_fixed_split(require, data_root,
                                                tmp_path):
    mirror = require('WebKB/texas/raw/out1_graph_edges.txt')
    cfg = default_config('gcn', 'texas')
    apply_overrides(cfg, ['data.split=geom-gcn', 'train.epochs=20',
                          'train.progress=false'])
    cfg.data.root, cfg.data.mirror = str(data_root), str(mirror)
    cfg.out = str(tmp_path)
    summary = fit(cfg)
    assert summary.runs == 10
    assert [r.split for r in summary.records] == [
        f'geom-gcn[{i}]' for i in range(10)]


def test_nsd_bundle_texas_preset_learns(require, data_root, tmp_path):
    mirror = require('WebKB/texas/raw/out1_graph_edges.txt')
    cfg = default_config('nsd-bundle', 'texas')   # official script settings
    cfg.data.root, cfg.data.mirror = str(data_root), str(mirror)
    cfg.train.runs, cfg.train.epochs, cfg.train.progress = 1, 300, False
    cfg.out = str(tmp_path)
    summary = fit(cfg)
    # Split 0 reaches 81% over the full preset; an MLP-like failure to use
    # the sheaf sits near 60% on Texas.
    assert summary.test_mean >= 0.70, summary.line()


def test_higcn_texas_preset_reaches_paper_range(require, data_root,
                                                tmp_path):
    mirror = require('WebKB/texas/raw/out1_graph_edges.txt')
    cfg = default_config('higcn', 'texas')
    cfg.data.root, cfg.data.mirror = str(data_root), str(mirror)
    cfg.train.runs, cfg.train.progress = 3, False
    cfg.out = str(tmp_path)
    summary = fit(cfg)
    # Paper: 92.45; ten runs here give 91.31 ± 3.00.
    assert summary.test_mean >= 0.85, summary.line()


def test_ncn_cora_preset_short_run(require, data_root, tmp_path):
    mirror = require('Planetoid/Cora/raw/ind.cora.x')
    cfg = default_config('ncn', 'cora')    # reference settings, TLR
    cfg.data.root, cfg.data.mirror = str(data_root), str(mirror)
    cfg.train.runs, cfg.train.epochs, cfg.train.progress = 1, 25, False
    cfg.out = str(tmp_path)
    summary = fit(cfg)
    # Ten full runs give HR@100 88.05 ± 1.31 (paper 89.05); the count
    # heuristics reach about 33 on this split.
    assert summary.test_mean >= 0.78, summary.line()


def test_mowst_texas_against_its_backbone(require, data_root, tmp_path):
    mirror = require('WebKB/texas/raw/out1_graph_edges.txt')
    from graphkit.cli import encoder_baseline_config
    cfg = default_config('mowst', 'texas')
    cfg.model.encoder = 'gcn'
    cfg.data.root, cfg.data.mirror = str(data_root), str(mirror)
    cfg.train.runs, cfg.train.progress = 3, False
    cfg.out = str(tmp_path / 'mowst')
    mowst = fit(cfg)
    base = fit(encoder_baseline_config(cfg))
    # Validated turns (the preset): on Texas the MLP beats the GCN (about
    # 77% vs 63%) and the gate hands it most test nodes.
    assert mowst.test_mean >= base.test_mean + 0.05, (mowst.line(),
                                                      base.line())
    assert mowst.extra['test_weak_share'][0] > 0.5
