import math

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
    with pytest.raises(RuntimeError, match="mode='loss' needs head"):
        model(images, mode='loss')
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
