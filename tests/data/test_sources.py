import os
import stat
import subprocess
import sys
import time

import pytest

from graphkit.data import DatasetNotAvailableError, load, resolve_root
from graphkit.data.sources import RawLayout, is_offline, stage_raw_files


def test_root_resolution_order(tmp_path, monkeypatch):
    monkeypatch.setenv('GRAPHKIT_DATA', str(tmp_path / 'env'))
    assert resolve_root(tmp_path / 'arg') == tmp_path / 'arg'
    assert resolve_root() == tmp_path / 'env'
    monkeypatch.delenv('GRAPHKIT_DATA')
    monkeypatch.setenv('HOME', str(tmp_path / 'home'))
    assert resolve_root() == tmp_path / 'home' / '.cache' / 'graphkit'


def test_offline_flag(monkeypatch):
    monkeypatch.setenv('GRAPHKIT_OFFLINE', '1')
    assert is_offline('https://example.org/x')
    monkeypatch.setenv('GRAPHKIT_OFFLINE', '0')
    assert not is_offline('https://example.org/x')


def test_copies_from_mirror_without_writing_it(tmp_path):
    mirror = tmp_path / 'mirror'
    raw = mirror / 'Fake' / 'raw'
    raw.mkdir(parents=True)
    (raw / 'a.txt').write_text('hello')
    for p in (raw / 'a.txt', raw, mirror / 'Fake', mirror):
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP
                                     | stat.S_IWOTH))
    try:
        before = sorted(str(p) for p in mirror.rglob('*'))
        layout = RawLayout(dirs=['Fake/raw'], files=['Fake/raw/a.txt'])
        root = tmp_path / 'root'
        stage_raw_files('fake', layout, root, mirror)
        assert (root / 'Fake/raw/a.txt').read_text() == 'hello'
        # Copies are writable even though the mirror is read-only.
        assert os.access(root / 'Fake/raw/a.txt', os.W_OK)
        assert sorted(str(p) for p in mirror.rglob('*')) == before
    finally:
        for p in (mirror, mirror / 'Fake', raw, raw / 'a.txt'):
            p.chmod(p.stat().st_mode | stat.S_IWUSR)


def test_missing_offline_fails_fast_with_paths(tmp_path, monkeypatch):
    monkeypatch.setenv('GRAPHKIT_OFFLINE', '1')
    empty_mirror = tmp_path / 'mirror'
    empty_mirror.mkdir()
    t0 = time.perf_counter()
    with pytest.raises(DatasetNotAvailableError) as info:
        load('citeseer', root=tmp_path / 'root', mirror=empty_mirror)
    assert time.perf_counter() - t0 < 5.0
    msg = str(info.value)
    assert "'citeseer'" in msg
    assert str(tmp_path / 'root' / 'Planetoid' / 'CiteSeer' / 'raw') in msg
    assert str(empty_mirror / 'Planetoid' / 'CiteSeer' / 'raw') in msg
    assert 'GRAPHKIT_MIRROR' in msg and 'GRAPHKIT_DATA' in msg


def test_missing_offline_fails_fast_in_fresh_process(tmp_path):
    r"""The real CLI, with no network override: the connectivity probe is
    bounded, so the error still comes within 5 seconds of the load."""
    env = dict(os.environ, GRAPHKIT_DATA=str(tmp_path / 'root'),
               GRAPHKIT_MIRROR=str(tmp_path))
    env.pop('GRAPHKIT_OFFLINE', None)
    code = ('import time, graphkit.data as d\n'
            't = time.perf_counter()\n'
            'try:\n'
            '    d.load("wisconsin")\n'
            'except d.DatasetNotAvailableError as e:\n'
            '    print("ELAPSED", time.perf_counter() - t)\n'
            '    print(e)\n')
    out = subprocess.run([sys.executable, '-c', code], env=env,
                         capture_output=True, text=True, timeout=120,
                         stdin=subprocess.DEVNULL)
    if 'ELAPSED' not in out.stdout:
        # A machine with network access downloads instead of failing.
        assert out.returncode == 0, out.stderr
        pytest.skip('network reachable: WebKB/wisconsin was downloadable')
    elapsed = float(out.stdout.split('ELAPSED')[1].split()[0])
    assert elapsed < 5.0
    assert "'wisconsin'" in out.stdout


def test_ogb_missing_release_marker_never_prompts(tmp_path, monkeypatch):
    monkeypatch.setenv('GRAPHKIT_OFFLINE', '1')
    folder = tmp_path / 'ogb' / 'ogbl_ddi'
    (folder / 'raw').mkdir(parents=True)
    (folder / 'raw' / 'edge.csv.gz').write_bytes(b'')
    monkeypatch.setattr('builtins.input', lambda *a: pytest.fail(
        'OGB reached its interactive prompt'))
    empty = tmp_path / 'empty-mirror'
    empty.mkdir()
    with pytest.raises(DatasetNotAvailableError, match='RELEASE_v1.txt'):
        load('ogbl-ddi', root=tmp_path, mirror=empty)
    assert folder.is_dir()  # never deleted


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ValueError, match='Valid names: .*cora'):
        load('coraa')
    with pytest.raises(ValueError, match='Valid OGB names'):
        load('ogbn-nonexistent')


def test_bad_split_and_task():
    with pytest.raises(ValueError, match="Unknown split 'geom-gcn'.*Valid splits: random"):
        load('karate', split='geom-gcn')
    with pytest.raises(ValueError, match='supports task'):
        load('karate', task='graph')
