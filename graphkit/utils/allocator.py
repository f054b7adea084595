r"""CPU allocator settings for training processes.

PyTorch's CPU tensors come from the C library's ``malloc``. With glibc's
defaults, a block of a few MB that is freed at the end of a training step
goes back to the operating system (it was ``mmap``-ed, or the top of the
heap is trimmed), and the same block requested in the next step is mapped
again and zero-filled page by page on first touch. For models whose
temporaries are large arrays over the edges (the sheaf Laplacians' blocks:
:math:`d^2 E` values, 14 MB per array on Squirrel with :math:`d = 3`), these
page faults cost more than the arithmetic done in the arrays.

:func:`keep_freed_memory` raises glibc's mmap and trim thresholds, so freed
blocks stay in the process's heap and are reused: the same arithmetic, no
page faults. The resident size then counts freed blocks kept for reuse, up
to the heap's high-water mark (benchmarks that measure the peak of live
memory alone set a low fixed threshold instead, ``benchmarks/common.py``);
memory is returned to the system when the process ends.
``graphkit run`` calls it once at start-up; set
``GRAPHKIT_MALLOC_TUNING=0`` to keep the C library's defaults.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

__all__ = ['keep_freed_memory']

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_memory(threshold: int = 1 << 30) -> bool:
    r"""Asks glibc to serve blocks below ``threshold`` bytes from the heap
    and to keep up to ``threshold`` bytes of freed heap memory instead of
    returning it to the system (``mallopt(M_MMAP_THRESHOLD)`` and
    ``mallopt(M_TRIM_THRESHOLD)``).

    Returns :obj:`True` when the settings were applied, :obj:`False` when
    they do not apply: not Linux with glibc, or ``GRAPHKIT_MALLOC_TUNING``
    set to ``0``. It affects the calling process only, and only
    allocations made after the call."""
    if threshold <= 0:
        raise ValueError(f"threshold must be a positive number of bytes, "
                         f"got {threshold}")
    if os.environ.get('GRAPHKIT_MALLOC_TUNING', '1') == '0':
        return False
    if platform.system() != 'Linux' or platform.libc_ver()[0] != 'glibc':
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
    except OSError:
        return False
    value = ctypes.c_int(min(threshold, 2**31 - 1))
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, value) and
                libc.mallopt(_M_TRIM_THRESHOLD, value))
