"""What a user sees of ``tools/train.py``: a few lines (where the log is,
progress, result) while mmengine's full log goes to the work dir;
``--log-level INFO`` gives mmengine's console, ``--threads N`` fixes the
threads."""
import glob
import os
import os.path as osp
import subprocess
import sys

import pytest

from conftest import REPO_ROOT
from tiny_digits import write_tiny_digits

PRETRAIN = osp.join(REPO_ROOT, 'configs', 'clip',
                    'clip_vit-tiny-p8_1xb32-24e_digits-32px.py')


@pytest.fixture(scope='module')
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp('user')
    write_tiny_digits(str(root / 'data' / 'digits'), 64, 0)
    return root


def train(project, work_dir: str, *flags: str) -> subprocess.CompletedProcess:
    """Two iterations (64 digits, batch 32) of the digits pretraining."""
    done = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'), PRETRAIN,
         '--work-dir', work_dir, *flags, '--cfg-options',
         'train_cfg.max_epochs=1'],
        cwd=str(project), capture_output=True, text=True, timeout=600,
        env=dict(os.environ, PYTHONPATH=REPO_ROOT))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def log_of(project, work_dir: str) -> str:
    files = glob.glob(str(project / work_dir / '*' / '*.log'))
    assert len(files) == 1, files
    return open(files[0]).read()


def test_a_few_lines_on_the_console_everything_in_the_log(project):
    done = train(project, 'quiet')
    lines = done.stdout.splitlines()
    assert lines[0].startswith('Training clip_vit-tiny-p8_1xb32-24e_digits')
    assert 'quiet' in lines[0] and lines[0].endswith('.log')
    assert lines[-1].startswith('Trained in') and 'quiet' in lines[-1]
    assert len(lines) <= 6, done.stdout  # header, progress, result
    assert 'System environment' not in done.stdout
    assert 'Config:' not in done.stdout
    log = log_of(project, 'quiet')
    for full in ('System environment', 'Config:', 'Epoch(train) [1][2/2]',
                 'PyTorch threads on', 'fitted to the load'):
        assert full in log, full


def test_log_level_info_and_fixed_threads(project):
    done = train(project, 'verbose', '--log-level', 'INFO', '--threads', '1')
    assert 'System environment' in done.stdout
    assert 'Epoch(train) [1][2/2]' in done.stdout
    assert '1 PyTorch threads on' in done.stdout
    assert '(fixed)' in log_of(project, 'verbose')
