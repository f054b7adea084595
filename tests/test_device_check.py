import importlib.util
import subprocess
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parents[1] / 'benchmarks' / 'devices.py'
CASES = ['gcn:csbm', 'mowst/sage:csbm', 'mowst-star/gcn:csbm',
         'nsd-diag:csbm', 'nsd-bundle:csbm', 'graph-transformer:csbm',
         'gcnii:csbm', 'higcn:csbm', 'gcn+forward-sf:csbm']


def _module():
    spec = importlib.util.spec_from_file_location('devices', SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_device_check_agrees_with_itself_on_the_cpu():
    # The CPU/GPU comparison, run CPU against CPU: two copies built from
    # the same preset must give exactly the same loss and gradients.
    res = subprocess.run([sys.executable, str(SCRIPT), '--device', 'cpu',
                          '--steps', '1', '--cases', *CASES],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    rows = [line for line in res.stdout.splitlines()
            if line.startswith('| ') and ':csbm' in line]
    assert len(rows) == len(CASES)
    assert all(line.endswith('| yes |') for line in rows), res.stdout


def test_device_check_sees_a_difference():
    # With dropout left on and another seed for the second copy's step, the
    # two copies draw different masks: the check must report it.
    mod = _module()
    mod._no_dropout = lambda model: None
    step, trainers = mod._step, []

    def other_seed(trainer, epoch=1):
        if trainer not in trainers:
            trainers.append(trainer)
        return step(trainer, epoch + 1000 * trainers.index(trainer))
    mod._step = other_seed
    ok, loss_diff, _, grad_diff, _ = mod.check('gcn:csbm', 1,
                                               torch.device('cpu'))
    assert loss_diff == 0.0         # evaluation has no dropout
    assert not ok and grad_diff > 1e-3


def test_device_check_names_a_bad_case():
    res = subprocess.run([sys.executable, str(SCRIPT), '--device', 'cpu',
                          '--cases', 'no-dataset'],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 1
    assert "case 'no-dataset' is not model:dataset" in res.stdout
