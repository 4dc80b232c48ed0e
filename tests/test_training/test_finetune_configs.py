"""The ImageNet recipes (fine-tune, linear probe, LP-FT, ImageNet
pretraining) and the digits fine-tune: every config builds and trains 2
iterations on ImageNet-layout digits (a folder per class), with the towers
shrunk to tiny widths (the check is about the recipe); layer-wise lr decay,
EMA evaluation and 384px loading of 224px weights through the configs."""
import copy
import glob
import math
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from PIL import Image

from conftest import REPO_ROOT, TINY_TEXT, TINY_VISION
from mmclip.datasets.digits import CLASSNAMES
from mmclip.models.layers import resize_grid_pos_embed


def _is_recipe(path):
    cfg = Config.fromfile(path)
    dataset = cfg.get('train_dataloader', {}).get('dataset') or {}
    return (cfg.model.type == 'ImageClassifier'
            or dataset.get('type') == 'ClassificationTextDataset')


RECIPES = sorted(
    p for p in glob.glob(osp.join(REPO_ROOT, 'configs', 'clip', '*.py'))
    if _is_recipe(p))
FT_B16 = osp.join(REPO_ROOT, 'configs', 'clip',
                  'clip_vit-base-p16_ft-8xb256-amp-50e_in1k.py')
FT_B16_384 = osp.join(
    REPO_ROOT, 'configs', 'clip',
    'clip_vit-base-p16_ft-8xb64-accum4-amp-50e_in1k-384px.py')
TEMPLATES = ['a photo of the digit {}.']


def name_of(path):
    return osp.splitext(osp.basename(path))[0]


def test_every_recipe_is_here():
    names = {name_of(p) for p in RECIPES}
    for arch in ('p32', 'p16'):
        assert f'clip_vit-base-{arch}_ft-8xb256-amp-50e_in1k' in names
        assert f'clip_vit-base-{arch}_8xb512-amp-100e_in1k' in names
        assert f'clip_vit-base-{arch}_8xb512-amp-32e_in21k' in names
        assert f'clip_vit-base-{arch}_8xb512-amp-1e_in21k-384px' in names
    assert {
        'clip_vit-base-p16_ft-8xb64-accum4-amp-50e_in1k-384px',
        'clip_vit-base-p32_ft-8xb256-amp-50e_in1k-384px',
        'clip_vit-base-p16_linear-probe-8xb256-amp-10e_in1k',
        'clip_vit-base-p16_lp-ft-8xb256-amp-50e_in1k',
        'clip_vit-tiny-p8_ft-1xb64-10e_digits-32px',
        'clip_vit-tiny-p8_ft-small-data-1xb32-10e_digits-32px',
        'flyp_vit-base-p16_8xb64-amp-10e_in1k',
        'flyp_vit-tiny-p8_1xb32-10e_digits-32px'
    } <= names


@pytest.fixture(scope='module')
def digits_folders(tmp_path_factory):
    """scikit-learn's digits as ImageNet-style folders: train/ (4 per
    class) and val/ (2 per class), one sub-folder per digit."""
    from sklearn.datasets import load_digits
    root = tmp_path_factory.mktemp('digits_in1k_layout')
    digits = load_digits()
    seen = {}
    for pixels, label in zip(digits.images, digits.target):
        count = seen.get(label, 0)
        if count == 6:
            continue
        seen[label] = count + 1
        split = 'train' if count < 4 else 'val'
        folder = root / split / CLASSNAMES[label]
        folder.mkdir(parents=True, exist_ok=True)
        grey = np.uint8(255 - pixels * 15)
        Image.fromarray(grey).resize((32, 32)).convert('RGB').save(
            folder / f'{count}.png')
    return str(root)


def _save_clip(clip_cfg, path):
    from mmclip.registry import MODELS
    clip = MODELS.build({k: v for k, v in clip_cfg.items()
                         if k not in ('head', 'predict_head')})
    torch.save(dict(state_dict=clip.state_dict(), meta={}), path)
    return path


@pytest.fixture(autouse=True)
def _unformatted_config_dumps(monkeypatch):
    """Runners log and dump their config several times through yapf, most
    of a 2-iteration run's time; the unformatted text is the same Python."""
    monkeypatch.setattr('mmengine.config.config.FormatCode',
                        lambda text, style_config=None: (text, None))


def _use_digits(loader, root, split):
    # No serialisation: it runs a gc.collect() of the whole test process.
    folders = dict(type='CustomDataset', data_root=root, data_prefix=split,
                   serialize_data=False)
    dataset = loader.dataset
    if dataset.type == 'ClassificationTextDataset':
        dataset.dataset = folders
        if str(dataset.classnames).endswith('.txt'):
            dataset.classnames = list(CLASSNAMES)
    else:
        loader.dataset = dict(folders, pipeline=dataset.pipeline)
    loader.update(batch_size=4 if split == 'train' else 10, num_workers=0,
                  persistent_workers=False)


