"""``model.accum_steps`` through ``tools/train.py``, as a user runs it: in a
fresh folder, 4 micro-batches x 8 train like batches of 32 (same losses,
same weights), and an ``accum_steps`` that does not divide the batch is
refused with one ``error:`` line before anything is written."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from test_user_errors import PRETRAIN, one_error_line, run_tool

from conftest import REPO_ROOT
from tiny_digits import digits_train_config, write_tiny_digits

HERE = osp.dirname(osp.abspath(__file__))
NUM_TRAIN, BATCH, K = 64, 32, 4
LOSS_TOL = 1e-6
# float32 AdamW: the same one-batch run with 2 threads instead of 1 ends
# 3.3e-6 away (an Intel Xeon with AMX): Adam divides gradients that are zero
# in exact arithmetic (attention's key bias, which softmax cancels) by
# their own rounding noise. The accumulated run ended 5.6e-6 away; float64
# runs agree to 1e-11 (tests/test_models/test_multimodal/test_grad_cache.py).
WEIGHT_TOL = 1e-5


def test_accum_steps_that_does_not_divide_the_batch(tmp_path):
    write_tiny_digits(str(tmp_path / 'data' / 'digits'), 4, 4)
    err = one_error_line(run_tool(tmp_path, 'train.py', PRETRAIN,
                                  '--cfg-options', 'model.accum_steps=5'))
    assert err == (
        'error: model.accum_steps=5 does not divide '
        f'train_dataloader.batch_size=32 of {PRETRAIN} (the batch of one '
        'process, split into 5 equal micro-batches): set the batch size to '
        'a multiple of 5 (e.g. 35) or accum_steps to a divisor of 32 (e.g. '
        '4), with --cfg-options.')
    assert os.listdir(tmp_path) == ['data']  # no work dir, no log


def train_tool(folder, config, work_dir, *options):
    """``python tools/train.py`` in ``folder`` with one thread (float sums
    in the same order in both runs) and the batch recorder importable."""
    env = dict(os.environ,
               PYTHONPATH=os.pathsep.join([REPO_ROOT, HERE]))
    proc = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'tools', 'train.py'), config,
         '--work-dir', work_dir, '--threads', '1', *options],
        cwd=str(folder), env=env, capture_output=True, text=True,
        timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(osp.join(work_dir, 'batches_rank0.jsonl')) as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope='module')
def one_batch_run(tmp_path_factory):
    """The digits config (no random augmentation, seed 0) in batches of 32,
    two epochs of two steps: the config, and the run's records and work
    dir."""
    folder = tmp_path_factory.mktemp('runs')
    data = write_tiny_digits(str(folder / 'data'), NUM_TRAIN, 4)
    config = digits_train_config(folder, data, BATCH)
    work_dir = str(folder / 'one')
    return config, train_tool(folder, config, work_dir), work_dir


def final_weights(work_dir: str) -> dict:
    return torch.load(osp.join(work_dir, 'epoch_2.pth'),
                      weights_only=True)['state_dict']


def largest_difference(work_dir: str, ref_dir: str) -> float:
    weights, ref = final_weights(work_dir), final_weights(ref_dir)
    assert weights.keys() == ref.keys()
    return max((weights[k] - ref[k]).abs().max().item() for k in ref)


@pytest.mark.slow
def test_k_micro_batches_train_as_one_batch(one_batch_run, tmp_path):
    """The same batches as 4 x 8, one process."""
    config, one, one_dir = one_batch_run
    accum = train_tool(tmp_path, config, str(tmp_path / 'accum'),
                       '--cfg-options', f'model.accum_steps={K}')
    assert len(one) == len(accum) == 2 * NUM_TRAIN // BATCH
    for a, b in zip(accum, one):
        assert a['img_paths'] == b['img_paths']
        assert abs(a['loss'] - b['loss']) <= LOSS_TOL, a['iter']
    worst = largest_difference(str(tmp_path / 'accum'), one_dir)
    print(f'largest weight difference after {len(one)} steps: {worst:.1e}')
    assert worst <= WEIGHT_TOL
    # Not vacuous: training moved the weights, and the losses changed.
    assert one[0]['loss'] != pytest.approx(one[-1]['loss'], abs=1e-3)


@pytest.mark.slow
def test_two_processes_of_k_micro_batches_train_as_one_batch(
        one_batch_run, tmp_path):
    """tools/dist_train.sh, 2 processes x 4 micro-batches x 4: the runner
    wraps the model in the accumulating DDP wrapper, the heads gather the
    2 x 16 pairs. Tolerances as tests/test_tools/test_dist_cli.py's for 2
    processes without accumulation (the gathered loss sums in another
    order)."""
    from test_dist_cli import read_batches, run_script
    config, one, one_dir = one_batch_run
    work_dir = str(tmp_path / 'two')
    run_script('dist_train.sh', config, '2', '--work-dir', work_dir,
               '--threads', '1', '--cfg-options', 'model.accum_steps=4',
               f'train_dataloader.batch_size={BATCH // 2}', cwd=tmp_path)
    ranks = [read_batches(work_dir, rank) for rank in (0, 1)]
    for it, ref in enumerate(one):
        assert (set(ranks[0][it]['img_paths'])
                | set(ranks[1][it]['img_paths'])) == set(ref['img_paths'])
        mean_loss = (ranks[0][it]['loss'] + ranks[1][it]['loss']) / 2
        assert mean_loss == pytest.approx(ref['loss'], abs=2e-5), it
    assert largest_difference(work_dir, one_dir) <= 2e-5
