"""An unknown model name lists the models, not the ``_base_`` files that
build none (schedules, datasets, runtimes)."""
import glob
import os.path as osp

import pytest

from conftest import REPO_ROOT, load_tool
from mmclip.apis import find_config, list_models
from mmclip.apis.model import model_names
from mmclip.errors import ConfigError

BASE = osp.join(REPO_ROOT, 'configs', '_base_')
NOT_MODELS = sorted(
    osp.splitext(osp.basename(p))[0]
    for p in glob.glob(osp.join(BASE, '**', '*.py'), recursive=True)
    if not p.startswith(osp.join(BASE, 'models')))
ARCHITECTURES = sorted(osp.splitext(osp.basename(p))[0]
                       for p in glob.glob(osp.join(BASE, 'models', '*.py')))


def test_model_names_are_the_index_and_the_architectures():
    assert 'clip_pretrain_adamw_cosine' in NOT_MODELS
    names = model_names()
    assert set(list_models()) <= set(names)
    assert set(ARCHITECTURES) <= set(names)
    assert not set(NOT_MODELS) & set(names)
    assert 'siglip_vit-base-p16_8xb512-amp-32e_cc3m' in names


def test_unknown_name_lists_models_and_the_closest():
    # A ConfigError: the tools print it as one error line.
    with pytest.raises(ConfigError) as info:
        find_config('clip_vit-base-p32_zeroshot-cls_in1')
    message = str(info.value)
    assert 'Did you mean clip_vit-base-p32_zeroshot-cls_in1k' in message
    for name in NOT_MODELS:
        assert f"'{name}'" not in message, name


@pytest.mark.parametrize('name', ['clip_pretrain_adamw_cosine',
                                  'default_runtime'])
def test_base_files_are_no_models(name):
    with pytest.raises(ValueError, match=f'Unknown model {name!r}'):
        find_config(name)
    assert find_config('clip_vit-base-p16').endswith(
        osp.join('_base_', 'models', 'clip_vit-base-p16.py'))


def test_inference_tool_unknown_model(tmp_path, capsys):
    from PIL import Image
    Image.new('RGB', (8, 8)).save(tmp_path / 'a.png')
    tool = load_tool('inference.py')
    assert tool.main([str(tmp_path / 'a.png'), '--model',
                      'clip_pretrain_adamw_cosine']) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Unknown model 'clip_pretrain_adamw_cosine'")
    assert err.count('\n') == 1