def tiny_recipe(path, root, tmp_path):
    """The config at ``path`` with tiny towers, 10 digit classes, its data
    replaced by ``root``'s folders, and the checkpoints it starts from
    (CLIP, a 224px run, a linear probe) written as tiny random ones."""
    from mmclip.registry import MODELS
    cfg = Config.fromfile(path)
    model = cfg.model
    if model.type == 'ImageClassifier':
        model.backbone.arch = dict(TINY_VISION)
        model.head.update(num_classes=10, in_channels=TINY_VISION['proj_dims'])
        clip = (model.get('init_cfg') or {}).get('clip')
    else:
        clip = model
        model.predict_head.update(classnames=list(CLASSNAMES),
                                  templates=TEMPLATES)
    if clip is not None:
        clip.vision_backbone.arch = dict(TINY_VISION)
        clip.text_encoder.arch = dict(TINY_TEXT)
    if model.get('init_cfg'):  # ZeroShotInit
        model.init_cfg.update(
            checkpoint=_save_clip(clip, str(tmp_path / 'clip.pth')),
            classnames=list(CLASSNAMES), templates=TEMPLATES, cache_dir=None)
    if cfg.get('load_from'):  # the previous stage's checkpoint
        previous = copy.deepcopy(model)
        if model.type == 'ImageClassifier':  # LP-FT: the linear probe
            weights = MODELS.build(previous).state_dict()
            torch.save(dict(state_dict=weights, meta={}),
                       tmp_path / 'probe.pth')
            cfg.load_from = str(tmp_path / 'probe.pth')
        else:  # 384px continuation: the 224px run
            previous.vision_backbone.img_size = 224
            cfg.load_from = _save_clip(previous, str(tmp_path / '224.pth'))

    _use_digits(cfg.train_dataloader, root, 'train')
    for key in ('val_dataloader', 'test_dataloader'):
        if cfg.get(key):
            _use_digits(cfg[key], root, 'val')
    cfg.train_cfg = dict(by_epoch=False, max_iters=2, val_interval=1000)
    cfg.param_scheduler = None
    # The recipes' AMP wrappers stay: without a GPU mmclip runs them as
    # their CPU counterparts (bf16 autocast or float32, CPUAmpOptimWrapper).
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1000,
                                        by_epoch=False)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    # Plotting curves is tested with the digits pretraining; here it would
    # only add seconds.
    cfg.custom_hooks = [
        h for h in cfg.get('custom_hooks', [])
        if h.type != 'TrainingCurveHook'
    ]
    cfg.work_dir = str(tmp_path / 'work')
    return cfg


@pytest.mark.parametrize('path', RECIPES, ids=name_of)
def test_recipe_trains_two_iterations(path, tmp_path, digits_folders):
    from mmclip.apis import train
    runner = train(tiny_recipe(path, digits_folders, tmp_path))
    assert runner.iter == 2
    loss = runner.message_hub.get_scalar('train/loss').current()
    assert math.isfinite(loss) and loss > 0


def test_layer_decay_groups_of_the_fine_tune_config():
    """The real ViT-B/16 config's optimizer (built on the meta device)."""
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import DefaultScope

    from mmclip.registry import MODELS
    cfg = Config.fromfile(FT_B16)
    cfg.optim_wrapper.type = 'OptimWrapper'  # AMP wants a GPU
    cfg.optim_wrapper.pop('dtype')
    with DefaultScope.overwrite_default_scope('mmclip'), \
            torch.device('meta'):
        model = MODELS.build(cfg.model)
        wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    groups = {
        g['param_name']: g
        for g in wrapper.optimizer.param_groups
    }
    names = dict(model.named_parameters())
    assert set(groups) == set(names)  # every parameter, once
    lr, decay = 6e-4, 0.6

    def check(name, depth_from_top, weight_decay):
        group = groups[name]
        assert group['lr'] == pytest.approx(lr * decay**depth_from_top), name
        assert group['weight_decay'] == weight_decay, name

    for name in ('head.fc.weight', 'backbone.proj'):
        check(name, 0, 0.05)
    for name in ('head.fc.bias', 'backbone.ln_post.weight',
                 'backbone.ln_post.bias'):
        check(name, 0, 0.)
    block = 'backbone.transformer.resblocks.{}.'
    for index in (11, 5, 0):  # last, middle, first block
        check(block.format(index) + 'attn.in_proj_weight', 12 - index, 0.05)
        check(block.format(index) + 'mlp.c_fc.weight', 12 - index, 0.05)
        check(block.format(index) + 'attn.in_proj_bias', 12 - index, 0.)
        check(block.format(index) + 'ln_1.weight', 12 - index, 0.)
    check('backbone.conv1.weight', 13, 0.05)
    for name in ('backbone.class_embedding', 'backbone.positional_embedding',
                 'backbone.ln_pre.weight', 'backbone.ln_pre.bias'):
        check(name, 13, 0.)


