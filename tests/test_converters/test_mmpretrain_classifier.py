"""mmpretrain's CLIP classifiers (``VisionTransformer(pre_norm=True)``, an
optional ``CLIPProjection`` neck, a linear head; e.g.
``vit-base-p16_clip-openai-pre_3rdparty_in1k``) load into mmclip's
classifier (``ImageClassifier`` with ``CLIPVisionTransformer``) after
conversion and give mmpretrain's logits, on tiny random weights."""
import pytest
import torch
from mmengine.registry import DefaultScope

from converter_helpers import build_mmpretrain, perturb_
from mmclip.converters import convert_checkpoint
from mmclip.registry import MODELS

W, PROJ, CLASSES = 64, 32, 7


def mmpretrain_vit():
    return dict(
        type='VisionTransformer',
        arch=dict(embed_dims=W, num_layers=2, num_heads=1,
                  feedforward_channels=4 * W),
        img_size=32,
        patch_size=16,
        pre_norm=True)


@pytest.mark.parametrize('neck,head,our_head', [
    # mmpretrain's released CLIP fine-tunes: no projection, ViT head.
    (None, dict(type='VisionTransformerClsHead', in_channels=W), None),
    # The projection kept as a neck, a linear head on the embedding;
    # CLIPClsHead without normalisation is the same linear layer.
    (dict(type='CLIPProjection', in_channels=W, out_channels=PROJ),
     dict(type='LinearClsHead', in_channels=PROJ),
     dict(type='CLIPClsHead', in_channels=PROJ, normalize=False)),
], ids=['vit-head', 'projection-neck'])
def test_converted_classifier_gives_mmpretrain_logits(tmp_path, neck, head,
                                                      our_head):
    theirs = perturb_(build_mmpretrain(dict(
        type='ImageClassifier', backbone=mmpretrain_vit(), neck=neck,
        head=dict(head, num_classes=CLASSES))))
    torch.save(dict(state_dict=theirs.state_dict(), meta={}),
               tmp_path / 'mmpretrain.pth')
    state_dict, meta = convert_checkpoint(str(tmp_path / 'mmpretrain.pth'))
    assert meta['source_format'] == 'mmpretrain_cls'

    head_cfg = dict(meta['classifier_head'])
    if our_head is not None:
        head_cfg = dict(our_head, num_classes=CLASSES)
    with DefaultScope.overwrite_default_scope('mmclip'):
        ours = MODELS.build(dict(
            type='ImageClassifier',
            backbone=meta['model_cfg']['vision_backbone'],
            head=head_cfg))
    # A rename: every converted key has its place, nothing is missing.
    ours.load_state_dict(state_dict, strict=True)
    ours.eval()

    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = theirs(images, mode='tensor')
        logits = ours(images, mode='tensor')
    assert logits.shape == (3, CLASSES)
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)
