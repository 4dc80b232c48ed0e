"""``tools/dist_train.sh`` and ``tools/dist_test.sh`` with 2 CPU processes
(torchrun, gloo), through the real command-line tools.

The digits config on 64 training images: 2 processes x 16 images against
one process x 32 (the same global batches, no random augmentation), two
epochs of two iterations, with ``--auto-scale-lr``. Each rank must train
on its own half of every global batch, the mean of the rank losses must
equal the one-process loss at every iteration (the contrastive head gathers
the global batch; DDP averages gradients), and both runs must end with the
same weights. Then the 2-process run's checkpoint is evaluated by 2
processes and must give the one-process predictions.
"""
import json
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch

from conftest import REPO_ROOT
from tiny_digits import TRAIN_CONFIG, digits_train_config, write_tiny_digits

# torchrun-launched training and testing through the shell scripts.
pytestmark = pytest.mark.slow

TEST_CONFIG = osp.join(REPO_ROOT, 'configs', 'clip',
                       'clip_vit-tiny-p8_zeroshot-cls_digits-32px.py')
HERE = osp.dirname(osp.abspath(__file__))
NUM_TRAIN, NUM_VAL, GLOBAL_BATCH = 64, 32, 32
ITERS = 2 * NUM_TRAIN // GLOBAL_BATCH  # two epochs
TIMEOUT_S = 300


@pytest.fixture(scope='module')
def tiny_digits(tmp_path_factory):
    return write_tiny_digits(str(tmp_path_factory.mktemp('digits')),
                             NUM_TRAIN, NUM_VAL)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run_script(script, *args, cwd):
    """``tools/{script} ARGS`` with this interpreter, on a free port."""
    env = dict(os.environ, PYTHON=sys.executable, PORT=str(free_port()),
               PYTHONPATH=HERE + os.pathsep + os.environ.get('PYTHONPATH',
                                                             ''))
    proc = subprocess.run(
        ['bash', osp.join(REPO_ROOT, 'tools', script), *args], cwd=str(cwd),
        env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-4000:])
    return proc


def read_batches(work_dir, rank):
    with open(osp.join(work_dir, f'batches_rank{rank}.jsonl')) as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope='module')
def runs(tmp_path_factory, tiny_digits):
    """Work dirs of the 2-process run (tools/dist_train.sh) and of the
    one-process run (mmclip.apis.train, in this process)."""
    from mmclip.apis import prepare_train_config, train
    folder = tmp_path_factory.mktemp('runs')
    two = str(folder / 'two')
    # --auto-scale-lr: 2 x 16 is the config's base batch of 32, so the
    # learning rate stays (had mmengine counted one process, it would
    # halve, and the losses below would differ).
    run_script(
        'dist_train.sh',
        digits_train_config(folder, tiny_digits, GLOBAL_BATCH // 2), '2',
        '--work-dir', two, '--auto-scale-lr', cwd=folder)
    one = str(folder / 'one')
    train(prepare_train_config(
        digits_train_config(folder, tiny_digits, GLOBAL_BATCH), work_dir=one,
        auto_scale_lr=True))
    return two, one


def test_two_processes_train_as_one_on_the_global_batch(runs):
    two, one = runs
    single = read_batches(one, 0)
    ranks = [read_batches(two, 0), read_batches(two, 1)]
    assert [r['iter'] for r in single] == list(range(1, ITERS + 1))
    for it in range(ITERS):
        rank0, rank1 = (set(r[it]['img_paths']) for r in ranks)
        assert len(rank0) == len(rank1) == GLOBAL_BATCH // 2
        assert not rank0 & rank1, f'iteration {it + 1}: shared samples'
        assert rank0 | rank1 == set(single[it]['img_paths'])
        # Each rank's loss covers its rows against the whole global batch.
        mean_loss = (ranks[0][it]['loss'] + ranks[1][it]['loss']) / 2
        assert mean_loss == pytest.approx(single[it]['loss'], abs=2e-5), it
    # Different halves give different rank losses: the comparison above
    # is not between copies of one number.
    assert ranks[0][0]['loss'] != pytest.approx(ranks[1][0]['loss'])

    # Rank 0's checkpoint loads (weights only, from anywhere) and holds the
    # one-process weights.
    from mmclip.apis import get_model
    weights = [
        get_model(TRAIN_CONFIG, pretrained=osp.join(run, 'epoch_2.pth'))
        .state_dict() for run in (two, one)
    ]
    assert weights[0].keys() == weights[1].keys()
    for name, value in weights[0].items():
        torch.testing.assert_close(value, weights[1][name], atol=2e-5,
                                   rtol=1e-4, msg=name)


def test_two_processes_evaluate_as_one(runs, tiny_digits, tmp_path):
    from mmclip.apis import prepare_test_config, test
    two, _ = runs
    checkpoint = osp.join(two, 'epoch_2.pth')
    options = {
        'test_dataloader.dataset.data_root': tiny_digits,
        'test_dataloader.dataset.classes': f'{tiny_digits}/classnames.txt',
        'test_dataloader.batch_size': 8,
        'model.predict_head.cache_dir': None,
    }
    out_two = str(tmp_path / 'two.json')
    proc = run_script(
        'dist_test.sh', TEST_CONFIG, checkpoint, '2', '--out', out_two,
        '--work-dir', str(tmp_path / 'wd_two'), '--cfg-options',
        *(f'{key}={value}' for key, value in options.items()), cwd=tmp_path)
    printed = [line for line in proc.stdout.splitlines()
               if line.startswith('accuracy/top1: ')]
    assert len(printed) == 1  # rank 0 prints, once

    out_one = str(tmp_path / 'one.json')
    metrics = test(prepare_test_config(
        TEST_CONFIG, checkpoint, work_dir=str(tmp_path / 'wd_one'),
        out=out_one, cfg_options=options))
    assert float(printed[0].split(': ')[1]) == pytest.approx(
        metrics['accuracy/top1'], abs=1e-4)

    with open(out_two) as f:
        preds_two = json.load(f)
    with open(out_one) as f:
        preds_one = json.load(f)
    # Gathered from both ranks: every held-out image once, in dataset order.
    assert [p['img_path'] for p in preds_two] == [
        p['img_path'] for p in preds_one]
    assert len(preds_two) == NUM_VAL
    for a, b in zip(preds_two, preds_one):
        assert a['pred_label'] == b['pred_label']
        assert a['pred_score'] == pytest.approx(b['pred_score'], abs=1e-5)
