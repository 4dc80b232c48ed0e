"""SigLIPHead on one process: by hand, and against open_clip."""
import importlib
import math

import pytest
import torch
import torch.nn.functional as F

from mmclip.models.heads import SigLIPHead, sigmoid_loss
from mmclip.registry import MODELS

# Image 2 is closer to text 1 than to its own text 2: image->text gets 2 of 3
# right, text->image all 3.
IMG = F.normalize(
    torch.tensor([[1., 0., 0.], [0., 1., 0.], [0., .9, .1]],
                 dtype=torch.float64), dim=-1)
TXT = torch.eye(3, dtype=torch.float64)
LOGIT_SCALE = torch.tensor(math.log(10.), dtype=torch.float64)


def _random_pairs(num=9, dim=16, dtype=torch.float64, seed=2):
    gen = torch.Generator().manual_seed(seed)
    img = torch.randn(num, dim, generator=gen, dtype=dtype)
    txt = torch.randn(num, dim, generator=gen, dtype=dtype)
    return F.normalize(img, dim=-1), F.normalize(txt, dim=-1)


def test_registered_with_learnable_bias():
    head = MODELS.build(dict(type='SigLIPHead', init_logit_bias=-5.))
    assert isinstance(head, SigLIPHead)
    assert isinstance(head.logit_bias, torch.nn.Parameter)
    assert head.logit_bias.shape == () and head.logit_bias.item() == -5.
    assert head.dist_impl == 'gather' and head.loss_weight == 1.
    with pytest.raises(ValueError, match='dist_impl'):
        SigLIPHead(dist_impl='bidir')


def test_hand_computed_3x3():
    head = SigLIPHead(init_logit_bias=-2.).double()
    out = head.loss(IMG, TXT, LOGIT_SCALE)
    t, b = 10., -2.
    total = 0.
    for i, img in enumerate(IMG.tolist()):
        for j, txt in enumerate(TXT.tolist()):
            logit = t * sum(x * y for x, y in zip(img, txt)) + b
            label = 1. if i == j else -1.
            total -= math.log(1. / (1. + math.exp(-label * logit)))
    assert abs(out['loss'].item() - total / 3) < 1e-6
    assert out['temperature'].item() == pytest.approx(10.)
    assert out['logit_bias'].item() == -2.
    assert out['i2t_acc'].item() == pytest.approx(200 / 3)
    assert out['t2i_acc'].item() == pytest.approx(100.)


def test_sigmoid_loss_blocks():
    logits = torch.randn(3, 6, dtype=torch.float64)
    # Positives at columns 3..5 (a rank's own texts in a gathered batch).
    labels = -torch.ones(3, 6, dtype=torch.float64)
    labels[:, 3:] += 2 * torch.eye(3, dtype=torch.float64)
    expected = -F.logsigmoid(labels * logits).sum() / 3
    torch.testing.assert_close(sigmoid_loss(logits, 3), expected)
    torch.testing.assert_close(
        sigmoid_loss(logits), -F.logsigmoid(-logits).sum() / 3)


def test_output_dict():
    img, txt = _random_pairs()
    head = SigLIPHead(loss_weight=0.5).double()
    out = head.loss(img, txt, LOGIT_SCALE)
    assert [k for k in out if 'loss' in k] == ['loss']
    assert out['loss'].requires_grad and out['loss'].dim() == 0
    for key in ('temperature', 'logit_bias', 'i2t_acc', 't2i_acc'):
        assert not out[key].requires_grad and out[key].dim() == 0
    full = SigLIPHead().double().loss(img, txt, LOGIT_SCALE)['loss']
    torch.testing.assert_close(out['loss'], full * 0.5)
    with pytest.raises(ValueError, match='both be'):
        head.loss(img, txt[:3], LOGIT_SCALE)


@pytest.mark.parametrize('dtype,tol', [(torch.float64, 1e-12),
                                       (torch.float32, 1e-6)])
def test_matches_open_clip(dtype, tol):
    SigLipLoss = importlib.import_module('open_clip.loss').SigLipLoss
    img, txt = _random_pairs(dtype=dtype)
    img.requires_grad_()
    txt.requires_grad_()
    head = SigLIPHead(init_logit_bias=-3.).to(dtype)
    scale = torch.tensor(2.3, dtype=dtype, requires_grad=True)
    ref_scale = torch.tensor(2.3, dtype=dtype, requires_grad=True)
    ref_bias = torch.tensor(-3., dtype=dtype, requires_grad=True)
    ours = head.loss(img, txt, scale)['loss']
    ours_grads = torch.autograd.grad(ours, [img, txt, scale, head.logit_bias])
    # open_clip takes the temperature itself, not its log.
    ref = SigLipLoss()(img, txt, ref_scale.exp(), ref_bias)
    ref_grads = torch.autograd.grad(ref, [img, txt, ref_scale, ref_bias])
    # Relative: the loss and the bias/scale gradients are sums over B x B.
    assert abs(ours.item() - ref.item()) <= tol * max(1., abs(ref.item()))
    for a, b in zip(ours_grads, ref_grads):
        err = (a - b).abs().max().item()
        assert err <= tol * max(1., b.abs().max().item())