def test_384px_config_starts_from_224px_weights(tmp_path, digits_folders):
    from mmengine.registry import DefaultScope

    from mmclip.registry import MODELS
    cfg = tiny_recipe(FT_B16_384, digits_folders, tmp_path)
    assert cfg.model.init_cfg.clip.vision_backbone.img_size == 224
    with DefaultScope.overwrite_default_scope('mmclip'):
        model = MODELS.build(cfg.model)
        model.init_weights()
    clip_pos = torch.load(cfg.model.init_cfg.checkpoint)['state_dict'][
        'backbone.positional_embedding']
    assert clip_pos.shape[0] == 1 + 14 * 14
    torch.testing.assert_close(model.backbone.positional_embedding,
                               resize_grid_pos_embed(clip_pos, (24, 24)))


class RecordValidation(Hook):
    """Keeps the weights the validation loop runs with, and its metrics."""

    def before_val_epoch(self, runner):
        self.weights = {
            k: v.clone()
            for k, v in runner.model.state_dict().items()
        }

    def after_val_epoch(self, runner, metrics=None):
        self.metrics = metrics


def test_ema_weights_are_evaluated_saved_and_used_by_the_tools(
        tmp_path, digits_folders):
    """FT-CLIP's EMA (momentum raised so 3 steps move it visibly): the
    validation at the end of training runs on the averaged weights, the
    checkpoint stores them as its state_dict (read with weights_only=True),
    and tools/test.py (same accuracy), get_model and inference_model work on
    that checkpoint."""
    from mmclip.apis import (get_model, inference_model, prepare_test_config,
                             test)
    from mmclip.engine import build_runner
    from mmclip.utils.checkpoint import mmclip_checkpoint_loading
    cfg = tiny_recipe(FT_B16, digits_folders, tmp_path)
    ema = [h for h in cfg.custom_hooks if h.type == 'EMAHook']
    assert ema == [dict(type='EMAHook', momentum=2e-4,
                        priority='ABOVE_NORMAL')]
    ema[0].momentum = 0.5
    cfg.train_cfg.max_iters = 3  # validates after the last iteration
    cfg.default_hooks.checkpoint.interval = 3
    recorder = RecordValidation()
    with mmclip_checkpoint_loading():
        runner = build_runner(cfg)
        runner.register_hook(recorder, priority='LOW')  # after EMA's swap
        runner.train()
    hook = next(h for h in runner.hooks if type(h).__name__ == 'EMAHook')
    averaged = hook.ema_model.module.state_dict()
    raw = runner.model.state_dict()  # swapped back after validation
    assert not torch.equal(averaged['head.fc.weight'], raw['head.fc.weight'])
    for key, value in averaged.items():
        assert torch.equal(recorder.weights[key], value), key

    ckpt_path = osp.join(cfg.work_dir, 'iter_3.pth')
    saved = torch.load(ckpt_path, weights_only=True)
    for key, value in averaged.items():
        assert torch.equal(saved['state_dict'][key], value), key

    config = str(tmp_path / 'ft.py')
    cfg.dump(config)
    scores = test(prepare_test_config(config, ckpt_path,
                                      work_dir=str(tmp_path / 'test')))
    assert scores == pytest.approx(recorder.metrics)
    model = get_model(config, pretrained=ckpt_path)
    image = glob.glob(osp.join(digits_folders, 'val', 'seven', '*.png'))[0]
    result = inference_model(model, image)
    # class names from the checkpoint's meta (the training folders)
    assert result['pred_class'] in CLASSNAMES


def test_imagenet_captions_use_openai_names_and_templates(digits_folders):
    from mmengine.registry import DefaultScope

    from mmclip.registry import DATASETS
    cfg = Config.fromfile(
        osp.join(REPO_ROOT, 'configs', 'clip',
                 'clip_vit-base-p32_8xb512-amp-100e_in1k.py'))
    dataset = cfg.train_dataloader.dataset
    dataset.dataset = dict(type='CustomDataset', data_root=digits_folders,
                           data_prefix='train')
    with DefaultScope.overwrite_default_scope('mmclip'):
        built = DATASETS.build(dataset)
    info = built.get_data_info(0)  # label 0: ImageNet's first class
    assert len(info['text']) == 80
    assert 'a photo of a tench.' in info['text']
