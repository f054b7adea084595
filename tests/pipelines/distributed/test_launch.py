import json
import os
import time

import torch

from graphkit.pipelines.distributed import first_per_machine, session


def _writer_first(rank, folder):
    # the first process writes the file slowly; the others only read it,
    # and must find it complete
    path = os.path.join(folder, 'shared.txt')

    def prepare():
        if rank == 0:
            time.sleep(0.5)
            with open(path + '.part', 'w') as f:
                f.write('done')
            os.replace(path + '.part', path)
        elif not os.path.exists(path):
            return 'missing', time.monotonic()
        with open(path) as f:
            return f.read(), time.monotonic()

    with session('gloo', 30.0, torch.device('cpu')) as ctx:
        text, when = first_per_machine(ctx, prepare, 'preparation')
    with open(os.path.join(folder, f'out.{rank}'), 'w') as f:
        json.dump({'text': text, 'when': when}, f)


def test_first_per_machine_runs_first_process_before_the_others(
        run_ranks, tmp_path):
    codes = run_ranks(3, _writer_first, str(tmp_path), timeout=60)
    assert codes == [0, 0, 0]
    out = [json.loads((tmp_path / f'out.{r}').read_text()) for r in range(3)]
    assert all(o['text'] == 'done' for o in out)
    assert out[0]['when'] <= min(out[1]['when'], out[2]['when'])


def _failing_first(rank, folder):
    def prepare():
        if rank == 0:
            raise ValueError('raw file missing: data.npz')
        return 'loaded'

    start = time.monotonic()
    try:
        with session('gloo', 30.0, torch.device('cpu')) as ctx:
            first_per_machine(ctx, prepare, "dataset 'toy'")
    except Exception as err:   # noqa: BLE001 - the test records any error
        with open(os.path.join(folder, f'err.{rank}'), 'w') as f:
            json.dump({'type': type(err).__name__, 'error': str(err),
                       'seconds': time.monotonic() - start}, f)
        os._exit(3)


def test_first_per_machine_failure_stops_every_process(run_ranks, tmp_path):
    codes = run_ranks(2, _failing_first, str(tmp_path), timeout=60)
    assert codes == [3, 3]
    first = json.loads((tmp_path / 'err.0').read_text())
    other = json.loads((tmp_path / 'err.1').read_text())
    assert first['type'] == 'ValueError' and 'data.npz' in first['error']
    assert other['type'] == 'RuntimeError'
    assert "dataset 'toy' failed on the first process" in other['error']
    # told at once, not after the 30 s timeout
    assert other['seconds'] < 15.0
