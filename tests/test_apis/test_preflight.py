"""mmclip.apis.preflight: the files a config's model reads are found at
any depth, with the config key that moves them, before a Runner is built
(the command lines are tested in tests/test_tools/test_user_errors.py)."""
import pytest
from mmengine.config import Config

from mmclip.apis.preflight import (MissingFileError, check_checkpoint,
                                   check_model_files)
from mmclip.errors import ConfigError


def classifier_config(folder, **model) -> Config:
    """An ``ImageClassifier`` config with ``model``, loaded from
    ``folder/ft.py`` (its ``filename``)."""
    path = str(folder / 'ft.py')
    Config(dict(model=dict(type='ImageClassifier', **model))).dump(path)
    return Config.fromfile(path)


def test_every_init_checkpoint_and_text_file_at_any_depth(tmp_path):
    weights = tmp_path / 'clip.pth'
    weights.write_bytes(b'')
    names = tmp_path / 'classes.txt'
    names.write_text('cat\ndog\n')
    cfg = classifier_config(
        tmp_path, backbone=dict(type='CLIPVisionTransformer', init_cfg=[
            dict(type='TruncNormal', layer='Linear'),
            dict(type='Pretrained', checkpoint=str(weights))]),
        init_cfg=dict(type='ZeroShotInit', checkpoint=str(weights),
                      classnames=str(names), templates='openai_imagenet',
                      # built without its heads: their files are not read
                      clip=dict(predict_head=dict(classnames='none.txt'))))
    check_model_files(cfg)
    missing = str(tmp_path / 'missing.pth')
    for key, value in [
            ('model.backbone.init_cfg.1.checkpoint', missing),
            ('model.init_cfg.checkpoint', missing),
            ('model.init_cfg.templates', str(tmp_path / 'templates.txt')),
            ('load_from', missing)]:
        broken = cfg.copy()
        broken.merge_from_dict({key: value})
        with pytest.raises(MissingFileError) as info:
            check_model_files(broken)
        message = str(info.value)
        assert message.startswith(
            f'{value} does not exist: {key} of {cfg.filename} names it.')
        assert message.endswith(f'`--cfg-options {key}=...`.')


def test_evaluation_skips_what_only_init_weights_reads(tmp_path):
    """Evaluation loads a checkpoint instead of running init_weights, so a
    fine-tune config is tested without the CLIP it started from."""
    cfg = classifier_config(tmp_path, init_cfg=dict(
        type='ZeroShotInit', checkpoint=str(tmp_path / 'gone.pth'),
        templates=str(tmp_path / 'gone.txt')))
    check_model_files(cfg, init_weights=False)
    with pytest.raises(MissingFileError, match='gone'):
        check_model_files(cfg)


def test_remote_weights_and_registered_names_pass(tmp_path):
    check_model_files(classifier_config(
        tmp_path,
        backbone=dict(init_cfg=dict(type='Pretrained',
                                    checkpoint='https://x.org/w.pth')),
        head=dict(type='ZeroShotClsHead', classnames='imagenet',
                  templates=['a {}.'])))
    check_checkpoint('s3://bucket/w.pth', 'CHECKPOINT')
    check_checkpoint(None, 'CHECKPOINT')


def test_how_to_get_a_missing_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MissingFileError) as info:
        check_checkpoint(
            'work_dirs/clip_vit-tiny-p8_1xb32-24e_digits-32px/epoch_24.pth',
            'ZERO_SHOT')
    assert str(info.value).startswith(
        'ZERO_SHOT work_dirs/clip_vit-tiny-p8_1xb32-24e_digits-32px/'
        f'epoch_24.pth does not exist (in {tmp_path}). It is written by '
        'training: run `python tools/train.py ')
    assert 'clip_vit-tiny-p8_1xb32-24e_digits-32px.py` first.' in str(
        info.value)
    with pytest.raises(MissingFileError, match='clip_to_mmclip.py SRC'):
        check_checkpoint('checkpoints/vit-b-16_openai.pth', 'CHECKPOINT')


def test_zero_shot_names_and_files_are_user_errors(tmp_path):
    """Raised where the class names are read (building a head), so every
    tool prints them as one line."""
    from mmclip.datasets.zero_shot_data import resolve_templates
    with pytest.raises(MissingFileError, match='templates file'):
        resolve_templates(str(tmp_path / 'none.txt'))
    with pytest.raises(ConfigError, match='Unknown templates'):
        resolve_templates('openai_imagenet_80')
