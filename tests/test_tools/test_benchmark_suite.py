"""tools/benchmarks/benchmark.py's suite row: the zero-shot suite against
clip_benchmark on the same generated exports, tiny models."""
import sys

import pytest
import torch

from conftest import load_tool
from mmclip.benchmarks.peers import build_models
from mmclip.benchmarks.suite import measure_suite_vs_clip_benchmark


@pytest.fixture(scope='module')
def models():
    torch.manual_seed(0)
    return build_models('tiny', ['mmclip', 'open_clip'], 'cpu',
                        torch.float32)


def test_suite_row_without_clip_benchmark_says_why(models, monkeypatch):
    # Its submodules too: an earlier test may have imported them, and a
    # cached submodule imports even when its package is blocked.
    for name in ['clip_benchmark'] + [m for m in sys.modules
                                      if m.startswith('clip_benchmark.')]:
        monkeypatch.setitem(sys.modules, name, None)
    row = measure_suite_vs_clip_benchmark(models, 2, 2, 2, 1, lambda: None)
    assert row['mmclip'] == '—'
    assert row['open_clip'].startswith('clip-benchmark cannot be imported')


def test_suite_row_times_both_in_one_run(capsys):
    pytest.importorskip(
        'requests', reason="clip_benchmark's dataset builder imports requests")
    pytest.importorskip(
        'clip_benchmark.datasets.builder',
        reason='clip-benchmark is not installed (pip install --no-deps -r '
        'requirements/parity.txt)')
    bench = load_tool('benchmarks/benchmark.py')
    assert bench.main(['--quick', '--rows', 'suite',
                       '--libraries', 'open_clip']) == 0
    row = next(line for line in capsys.readouterr().out.splitlines()
               if line.startswith('| zero-shot suite on 2 exports'))
    cells = [c.strip() for c in row.strip('|').split('|')]
    # mmclip, open_clip (clip_benchmark): datasets/s; then their ratio.
    assert float(cells[1]) > 0 and float(cells[2]) > 0
    assert float(cells[4].rstrip('x')) > 0
