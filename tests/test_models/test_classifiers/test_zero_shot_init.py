"""Classifiers from a CLIP checkpoint: ImageClassifier + CLIPVisionTransformer
+ CLIPClsHead, started as the zero-shot classifier by ZeroShotInit."""
import copy
import glob

import pytest
import torch
import torch.nn.functional as F
from mmengine.registry import DefaultScope

from conftest import TINY_VISION, tiny_clip_config
from mmclip.models.layers import resize_grid_pos_embed
from mmclip.registry import MODELS

CLASSES = ['cat', 'dog', 'car', 'tree']
TEMPLATES = ['a photo of a {}.', 'a drawing of the {}.']


@pytest.fixture(scope='module')
def clip_checkpoint(tmp_path_factory):
    """A tiny random CLIP (perturbed temperature) saved as mmclip saves."""
    import mmclip.models  # noqa: F401
    torch.manual_seed(1)
    clip = MODELS.build(tiny_clip_config())
    clip.logit_scale.data.fill_(2.5)
    path = str(tmp_path_factory.mktemp('clip') / 'clip.pth')
    torch.save(dict(state_dict=clip.state_dict(), meta={}), path)
    return path, clip.eval()


def classifier_cfg(checkpoint, cache_dir=None, **init):
    clip = tiny_clip_config()
    return dict(
        type='ImageClassifier',
        _scope_='mmclip',
        backbone=copy.deepcopy(clip['vision_backbone']),
        head=dict(type='CLIPClsHead', num_classes=len(CLASSES),
                  in_channels=TINY_VISION['proj_dims']),
        init_cfg=dict(type='ZeroShotInit', checkpoint=checkpoint, clip=clip,
                      classnames=CLASSES, templates=TEMPLATES,
                      cache_dir=cache_dir, **init))


def build_and_init(cfg):
    with DefaultScope.overwrite_default_scope('mmclip'):
        model = MODELS.build(cfg)
        model.init_weights()
    return model.eval()


def test_step_zero_logits_are_the_zero_shot_heads(clip_checkpoint, tmp_path,
                                                  mm_log):
    path, clip = clip_checkpoint
    cache = str(tmp_path / 'cache')
    clip = copy.deepcopy(clip)
    clip.predict_head = MODELS.build(
        dict(type='ZeroShotClsHead', classnames=CLASSES, templates=TEMPLATES,
             cache_dir=cache))
    images = torch.randn(5, 3, 32, 32)
    with torch.no_grad():
        zero_shot = clip(images, mode='predict')  # writes the disk cache
        weights = clip.predict_head.get_classifier(clip.text_embedder())
        zero_shot_logits = 100 * F.normalize(
            clip.encode_image(images), dim=-1) @ weights

        model = build_and_init(classifier_cfg(path, cache_dir=cache))
        logits = model(images, mode='tensor')
        predicted = model(images, mode='predict')
    torch.testing.assert_close(logits, zero_shot_logits, atol=1e-5, rtol=0)
    torch.testing.assert_close(
        torch.stack([s.pred_score for s in predicted]),
        torch.stack([s.pred_score for s in zero_shot]), atol=1e-6, rtol=0)
    # The zero-shot evaluation's cache served the initialisation.
    assert len(glob.glob(f'{cache}/*.pt')) == 1
    assert any('Loaded zero-shot classifier' in m for m in mm_log)
    # Nothing of the text tower stays in the classifier.
    assert not [k for k in model.state_dict() if 'text' in k]
    assert set(model.state_dict()) == {
        f'backbone.{k}' for k in clip.backbone.state_dict()
    } | {'head.fc.weight', 'head.fc.bias'}


def test_learned_temperature_and_own_init_kept(clip_checkpoint):
    path, clip = clip_checkpoint
    model = build_and_init(classifier_cfg(path, scale='learned'))
    weights = MODELS.build(
        dict(type='ZeroShotClsHead', classnames=CLASSES, templates=TEMPLATES,
             cache_dir=None)).get_classifier(clip.text_embedder())
    # LinearClsHead's own Normal init ran before and was not run after.
    torch.testing.assert_close(model.head.fc.weight,
                               torch.exp(torch.tensor(2.5)) * weights.t())
    assert not model.head.fc.bias.any()
    for key, value in clip.backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value), key


def test_larger_grid_gets_the_resized_position_embedding(clip_checkpoint):
    path, clip = clip_checkpoint
    cfg = classifier_cfg(path)
    cfg['backbone']['img_size'] = 64  # 8x8 patches instead of 4x4
    model = build_and_init(cfg)
    torch.testing.assert_close(
        model.backbone.positional_embedding,
        resize_grid_pos_embed(clip.backbone.positional_embedding.detach(),
                              (8, 8)))
    assert model(torch.randn(1, 3, 64, 64), mode='tensor').shape == (1, 4)


