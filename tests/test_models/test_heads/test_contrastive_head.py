"""CLIPContrastiveHead on one process: by hand, and against open_clip."""
import importlib
import math

import pytest
import torch
import torch.nn.functional as F
from mmengine.model import BaseModel

from mmclip.models.heads import CLIPContrastiveHead
from mmclip.registry import MODELS

# Three unit pairs where image 2 is closer to text 1 than to its own text 2:
# image->text gets 2 of 3 right, text->image all 3.
IMG = F.normalize(
    torch.tensor([[1., 0., 0.], [0., 1., 0.], [0., .9, .1]],
                 dtype=torch.float64), dim=-1)
TXT = torch.eye(3, dtype=torch.float64)
LOGIT_SCALE = torch.tensor(math.log(5.), dtype=torch.float64)


def _random_pairs(num=9, dim=16, dtype=torch.float64, seed=1):
    gen = torch.Generator().manual_seed(seed)
    img = torch.randn(num, dim, generator=gen, dtype=dtype)
    txt = torch.randn(num, dim, generator=gen, dtype=dtype)
    return F.normalize(img, dim=-1), F.normalize(txt, dim=-1)


def test_registered_and_not_mmpretrains():
    head = MODELS.build(dict(type='CLIPContrastiveHead', loss_weight=2.))
    assert isinstance(head, CLIPContrastiveHead)
    assert head.local_loss and head.gather_with_grad and head.loss_weight == 2


def test_hand_computed_3x3():
    out = CLIPContrastiveHead().loss(IMG, TXT, LOGIT_SCALE)
    t = math.exp(LOGIT_SCALE.item())
    sims = [[sum(a * b for a, b in zip(i, j)) for j in TXT.tolist()]
            for i in IMG.tolist()]
    # -log softmax of the matching pair along each row (image->text) and
    # each column (text->image), averaged over pairs, then over directions.
    i2t = -sum(t * sims[i][i] - math.log(sum(
        math.exp(t * sims[i][j]) for j in range(3))) for i in range(3)) / 3
    t2i = -sum(t * sims[i][i] - math.log(sum(
        math.exp(t * sims[j][i]) for j in range(3))) for i in range(3)) / 3
    assert abs(out['loss'].item() - (i2t + t2i) / 2) < 1e-6
    assert out['temperature'].item() == pytest.approx(5.)
    assert out['i2t_acc'].item() == pytest.approx(200 / 3)
    assert out['t2i_acc'].item() == pytest.approx(100.)


def test_output_dict_for_mmengine():
    img, txt = _random_pairs()
    scale = LOGIT_SCALE.clone().requires_grad_()
    out = CLIPContrastiveHead(loss_weight=0.5).loss(img, txt, scale)
    assert [k for k in out if 'loss' in k] == ['loss']
    assert out['loss'].requires_grad and out['loss'].dim() == 0
    for key in ('temperature', 'i2t_acc', 't2i_acc'):
        assert not out[key].requires_grad and out[key].dim() == 0
    # mmengine sums only the keys containing 'loss'.
    total, log_vars = BaseModel.parse_losses(None, out)
    assert torch.equal(total, out['loss'])
    assert set(log_vars) == {'loss', 'temperature', 'i2t_acc', 't2i_acc'}
    full = CLIPContrastiveHead().loss(img, txt, scale)['loss']
    torch.testing.assert_close(out['loss'], full * 0.5)


@pytest.mark.parametrize('dtype,tol', [(torch.float64, 1e-12),
                                       (torch.float32, 1e-6)])
def test_matches_open_clip(dtype, tol):
    ClipLoss = importlib.import_module('open_clip.loss').ClipLoss
    img, txt = _random_pairs(dtype=dtype)
    img.requires_grad_()
    txt.requires_grad_()
    ours_scale = torch.tensor(2.7, dtype=dtype, requires_grad=True)
    ref_scale = torch.tensor(2.7, dtype=dtype, requires_grad=True)
    ours = CLIPContrastiveHead().loss(img, txt, ours_scale)['loss']
    ours_grads = torch.autograd.grad(ours, [img, txt, ours_scale])
    # open_clip takes the temperature itself, not its log.
    ref = ClipLoss()(img, txt, ref_scale.exp())
    ref_grads = torch.autograd.grad(ref, [img, txt, ref_scale])
    assert abs(ours.item() - ref.item()) < tol
    for a, b in zip(ours_grads, ref_grads):
        assert (a - b).abs().max().item() < tol


def test_labels_cached_per_device_and_size():
    head = CLIPContrastiveHead()
    img, txt = _random_pairs(num=4)
    head.loss(img, txt, LOGIT_SCALE)
    labels = head._labels[(img.device, 4, 0)]
    head.loss(img, txt, LOGIT_SCALE)
    assert head._labels[(img.device, 4, 0)] is labels
    head.loss(*_random_pairs(num=5), LOGIT_SCALE)
    assert len(head._labels) == 2


def test_shape_mismatch_and_wrong_mode_warning():
    img, txt = _random_pairs(num=4)
    with pytest.raises(ValueError, match='both be'):
        CLIPContrastiveHead().loss(img, txt[:3], LOGIT_SCALE)
    with pytest.warns(UserWarning, match='wrong gradients'):
        CLIPContrastiveHead(local_loss=True, gather_with_grad=False)
