import subprocess
import sys

import pytest

from graphkit.utils.allocator import keep_freed_memory


def _in_fresh_process(code, **env):
    import os
    out = subprocess.run([sys.executable, '-c', code], capture_output=True,
                         text=True, env={**os.environ, **env}, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_keep_freed_memory_applies_on_glibc_and_can_be_turned_off():
    import platform
    code = ('from graphkit.utils.allocator import keep_freed_memory; '
            'print(keep_freed_memory())')
    expected = str(platform.system() == 'Linux' and
                   platform.libc_ver()[0] == 'glibc')
    assert _in_fresh_process(code) == expected
    assert _in_fresh_process(code, GRAPHKIT_MALLOC_TUNING='0') == 'False'


def test_keep_freed_memory_rejects_a_bad_threshold(monkeypatch):
    monkeypatch.delenv('GRAPHKIT_MALLOC_TUNING', raising=False)
    with pytest.raises(ValueError, match='positive number of bytes'):
        keep_freed_memory(0)


def test_tensors_are_unchanged_after_keep_freed_memory():
    # the setting changes where memory comes from, never the values
    code = ('import torch; from graphkit.utils.allocator import '
            'keep_freed_memory; keep_freed_memory(); '
            'torch.manual_seed(0); x = torch.randn(1000, 1000); '
            'y = x @ x; del y; z = x @ x; print(float(z.sum()))')
    plain = _in_fresh_process(code, GRAPHKIT_MALLOC_TUNING='0')
    assert _in_fresh_process(code) == plain
