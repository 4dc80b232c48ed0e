"""The configs in configs/clip: preprocessing stated in the model bases,
pipelines at the model's resolution, names that say a non-default
resolution, dumps that read back, and a runnable command in each header."""
import glob
import os.path as osp
import re

import pytest
from mmengine.config import Config

from conftest import REPO_ROOT
from mmclip.models.multimodal.clip_model import CLIP_DATA_PREPROCESSOR

LEAVES = sorted(glob.glob(osp.join(REPO_ROOT, 'configs', 'clip', '*.py')))
MODEL_BASES = sorted(
    glob.glob(osp.join(REPO_ROOT, 'configs', '_base_', 'models', '*.py')))


def name_of(path):
    return osp.splitext(osp.basename(path))[0]


@pytest.mark.parametrize('path', MODEL_BASES, ids=name_of)
def test_model_base_states_openai_preprocessing(path):
    # What CLIPModel builds by default for Python users, written out.
    preprocessor = Config.fromfile(path).model.data_preprocessor
    assert preprocessor.to_dict() == CLIP_DATA_PREPROCESSOR


def test_cifar_config_keeps_mean_std_without_the_flip():
    cfg = Config.fromfile(osp.join(
        REPO_ROOT, 'configs', 'clip',
        'clip_vit-base-p16_zeroshot-cls_cifar100.py'))
    assert cfg.model.data_preprocessor.to_dict() == dict(
        CLIP_DATA_PREPROCESSOR, to_rgb=False)
    # mmpretrain's CIFAR100 yields decoded arrays: nothing to load.
    assert [t.type for t in cfg.test_dataloader.dataset.pipeline] == [
        'ResizeEdge', 'CenterCrop', 'PackInputs']


@pytest.mark.parametrize('path', LEAVES, ids=name_of)
def test_test_pipeline_is_at_the_model_resolution(path):
    cfg = Config.fromfile(path)
    if 'test_dataloader' not in cfg:
        pytest.skip('training only')
    # a CLIPModel's image tower, or an ImageClassifier's backbone
    tower = cfg.model.get('vision_backbone') or cfg.model.backbone
    img_size = tower.img_size
    sizes = {
        t.type: t.get('scale', t.get('crop_size'))
        for t in cfg.test_dataloader.dataset.pipeline
        if t.type in ('ResizeEdge', 'CenterCrop')
    }
    assert sizes == {'ResizeEdge': img_size, 'CenterCrop': img_size}


@pytest.mark.parametrize('path', LEAVES, ids=name_of)
def test_name_states_a_non_default_resolution(path):
    # mmpretrain's convention: `..._in1k` is 224px, `..._in1k-384px` not.
    model = Config.fromfile(path).model
    img_size = (model.get('vision_backbone') or model.backbone).img_size
    suffix = re.search(r'-(\d+)px$', name_of(path))
    if img_size == 224:
        assert suffix is None
    else:
        assert suffix and int(suffix.group(1)) == img_size


@pytest.mark.parametrize('path', LEAVES, ids=name_of)
def test_dumped_config_reads_back_the_same(path, tmp_path):
    # Checkpoints store the dump; resuming reads it back.
    cfg = Config.fromfile(path)
    assert Config.fromstring(cfg.pretty_text,
                             '.py').to_dict() == cfg.to_dict()
    cfg.dump(str(tmp_path / 'dumped.py'))
    assert Config.fromfile(str(tmp_path / 'dumped.py')).to_dict() == (
        cfg.to_dict())


@pytest.mark.parametrize('path', LEAVES, ids=name_of)
def test_header_says_how_to_run_it(path):
    with open(path) as f:
        header = []
        for line in f:
            if not line.startswith('#'):
                break
            header.append(line.rstrip('\\\n').lstrip('# ').strip())
    command = ' '.join(header)
    assert re.search(r'tools/(train|test)\.py configs/clip/' +
                     re.escape(osp.basename(path)), command), header
