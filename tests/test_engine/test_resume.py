"""mmengine runs save full-state checkpoints and resume from them under
torch >= 2.6, while files from elsewhere are never unpickled."""
import shutil

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.runner import Runner
from torch.utils.data import Dataset

import mmclip.engine  # noqa: F401 (installs the safe loader)
from mmclip.utils import UnsafeCheckpointError


class Linear(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(2, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        out = self.fc(inputs)
        return dict(loss=out.pow(2).mean()) if mode == 'loss' else out


class Points(Dataset):

    def __len__(self):
        return 8

    def __getitem__(self, i):
        return dict(inputs=torch.tensor([float(i), 1.]))


def make_runner(work_dir, max_iters, **kwargs):
    return Runner(
        model=Linear(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=Points(),
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=2,
            collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=2,
                            by_epoch=False)),
        custom_hooks=[dict(type='TrustWorkDirHook')],
        default_scope='mmclip',
        randomness=dict(seed=0),
        **kwargs)


def test_resume_from_own_work_dir(tmp_path):
    make_runner(tmp_path / 'run', 2).train()
    resumed = make_runner(tmp_path / 'run', 4, resume=True)
    resumed.train()
    assert resumed.iter == 4
    # ...but the same full-state file copied elsewhere is refused.
    shutil.copy(tmp_path / 'run' / 'iter_2.pth', tmp_path / 'foreign.pth')
    other = make_runner(tmp_path / 'other', 4,
                        load_from=str(tmp_path / 'foreign.pth'))
    with pytest.raises(UnsafeCheckpointError, match='weights_only'):
        other.train()
