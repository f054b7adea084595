import multiprocessing as mp
import os
import socket
import time

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _entry(rank, world, port, fn, args):
    os.environ.update({'MASTER_ADDR': '127.0.0.1', 'MASTER_PORT': str(port),
                       'RANK': str(rank), 'WORLD_SIZE': str(world),
                       'LOCAL_RANK': str(rank)})
    import torch
    torch.set_num_threads(1)
    fn(rank, *args)


@pytest.fixture
def run_ranks():
    r"""Starts ``world`` real processes (forked, gloo on CPU) running
    ``fn(rank, *args)`` and returns their exit codes; fails the test if a
    process is still alive after ``timeout`` seconds."""
    def run(world, fn, *args, timeout=120.0):
        ctx = mp.get_context('fork')
        port = _free_port()
        procs = [ctx.Process(target=_entry, args=(r, world, port, fn, args))
                 for r in range(world)]
        for p in procs:
            p.start()
        deadline = time.monotonic() + timeout
        for p in procs:
            p.join(max(deadline - time.monotonic(), 0.1))
        alive = [i for i, p in enumerate(procs) if p.is_alive()]
        for i in alive:
            procs[i].kill()
            procs[i].join()
        assert not alive, f'rank(s) {alive} still running after {timeout} s'
        return [p.exitcode for p in procs]
    return run
