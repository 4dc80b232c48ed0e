"""One checked path loads a checkpoint's weights into a module."""
import pytest
import torch
from mmengine.registry import DefaultScope

from conftest import TINY_VISION
from mmclip.models import CheckpointMismatchError, load_pretrained
from mmclip.registry import MODELS


def build(cfg):
    with DefaultScope.overwrite_default_scope('mmclip'):
        return MODELS.build(cfg)


def test_prefix_fills_a_tower_from_a_clip(tmp_path, tiny_clip_cfg):
    """``prefix='backbone.'`` loads a CLIP checkpoint's image tower into a
    bare tower, 32px grid resized for a 64px tower, and names mismatching
    keys as the checkpoint does."""
    clip = build(tiny_clip_cfg)
    path = str(tmp_path / 'clip.pth')
    torch.save(dict(state_dict=clip.state_dict(), meta={'note': 'x'}), path)
    tower = build(dict(tiny_clip_cfg['vision_backbone'], img_size=64))
    assert load_pretrained(tower, path, prefix='backbone.') == {'note': 'x'}
    assert tower.positional_embedding.shape[0] == 1 + 8 * 8
    torch.testing.assert_close(tower.conv1.weight, clip.backbone.conv1.weight)

    narrower = build(dict(tiny_clip_cfg['vision_backbone'],
                          arch=dict(TINY_VISION, proj_dims=16)))
    before = narrower.proj.clone()
    with pytest.raises(CheckpointMismatchError,
                       match=r'backbone\.proj: checkpoint \(64, 32\) vs model '
                       r'\(64, 16\)\. Use the config that matches the '
                       r'checkpoint \(arch, patch size, embedding dim\)\.$'):
        load_pretrained(narrower, path, prefix='backbone.')
    assert torch.equal(narrower.proj, before)  # nothing was copied

    with pytest.raises(CheckpointMismatchError,
                       match=r"has no image\.\* weights.*clip_to_mmclip"):
        load_pretrained(tower, path, prefix='image.')


def test_the_text_grid_is_not_resized(tmp_path, tiny_clip_cfg):
    """Only image towers resize their position grid on load: a text tower
    of another context length is a mismatch."""
    clip = build(tiny_clip_cfg)
    path = str(tmp_path / 'clip.pth')
    torch.save(clip.state_dict(), path)
    shorter = build(dict(tiny_clip_cfg, text_encoder=dict(
        tiny_clip_cfg['text_encoder'], context_length=16)))
    with pytest.raises(CheckpointMismatchError,
                       match=r'text_encoder\.positional_embedding: checkpoint '
                       r'\(77, 48\) vs model \(16, 48\)'):
        load_pretrained(shorter, path)


def test_models_load_without_the_apis(tmp_path, tiny_clip_cfg):
    """ZeroShotInit (in ``mmclip.models``) loads through this function, not
    through ``mmclip.apis``; the apis re-export it for users."""
    import mmclip.apis
    import mmclip.models.classifiers.zero_shot_init as zero_shot_init
    assert zero_shot_init.load_pretrained is load_pretrained
    assert mmclip.apis.load_pretrained is load_pretrained


def test_a_checkpoint_of_the_other_kind_names_what_it_is(tmp_path,
                                                         tiny_clip_cfg):
    """A classifier checkpoint where a CLIP is expected (and the reverse)
    would leave the text tower (the head) at random weights: refused before
    anything is copied, saying what the checkpoint is and what to use."""
    clip = build(tiny_clip_cfg)
    classifier = build(dict(
        type='ImageClassifier', backbone=tiny_clip_cfg['vision_backbone'],
        head=dict(type='LinearClsHead', num_classes=3,
                  in_channels=TINY_VISION['proj_dims'])))
    clip_path, cls_path = tmp_path / 'clip.pth', tmp_path / 'cls.pth'
    torch.save(dict(state_dict=clip.state_dict(), meta={}), clip_path)
    torch.save(dict(state_dict=classifier.state_dict(), meta={}), cls_path)

    before = classifier.backbone.conv1.weight.clone()
    with pytest.raises(CheckpointMismatchError,
                       match=r"is a CLIP checkpoint \(image and text towers, "
                       r"no classifier\): it has no weights for the head\.\* "
                       r'.*zero-shot config'):
        load_pretrained(classifier, str(clip_path))
    assert torch.equal(classifier.backbone.conv1.weight, before)

    with pytest.raises(CheckpointMismatchError,
                       match=r'is a classifier checkpoint .*no weights for '
                       r'the text_encoder\.\* .*Use it with its classifier '
                       r'config \(the one clip_to_mmclip\.py writes'):
        load_pretrained(clip, str(cls_path))
    (tmp_path / 'cls.py').write_text('')  # the converter's config beside it
    with pytest.raises(CheckpointMismatchError,
                       match=rf'classifier config \({tmp_path}/cls\.py, '
                       'written with it by clip_to_mmclip.py'):
        load_pretrained(clip, str(cls_path))
