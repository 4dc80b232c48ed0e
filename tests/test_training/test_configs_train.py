"""Every training config in configs/clip builds and trains 2 iterations on
tiny data (CPU, fp32: autocast is swapped for the plain wrapper)."""
import glob
import math
import os.path as osp

import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

from conftest import REPO_ROOT


def _trains_on_captions(path):
    # The ImageNet recipes (classifiers, ImageNet classes as captions) train
    # on labelled folders in test_finetune_configs.py.
    cfg = Config.fromfile(path)
    dataset = cfg.get('train_dataloader', {}).get('dataset') or {}
    return cfg.model.type == 'CLIPModel' and dataset.get('type') not in (
        None, 'ClassificationTextDataset')


TRAIN_CONFIGS = sorted(
    p for p in glob.glob(osp.join(REPO_ROOT, 'configs', 'clip', '*.py'))
    if _trains_on_captions(p))


@pytest.fixture(scope='module')
def tiny_captions(tmp_path_factory):
    root = tmp_path_factory.mktemp('captions')
    rng = np.random.default_rng(0)
    lines = ['filepath,title']
    for i in range(4):
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), np.uint8)).save(
            root / f'{i}.png')
        lines.append(f'{i}.png,a photo of thing number {i}')
    (root / 'train.csv').write_text('\n'.join(lines) + '\n')
    return str(root)


def test_the_expected_training_configs_exist():
    names = {osp.basename(p) for p in TRAIN_CONFIGS}
    assert {'clip_vit-base-p32_8xb512-amp-32e_cc3m.py',
            'clip_vit-base-p16_8xb512-amp-32e_cc3m.py',
            'siglip_vit-base-p16_8xb512-amp-32e_cc3m.py',
            'clip_vit-base-p16_8xb512-amp-fsdp-32e_cc3m.py',
            'clip_vit-base-p16_4xb256-accum4-amp-32e_cc3m.py',
            'clip_vit-tiny-p8_1xb32-24e_digits-32px.py'} <= names


def _param(path):
    # The real ViT-B widths take 10-50 s each on 2 CPU cores, the tiny
    # digits configs a second or two.
    slow = '_vit-tiny' not in osp.basename(path)
    return pytest.param(path, marks=pytest.mark.slow if slow else ())


@pytest.mark.parametrize('path', [
    _param(p) for p in TRAIN_CONFIGS if 'strategy' not in Config.fromfile(p)
], ids=osp.basename)
def test_config_trains_two_iterations(path, tmp_path, tiny_captions):
    from mmclip.apis import train
    cfg = Config.fromfile(path)
    dataset = cfg.train_dataloader.dataset
    # A ConcatDataset (captions replayed among the user's): the first one's.
    pipeline = (dataset.get('datasets') or [dataset])[0].pipeline
    cfg.train_dataloader = dict(
        # accumulating configs split the batch into accum_steps parts
        batch_size=max(2, cfg.model.get('accum_steps', 1)), num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=True),
        dataset=dict(type='ImageTextDataset', data_root=tiny_captions,
                     ann_file='train.csv', pipeline=pipeline))
    cfg.train_cfg = dict(by_epoch=False, max_iters=2)
    # Caption fine-tunes start from a checkpoint (load_from) and validate
    # zero-shot on the user's labelled set with their class names: none of
    # it is here.
    cfg.load_from = None
    cfg.val_dataloader = cfg.val_evaluator = cfg.val_cfg = None
    cfg.model.pop('predict_head', None)
    cfg.param_scheduler = None
    if cfg.optim_wrapper.type.endswith('AmpOptimWrapper'):
        cfg.optim_wrapper.type = 'NonFiniteSkipOptimWrapper'
        cfg.optim_wrapper.pop('dtype')
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1000,
                                        by_epoch=False)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.work_dir = str(tmp_path)
    runner = train(cfg)
    assert runner.iter == 2
    loss = runner.message_hub.get_scalar('train/loss').current()
    assert math.isfinite(loss) and loss > 0
    assert runner.message_hub.get_scalar('train/temperature').current() > 1


def test_fsdp_config_selects_the_strategy():
    """FSDP needs GPUs and a process group; here we check what the config
    asks mmengine for (it is run on a GPU machine, not in CI)."""
    cfg = Config.fromfile(osp.join(
        REPO_ROOT, 'configs', 'clip',
        'clip_vit-base-p16_8xb512-amp-fsdp-32e_cc3m.py'))
    assert cfg.runner_type == 'FlexibleRunner'
    assert cfg.strategy.type == 'FSDPStrategy'
    assert cfg.strategy.model_wrapper.use_orig_params
    assert 'dtype' not in cfg.optim_wrapper
    assert cfg.optim_wrapper.paramwise_cfg.custom_keys.logit_scale == dict(
        decay_mult=0.)
