"""LayerDecayOptimWrapperConstructor: mmpretrain's layer-wise lr decay
with custom keys' ``lr_mult`` applied (mmpretrain's drops it silently),
kept through the schedulers."""
import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

import mmclip.engine  # noqa: F401
from conftest import REPO_ROOT
from mmclip.registry import MODELS

FT_DIGITS = (f'{REPO_ROOT}/configs/clip/'
             'clip_vit-tiny-p8_ft-1xb64-10e_digits-32px.py')
SMALL_DATA = (f'{REPO_ROOT}/configs/clip/'
              'clip_vit-tiny-p8_ft-small-data-1xb32-10e_digits-32px.py')


def groups_of(constructor, custom_keys):
    """Parameter name -> param group of the digits fine-tune config's
    optimizer (4 blocks, layer decay 0.75) built by ``constructor``."""
    cfg = Config.fromfile(FT_DIGITS)
    cfg.model.init_cfg = None
    cfg.optim_wrapper.constructor = constructor
    cfg.optim_wrapper.paramwise_cfg.custom_keys.update(custom_keys)
    with DefaultScope.overwrite_default_scope('mmclip'):
        model = MODELS.build(cfg.model)
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    return {g['param_name']: g for g in wrapper.optimizer.param_groups}


def test_lr_mult_multiplies_the_layer_decayed_lr():
    lr, decay = 1e-4, 0.75
    plain = groups_of('LayerDecayOptimWrapperConstructor', {})
    faster = groups_of('LayerDecayOptimWrapperConstructor',
                       {'head.': dict(lr_mult=10.)})
    assert set(plain) == set(faster)
    for name, group in faster.items():
        mult = 10. if name.startswith('head.') else 1.
        assert group['lr'] == pytest.approx(plain[name]['lr'] * mult), name
        assert 'lr_mult' not in group
    assert faster['head.fc.weight']['lr'] == pytest.approx(10 * lr)
    assert faster['backbone.proj']['lr'] == pytest.approx(lr)
    # the patch embedding: 5 depths below the top (4 blocks + the stem)
    assert faster['backbone.conv1.weight']['lr'] == pytest.approx(
        lr * decay**5)
    # the parent's weight-decay rules are unchanged
    assert faster['backbone.class_embedding']['weight_decay'] == 0.
    assert faster['backbone.transformer.resblocks.0.ln_1.weight'][
        'weight_decay'] == 0.


def test_the_small_data_recipe_trains_its_head_ten_times_faster():
    """docs/fine_tuning.md, "Small data": the head at 10x the base lr, the
    tower's top at 1x, the digits recipe's layer decay below."""
    cfg = Config.fromfile(SMALL_DATA)
    cfg.model.init_cfg = None
    with DefaultScope.overwrite_default_scope('mmclip'):
        model = MODELS.build(cfg.model)
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    lrs = {g['param_name']: g['lr'] for g in wrapper.optimizer.param_groups}
    assert cfg.optim_wrapper.optimizer.lr == 1e-3
    assert lrs['head.fc.weight'] == pytest.approx(1e-2)
    assert lrs['backbone.proj'] == pytest.approx(1e-3)
    assert lrs['backbone.conv1.weight'] == pytest.approx(1e-3 * 0.75**5)
    assert cfg.train_dataloader.batch_size == 32


def test_mmpretrain_constructor_ignores_lr_mult():
    """Why the subclass exists: the same key leaves every lr unchanged."""
    plain = groups_of('LearningRateDecayOptimWrapperConstructor', {})
    asked = groups_of('LearningRateDecayOptimWrapperConstructor',
                      {'head.': dict(lr_mult=10.)})
    for name, group in asked.items():
        assert group['lr'] == plain[name]['lr'], name


def test_schedulers_keep_the_ratio():
    from mmengine.optim import CosineAnnealingLR, LinearLR
    model = torch.nn.ModuleDict(dict(
        head=torch.nn.Linear(2, 2), body=torch.nn.Linear(2, 2)))
    model.get_layer_depth = lambda name: (0, 1)
    with DefaultScope.overwrite_default_scope('mmclip'):
        wrapper = build_optim_wrapper(model, dict(
            optimizer=dict(type='AdamW', lr=1e-3, weight_decay=0.),
            constructor='LayerDecayOptimWrapperConstructor',
            paramwise_cfg=dict(custom_keys={'head': dict(lr_mult=5.)})))
    schedulers = [
        LinearLR(wrapper, start_factor=0.1, begin=0, end=3),
        CosineAnnealingLR(wrapper, T_max=10, begin=3, end=13)
    ]
    for _ in range(6):
        for scheduler in schedulers:
            scheduler.step()
        lrs = {g['param_name']: g['lr']
               for g in wrapper.optimizer.param_groups}
        assert lrs['head.weight'] == pytest.approx(5 * lrs['body.weight'])
        assert lrs['body.weight'] <= 1e-3
