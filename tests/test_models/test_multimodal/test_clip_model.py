import math
import re

import pytest
import torch
import torch.nn.functional as F

from mmclip.registry import MODELS


@pytest.fixture
def model(tiny_clip_cfg):
    return MODELS.build(tiny_clip_cfg).eval()


def test_encode_and_logits(model):
    images = torch.randn(3, 3, 32, 32)
    texts = ['a photo of a cat', 'a dog', 'two red apples on a table']
    ids = model.tokenizer(texts)
    with torch.no_grad():
        img = model.encode_image(images)
        txt = model.encode_text(ids)
        torch.testing.assert_close(model.encode_text(texts), txt)
        torch.testing.assert_close(
            model.encode_image(images, normalize=True),
            img / img.norm(dim=-1, keepdim=True))
        per_image, per_text = model.get_logits(images, ids)
    expected = math.exp(model.logit_scale.item()) * F.normalize(
        img, dim=-1) @ F.normalize(txt, dim=-1).t()
    torch.testing.assert_close(per_image, expected)
    torch.testing.assert_close(per_text, expected.t())
    assert img.shape == (3, 32) and txt.shape == (3, 32)
    assert model.logit_scale.item() == pytest.approx(math.log(1 / 0.07))


def test_forward_modes(model):
    images = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(
        model(images, mode='tensor'), model.encode_image(images))
    advice = ("CLIPModel has no training head: mode='loss' needs "
              "head=dict(type='CLIPContrastiveHead') (CLIP's loss) or "
              "head=dict(type='SigLIPHead') in the model config.")
    with pytest.raises(RuntimeError, match=f'^{re.escape(advice)}$'):
        model(images, mode='loss')
    # The advised heads are mmclip's, built from the registry as named.
    for head in ('CLIPContrastiveHead', 'SigLIPHead'):
        assert type(MODELS.build(dict(type=head))).__module__.startswith(
            'mmclip.')
    with pytest.raises(RuntimeError, match='predict_head'):
        model(images, mode='predict')
    with pytest.raises(ValueError, match='Invalid mode'):
        model(images, mode='bogus')


def test_data_preprocessor_uses_openai_mean_std(model):
    dp = model.data_preprocessor
    torch.testing.assert_close(
        dp.mean.flatten() / 255,
        torch.tensor([0.48145466, 0.4578275, 0.40821073]))
    torch.testing.assert_close(
        dp.std.flatten() / 255,
        torch.tensor([0.26862954, 0.26130258, 0.27577711]))
    assert dp.to_rgb  # BGR (mmcv) -> RGB


def test_embedding_dims_must_agree(tiny_clip_cfg):
    tiny_clip_cfg['text_encoder']['out_channels'] = 16
    with pytest.raises(ValueError, match='out_channels'):
        MODELS.build(tiny_clip_cfg)


def test_text_fingerprint_is_memoised_and_follows_weights(model, monkeypatch):
    from mmclip.models.multimodal import clip_model
    calls = []
    real = clip_model.text_tower_fingerprint
    monkeypatch.setattr(clip_model, 'text_tower_fingerprint',
                        lambda *a: calls.append(1) or real(*a))
    first = model.text_fingerprint()
    assert model.text_fingerprint() == first and len(calls) == 1
    with torch.no_grad():
        next(model.backbone.parameters()).add_(1.)  # the image tower
    assert model.text_fingerprint() == first and len(calls) == 1
    with torch.no_grad():
        model.text_encoder.ln_final.bias.add_(1.)
    assert model.text_fingerprint() != first and len(calls) == 2


def test_predict_head_gets_features_not_the_model(model):
    """``mode='predict'`` encodes the images and hands the head the
    features, a text embedder and the logit scale."""
    from mmclip.models.utils import TextEmbedder
    seen = {}

    class Spy(torch.nn.Module):

        def predict(self, img_feats, encode_text, data_samples=None,
                    logit_scale=None):
            seen.update(img=img_feats, text=encode_text, scale=logit_scale,
                        samples=data_samples)
            return ['out']

    model.predict_head = Spy()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert model(images, ['s1', 's2'], mode='predict') == ['out']
        torch.testing.assert_close(seen['img'], model.encode_image(images))
        assert isinstance(seen['text'], TextEmbedder)
        assert seen['text'].fingerprint() == model.text_fingerprint()
        torch.testing.assert_close(
            seen['text'](['a dog']), model.encode_text(['a dog']))
    assert seen['scale'] is model.logit_scale
    assert seen['samples'] == ['s1', 's2']
