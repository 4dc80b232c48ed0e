"""mmclip runs keep mmengine's full log in the work dir and show the user a
few lines: where the log is, the progress, the result
(mmclip.engine.build_runner, ConsoleProgressHook)."""
import glob
import io
import os.path as osp

import pytest

from conftest import tiny_training_config
from mmclip.engine import build_runner
from mmclip.engine.hooks import ConsoleProgressHook


def _log_text(work_dir: str) -> str:
    files = glob.glob(osp.join(work_dir, '*', '*.log'))
    assert files, f'no log file in {work_dir}'
    return ''.join(open(f).read() for f in files)


@pytest.mark.parametrize('runner_type', ['Runner', 'FlexibleRunner'])
def test_quiet_console_full_log_file(runner_type, tmp_path, capsys):
    cfg = tiny_training_config(str(tmp_path), iters=6, log_level='INFO',
                               runner_type=runner_type,
                               env_cfg=dict(dist_cfg=dict(backend='gloo')))
    runner = build_runner(cfg)
    runner.train()
    out = capsys.readouterr().out
    # RandomImageTextPairs is no mmengine BaseDataset: mmengine warns that
    # it has no metainfo, the one warning of this run.
    lines = [line for line in out.strip().splitlines()
             if 'has no metainfo' not in line]
    assert lines[0].startswith('Training tiny_') and 'log: ' in lines[0]
    assert lines[-1].startswith('Trained in')
    assert len(lines) == 6, out  # header, 4 quarters, result
    assert 'iter 6/6' in out and 'loss ' in out and 'epoch' not in out
    for noise in ('System environment', 'Config:', 'Epoch(train)',
                  '"FileClient" will be deprecated'):
        assert noise not in out
    log = _log_text(str(tmp_path))
    assert 'System environment' in log and 'Config:' in log
    assert '(train) [1][6/6]' in log


def test_console_log_level_info_is_mmengines_console(tmp_path, capsys):
    cfg = tiny_training_config(str(tmp_path), iters=2, log_level='INFO',
                               console_log_level='INFO')
    runner = build_runner(cfg)
    runner.train()
    out = capsys.readouterr().out
    assert 'System environment' in out
    assert '(train) [1][2/6]' in out
    assert not any(isinstance(h, ConsoleProgressHook) for h in runner.hooks)


def test_progress_bar_on_a_terminal():
    from types import SimpleNamespace
    stream = io.StringIO()
    hook = ConsoleProgressHook(stream=stream, bar=True)
    hook._open_bar(total=5)
    runner = SimpleNamespace(iter=0, max_iters=5, epoch=0, message_hub=None)
    for _ in range(5):
        hook._bar.update(1)
    hook._close_bar()
    assert '5/5' in stream.getvalue()
    del runner
