r"""Helpers shared by the benchmark scripts: peak-memory probes and
running a measurement in a fresh subprocess (so peaks do not mix)."""
import multiprocessing as mp
import resource

import torch

__all__ = ['reset_peak', 'peak_mb', 'sync', 'measure', 'FIXED_MMAP_THRESHOLD']

# glibc raises its mmap threshold each time a large block is freed, after
# which blocks of that size come from the heap and stay resident when freed:
# the peak resident size then counts memory that is no longer live and grows
# with the number of large tensors a run has freed (e.g. with depth). A
# fixed threshold returns every block above 64 KiB to the system when it is
# freed, so the peak tracks live memory. Pass it as ``measure(..., env=)``.
FIXED_MMAP_THRESHOLD = {'MALLOC_MMAP_THRESHOLD_': str(64 * 1024)}


def reset_peak(device=None) -> float:
    r"""Resets the peak resident size (Linux ``clear_refs``) and returns the
    current resident size in MB; on a CUDA ``device``, the peak and current
    memory allocated on it."""
    if device is not None and torch.device(device).type == 'cuda':
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device) / 2**20
    try:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')
    except OSError:
        pass
    return status_mb('VmRSS')


def status_mb(field: str) -> float:
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith(field + ':'):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_mb(device=None) -> float:
    if device is not None and torch.device(device).type == 'cuda':
        return torch.cuda.max_memory_allocated(device) / 2**20
    return status_mb('VmHWM')


def sync(device=None) -> None:
    r"""Waits for the device's queued kernels (a no-op on CPU), so that
    wall-clock timings cover the work."""
    if device is not None and torch.device(device).type == 'cuda':
        torch.cuda.synchronize(device)


def measure(target, args, timeout, env=None):
    r"""Runs ``target(*args, queue)`` in a fresh (spawned) process and
    returns what it puts on the queue, or ``None`` if it fails or runs past
    ``timeout`` seconds. ``env`` adds environment variables for the child
    only, e.g. ``FIXED_MMAP_THRESHOLD``."""
    import os
    ctx = mp.get_context('spawn')
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    saved = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        proc.start()            # the child reads the environment at exec
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    import queue as queue_mod
    import time
    result, deadline = None, time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = queue.get(timeout=1.0)
            break
        except queue_mod.Empty:
            if not proc.is_alive():      # the child failed: no result
                break
    proc.join(5)
    if proc.is_alive():
        proc.kill()
    return result


