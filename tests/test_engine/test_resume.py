"""Checkpoints of mmclip runs are plain data: mmengine's stock loader reads
and resumes them from any folder; other files give only their weights, and
``import mmclip`` changes nothing for other OpenMMLab code."""
import os
import os.path as osp
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

import mmclip.engine  # noqa: F401 (registers the hooks)
from mmclip.apis.train import check_resumable
from mmclip.utils import (UnsafeCheckpointError, mmclip_checkpoint_loading,
                          unsafe_globals)


class Linear(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.fc(inputs)
        if mode == 'loss':  # noise: exact resume needs the RNG states
            return dict(loss=(out + 0.1 * torch.randn_like(out)).pow(2).mean())
        return out


class Points(Dataset):
    metainfo = dict(classes=('a', 'b'))

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return dict(inputs=torch.tensor([float(i), 1.]))


def make_runner(work_dir, max_iters, hooks=('PlainCheckpointHook',
                                            'RNGStateHook'), **kwargs):
    torch.manual_seed(0)  # the same initial weights in every run
    return Runner(
        model=Linear(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=Points(),
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=2,
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        param_scheduler=dict(type='LinearLR', by_epoch=False,
                             start_factor=0.5, end=4),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=2,
                            by_epoch=False)),
        custom_hooks=[dict(type=h) for h in hooks],
        default_scope='mmclip',
        randomness=dict(seed=0),
        **kwargs)


def losses(runner):
    return list(runner.message_hub.get_scalar('train/loss').data[0])


def test_checkpoints_are_plain_and_resume_from_another_folder(tmp_path):
    straight = make_runner(tmp_path / 'straight', 4)
    straight.train()

    make_runner(tmp_path / 'run', 2).train()
    ckpt = tmp_path / 'run' / 'iter_2.pth'
    # No pickled code: numpy values, HistoryBuffers, RNG states are plain.
    assert unsafe_globals(str(ckpt)) == []
    torch.load(ckpt, weights_only=True)

    # Copied elsewhere and resumed into a new work dir by mmengine's own
    # loader (no mmclip loader installed).
    moved = tmp_path / 'elsewhere' / 'iter_2.pth'
    moved.parent.mkdir()
    shutil.copy(ckpt, moved)
    resumed = make_runner(tmp_path / 'new', 4, resume=True,
                          load_from=str(moved))
    resumed.train()
    assert resumed.iter == 4
    # The message hub history came back (4 losses, not 2) and the resumed
    # run reproduces the uninterrupted one.
    assert losses(resumed) == pytest.approx(losses(straight), abs=1e-7)
    assert resumed.message_hub.get_info('dataset_meta') == {
        'classes': ('a', 'b')}


def foreign_checkpoint(tmp_path):
    """A checkpoint of an mmengine run without PlainCheckpointHook (what
    other OpenMMLab libraries and older mmclip versions write)."""
    make_runner(tmp_path / 'foreign', 2, hooks=()).train()
    return str(tmp_path / 'foreign' / 'iter_2.pth')


def test_foreign_checkpoint_gives_weights_but_is_not_resumed(tmp_path):
    path = foreign_checkpoint(tmp_path)
    assert 'builtins.getattr' in unsafe_globals(path)
    weights = torch.load(path, weights_only=False)['state_dict']

    cfg = Config(dict(resume=True, load_from=path, work_dir=str(tmp_path)))
    with pytest.raises(UnsafeCheckpointError,
                       match=r'Cannot resume from .*iter_2.pth.*'
                       r'HistoryBuffer.*load_from=.*without --resume'):
        check_resumable(cfg)

    runner = make_runner(tmp_path / 'finetune', 1, load_from=path)
    with pytest.raises(Exception, match='Weights only load failed'):
        runner.load_or_resume()  # mmengine alone refuses it...
    with mmclip_checkpoint_loading():  # ...an mmclip run reads its weights
        runner.load_or_resume()
    for name, value in runner.model.state_dict().items():
        assert torch.equal(value, weights[name])


def test_import_mmclip_leaves_mmengine_loading_alone(tmp_path):
    path = foreign_checkpoint(tmp_path)
    script = textwrap.dedent(f'''
        from mmengine.runner.checkpoint import CheckpointLoader

        def stock():
            try:
                CheckpointLoader.load_checkpoint({path!r})
            except Exception as err:
                return type(err).__name__
            return 'loaded'

        before = stock()
        import mmclip, mmclip.apis, mmclip.engine
        from mmclip.utils import register_all_modules
        from mmclip.utils.checkpoint import mmclip_checkpoint_loading
        register_all_modules()
        after_import = stock()
        with mmclip_checkpoint_loading():
            inside = stock()
        print(before, after_import, inside, stock())
    ''')
    env = dict(os.environ)
    out = subprocess.run([sys.executable, '-c', script], capture_output=True,
                         text=True, env=env, cwd=str(tmp_path), timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-4:] == [
        'UnpicklingError', 'UnpicklingError', 'loaded', 'UnpicklingError']
    assert osp.isfile(path)
