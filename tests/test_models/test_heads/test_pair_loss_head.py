"""What the training heads share lives in PairLossHead."""
import math

import pytest
import torch
import torch.nn.functional as F

from mmclip.models.heads import CLIPContrastiveHead, PairLossHead, SigLIPHead


class DotLoss(PairLossHead):
    """A minimal head: only the loss and its metrics are its own."""

    def pair_loss(self, img_feats, txt_feats, logit_scale):
        loss = -(logit_scale.exp() * (img_feats * txt_feats).sum(-1)).mean()
        return loss, dict(i2t_acc=torch.tensor(100.),
                          t2i_acc=torch.tensor(100.))


def test_loss_weight_temperature_and_pair_check_are_shared():
    img = F.normalize(torch.randn(4, 8), dim=-1)
    txt = F.normalize(torch.randn(4, 8), dim=-1)
    logit_scale = torch.tensor(math.log(20.), requires_grad=True)
    out = DotLoss(loss_weight=0.5).loss(img, txt, logit_scale)
    assert list(out) == ['loss', 'temperature', 'i2t_acc', 't2i_acc']
    expected = -0.5 * 20. * (img * txt).sum(-1).mean()
    torch.testing.assert_close(out['loss'], expected)
    assert out['loss'].requires_grad and not out['temperature'].requires_grad
    assert out['temperature'].item() == pytest.approx(20.)
    for head in (DotLoss(), CLIPContrastiveHead(), SigLIPHead()):
        assert isinstance(head, PairLossHead)
        with pytest.raises(ValueError, match=r'must both be \(B, D\)'):
            head.loss(img, txt[:3], logit_scale)
