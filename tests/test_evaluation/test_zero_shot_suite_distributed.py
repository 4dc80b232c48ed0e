"""The zero-shot suite in 2 gloo processes: each rank encodes half of the
images, the features are gathered in the data's order, the classifier is
built by both ranks, and rank 0 alone writes the files; the results equal
one process's."""
import json
import os
import os.path as osp
import pickle

import numpy as np
import pytest
import torch
from test_zero_shot_suite import (CONFIG, _evaluate, write_retrieval_export,
                                  write_wds_export)

from conftest import free_loopback_port, run_spawned
from mmclip.evaluation.zero_shot_suite import SuiteDataset

WORLD_SIZE = 2
TIMEOUT_S = 180
SPECS = [SuiteDataset('colours'), SuiteDataset('squares')]


def _write_data(root) -> None:
    # 12 images in 2 shards, one unreadable; a retrieval set of 5.
    write_wds_export(str(root / 'wds_colours'), corrupt=('s0000004', ))
    write_retrieval_export(str(root / 'wds_squares'), count=5)


def _model():
    from mmclip.apis import get_model
    torch.manual_seed(0)
    return get_model(CONFIG)


def _worker(rank: int, port: int, root: str, out: str) -> None:
    import pathlib

    import torch.distributed as dist
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}',
                            rank=rank, world_size=WORLD_SIZE)
    try:
        report = _evaluate(_model(), SPECS, pathlib.Path(root),
                           pathlib.Path(out) / 'suite')
        with open(osp.join(out, f'report{rank}.pkl'), 'wb') as f:
            pickle.dump((report.records, report.counts, report.skipped), f)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_processes_equal_one(tmp_path):
    _write_data(tmp_path / 'data')
    single = _evaluate(_model(), SPECS, tmp_path / 'data',
                       tmp_path / 'single')
    out = tmp_path / 'dist'
    out.mkdir()
    run_spawned(_worker, (free_loopback_port(), str(tmp_path / 'data'),
                          str(out)), WORLD_SIZE, TIMEOUT_S)
    for rank in range(WORLD_SIZE):
        with open(out / f'report{rank}.pkl', 'rb') as f:
            records, counts, skipped = pickle.load(f)
        assert counts == single.counts
        # The same samples skipped (the messages name objects' addresses).
        assert [s.split(':')[0] for s in skipped['colours']] == [
            s.split(':')[0] for s in single.skipped['colours']]
        for got, expected in zip(records, single.records):
            assert got['metrics'] == pytest.approx(expected['metrics'],
                                                   abs=1e-6)
    # The gathered features in the data's order, the same as one
    # process's, written once.
    for name in ('colours', 'squares'):
        np.testing.assert_array_equal(
            np.load(out / 'suite' / f'{name}_labels.npy'),
            np.load(tmp_path / 'single' / f'{name}_labels.npy'))
        np.testing.assert_allclose(
            np.load(out / 'suite' / f'{name}_features.npy'),
            np.load(tmp_path / 'single' / f'{name}_features.npy'),
            atol=1e-5)
    with open(out / 'suite' / 'squares_features.json') as f:
        assert json.load(f)['captions'][4] == [
            'a white square 4', 'a plain white picture']


@pytest.mark.slow
def test_tool_under_dist_run(tmp_path):
    # tools/dist_run.sh: torchrun, 2 CPU processes, --launcher pytorch.
    import subprocess
    import sys

    from conftest import REPO_ROOT
    _write_data(tmp_path / 'data')
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1',
               PORT=str(free_loopback_port()))
    done = subprocess.run([
        osp.join(REPO_ROOT, 'tools', 'dist_run.sh'),
        'analysis_tools/zero_shot_suite.py', str(WORLD_SIZE), CONFIG,
        '--datasets', 'colours', '--data-root', str(tmp_path / 'data'),
        '--out', str(tmp_path / 'out'), '--cache-dir',
        str(tmp_path / 'cache'), '--num-workers', '1'
    ], env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-2000:]
    # Rank 0 alone prints the table.
    assert done.stdout.count('| colours |') == 1
    assert (tmp_path / 'out' / 'benchmark.csv').is_file()
    assert np.load(tmp_path / 'out' / 'colours_features.npy').shape[0] == 11


def test_launcher_without_torchrun_is_one_error_line(tmp_path, capsys,
                                                     monkeypatch):
    from conftest import load_tool
    for name in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'):
        monkeypatch.delenv(name, raising=False)
    tool = load_tool('analysis_tools/zero_shot_suite.py')
    assert tool.main([CONFIG, '--data-root', str(tmp_path),
                      '--launcher', 'pytorch']) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        'error: --launcher pytorch reads RANK, WORLD_SIZE')
    assert 'tools/dist_run.sh analysis_tools/zero_shot_suite.py N' in err[0]
