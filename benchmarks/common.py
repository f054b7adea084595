r"""Helpers shared by the benchmark scripts: peak-memory probes and
running a measurement in a fresh subprocess (so peaks do not mix)."""
import multiprocessing as mp
import resource

__all__ = ['reset_peak', 'peak_mb', 'measure']


def reset_peak() -> float:
    r"""Resets the peak resident size (Linux ``clear_refs``) and returns the
    current resident size in MB."""
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


def peak_mb() -> float:
    return status_mb('VmHWM')


def measure(target, args, timeout):
    ctx = mp.get_context('spawn')
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
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


