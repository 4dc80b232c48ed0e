"""CLIPModel(nonscalar_logit_scale=True): the temperature as a (1, )
parameter, which FSDP needs (it refuses 0-d parameters)."""
import math

import pytest
import torch

from mmclip.registry import MODELS


def test_shape_loss_and_checkpoints_of_either_shape(tiny_clip_cfg):
    scalar = MODELS.build(dict(tiny_clip_cfg,
                               head=dict(type='CLIPContrastiveHead')))
    vector = MODELS.build(dict(tiny_clip_cfg, nonscalar_logit_scale=True,
                               head=dict(type='CLIPContrastiveHead')))
    assert scalar.logit_scale.shape == ()
    assert vector.logit_scale.shape == (1, )
    assert vector.logit_scale.item() == pytest.approx(math.log(1 / 0.07))
    # Checkpoints load across the two shapes (an FSDP run's into OpenAI's
    # layout and back).
    scalar.logit_scale.data.fill_(1.5)
    vector.load_state_dict(scalar.state_dict())
    assert vector.logit_scale.shape == (1, )
    assert vector.logit_scale.item() == 1.5
    vector.logit_scale.data.fill_(2.5)
    scalar.load_state_dict(vector.state_dict())
    assert scalar.logit_scale.shape == () and scalar.logit_scale.item() == 2.5
    # Same weights, same loss and gradient.
    vector.load_state_dict(scalar.state_dict())
    images = torch.randn(3, 3, 32, 32)
    ids = scalar.tokenizer(['a cat', 'a dog', 'a red car'])
    losses = []
    for model in (scalar, vector):
        out = model.head.loss(model.encode_image(images, normalize=True),
                              model.encode_text(ids, normalize=True),
                              model.logit_scale)
        out['loss'].backward()
        losses.append(out['loss'])
        assert out['temperature'].numel() == 1
    torch.testing.assert_close(losses[0], losses[1])
    torch.testing.assert_close(scalar.logit_scale.grad.reshape(1),
                               vector.logit_scale.grad)