def test_errors_name_the_fix(clip_checkpoint, tmp_path):
    path, _ = clip_checkpoint
    cfg = classifier_cfg(path)
    cfg['head']['num_classes'] = 3
    with pytest.raises(ValueError, match='num_classes to the number of'):
        build_and_init(cfg)
    cfg = classifier_cfg(path)
    cfg['head']['type'] = 'LinearClsHead'
    with pytest.raises(TypeError, match="type='CLIPClsHead'"):
        build_and_init(cfg)
    cfg = classifier_cfg(path)
    cfg['head']['normalize'] = False
    with pytest.raises(ValueError, match='normalize=True'):
        build_and_init(cfg)
    cfg = classifier_cfg(path)
    cfg['init_cfg']['clip']['text_encoder']['arch']['num_layers'] = 3
    with pytest.raises(ValueError, match='does not match the model config'):
        build_and_init(cfg)
    cfg = classifier_cfg(path)
    del cfg['init_cfg']['clip']['text_encoder']
    with pytest.raises(ValueError, match='clip=<the CLIPModel config'):
        build_and_init(cfg)


def test_layer_depths_of_the_image_tower():
    tower = MODELS.build(tiny_clip_config()['vision_backbone'])
    depth = tower.get_layer_depth
    last = TINY_VISION['num_layers'] + 1
    for name in ('conv1.weight', 'class_embedding', 'positional_embedding',
                 'ln_pre.bias'):
        assert depth('backbone.' + name, 'backbone.') == (0, last + 1)
    assert depth('backbone.transformer.resblocks.0.attn.in_proj_weight',
                 'backbone.') == (1, last + 1)
    assert depth('backbone.transformer.resblocks.1.ln_2.weight',
                 'backbone.') == (2, last + 1)
    for name in ('backbone.ln_post.weight', 'backbone.proj',
                 'head.fc.weight'):
        assert depth(name, 'backbone.') == (last, last + 1)
    # A block named like the stem is not the stem.
    assert depth('transformer.resblocks.0.ln_1.weight') == (1, last + 1)


def test_trains_with_mixup_cutmix_label_smoothing_and_accuracy(
        clip_checkpoint):
    from mmpretrain.evaluation import Accuracy
    from mmpretrain.structures import DataSample
    path, _ = clip_checkpoint
    cfg = classifier_cfg(path)
    cfg['head']['loss'] = dict(type='LabelSmoothLoss', label_smooth_val=0.1)
    cfg['data_preprocessor'] = dict(
        type='ClsDataPreprocessor', num_classes=len(CLASSES), to_rgb=True,
        mean=[122.8, 116.7, 104.1], std=[68.5, 66.6, 70.3],
        batch_augments=dict(augments=[
            dict(type='Mixup', alpha=0.8),
            dict(type='CutMix', alpha=1.0)
        ]))
    model = build_and_init(cfg).train()
    batch = dict(
        inputs=[torch.randint(0, 255, (3, 32, 32), dtype=torch.uint8)
                for _ in range(4)],
        data_samples=[DataSample().set_gt_label(i % 4) for i in range(4)])
    data = model.data_preprocessor(batch, True)
    assert data['data_samples'][0].gt_score.shape == (len(CLASSES), )
    loss = model(**data, mode='loss')['loss']
    loss.backward()
    assert torch.isfinite(loss) and model.backbone.conv1.weight.grad.any()

    model.eval()
    with torch.no_grad():
        samples = model(**model.data_preprocessor(batch, False),
                        mode='predict')
    metric = Accuracy(topk=(1, ))
    metric.process(None, [s.to_dict() for s in samples])
    assert 0 <= metric.evaluate(len(samples))['accuracy/top1'] <= 100


def test_old_logit_scale_key_gives_the_same_head(clip_checkpoint):
    """``ZeroShotInit(logit_scale=...)``, the multiplier's name before the
    rename, still initialises the same head, with a FutureWarning."""
    path, _ = clip_checkpoint
    with pytest.warns(FutureWarning, match="pass scale='learned' instead"):
        old = build_and_init(classifier_cfg(path, logit_scale='learned'))
    new = build_and_init(classifier_cfg(path, scale='learned'))
    torch.testing.assert_close(old.head.fc.weight, new.head.fc.weight,
                               rtol=0, atol=0)
