import copy
import re

import pytest
import torch
import torch.nn as nn
from mmpretrain.models.utils import QuickGELU

from mmclip.models import CLIPVisionTransformer
from mmclip.registry import MODELS

TINY = dict(embed_dims=64, num_layers=3, num_heads=4, proj_dims=32)


def tiny(**kwargs):
    return CLIPVisionTransformer(arch=dict(TINY), img_size=32, patch_size=8,
                                 **kwargs)


@pytest.mark.parametrize('arch,width,layers,heads,dim', [
    ('b', 768, 12, 12, 512), ('base', 768, 12, 12, 512),
    ('l', 1024, 24, 16, 768), ('Large', 1024, 24, 16, 768)])
def test_arch_zoo(arch, width, layers, heads, dim):
    # Meta device: check the architecture without allocating the weights.
    with torch.device('meta'):
        m = CLIPVisionTransformer(arch=arch, patch_size=14)
    assert m.embed_dims == width and m.out_channels == dim
    assert len(m.transformer.resblocks) == layers
    assert m.transformer.resblocks[0].attn.num_heads == heads


def test_bad_arguments_name_the_fix():
    with pytest.raises(ValueError, match='unknown arch .*xl.*choose one of'):
        CLIPVisionTransformer(arch='xl')
    with pytest.raises(ValueError, match='lacks keys'):
        CLIPVisionTransformer(arch=dict(embed_dims=64))
    with pytest.raises(ValueError, match='not a multiple of patch_size'):
        CLIPVisionTransformer(arch=dict(TINY), img_size=30, patch_size=8)
    with pytest.raises(ValueError, match='pool_type'):
        tiny(pool_type='max')
    advice = ('use dict(type="QuickGELU") for OpenAI weights or '
              'dict(type="GELU") for most LAION weights.')
    for bad in (dict(type='QuickGeLU'), dict(act='GELU'), 'GELU'):
        with pytest.raises(ValueError, match=re.escape(advice)):
            tiny(act_cfg=bad)
    with pytest.raises(ValueError, match='img_size=32'):
        tiny().eval()(torch.randn(1, 3, 48, 48))


@pytest.mark.parametrize('img_size', [224, 336, 384, 448])
def test_any_image_size(img_size):
    m = CLIPVisionTransformer(arch=dict(TINY), img_size=img_size,
                              patch_size=16 if img_size != 336 else 14).eval()
    grid = img_size // m.patch_size
    assert m.positional_embedding.shape == (1 + grid * grid, 64)
    assert m(torch.randn(1, 3, img_size, img_size))[0].shape == (1, 32)


def test_out_types_and_pooling():
    x = torch.randn(2, 3, 32, 32)
    m = tiny().eval()
    proj = m(x)[0]
    m.out_type = 'pooled'
    pooled = m(x)[0]
    m.out_type = 'tokens'
    tokens = m(x)[0]
    assert tokens.shape == (2, 1 + 16, 64)
    torch.testing.assert_close(pooled, tokens[:, 0])
    torch.testing.assert_close(proj, pooled @ m.proj)
    avg = tiny(pool_type='avg', out_type='pooled').eval()
    avg.load_state_dict(m.state_dict())
    torch.testing.assert_close(avg(x)[0], tokens[:, 1:].mean(1))


def test_activation_from_config():
    q, g = tiny(), tiny(act_cfg=dict(type='GELU'))
    # The registry's modules: mmpretrain's QuickGELU, torch's exact GELU.
    assert isinstance(q.transformer.resblocks[0].mlp.gelu, QuickGELU)
    assert type(g.transformer.resblocks[0].mlp.gelu) is nn.GELU
    x = torch.linspace(-6, 6, 101)
    torch.testing.assert_close(QuickGELU()(x), x * torch.sigmoid(1.702 * x),
                               rtol=0, atol=0)
    # Any registered activation, whatever the caller's default scope.
    from mmengine.registry import DefaultScope
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        s = tiny(act_cfg=dict(type='SiLU'))
    assert type(s.transformer.resblocks[0].mlp.gelu) is nn.SiLU
    g.load_state_dict(q.state_dict())
    x = torch.randn(1, 3, 32, 32)
    assert not torch.allclose(q.eval()(x)[0], g.eval()(x)[0])


def test_224_checkpoint_into_384_model_matches_open_clip_and_timm():
    """A 224px grid (14x14 for B/16) loads into a 384px model (24x24) and is
    resized exactly as open_clip's and timm's loaders do."""
    from open_clip.model import resize_pos_embed
    from timm.layers import resample_abs_pos_embed
    small = CLIPVisionTransformer(arch=dict(TINY), img_size=224, patch_size=16)
    big = CLIPVisionTransformer(arch=dict(TINY), img_size=384, patch_size=16)
    sd = copy.deepcopy(small.state_dict())
    big.load_state_dict(sd)
    ours = big.positional_embedding.detach()
    assert ours.shape == (1 + 24 * 24, 64)

    class Visual:  # what open_clip's resizer reads from a model
        grid_size = (24, 24)
    oc_sd = {'visual.positional_embedding': sd['positional_embedding']}
    resize_pos_embed(oc_sd, type('M', (), {'visual': Visual})())
    torch.testing.assert_close(ours, oc_sd['visual.positional_embedding'],
                               rtol=0, atol=1e-6)
    timm_pe = resample_abs_pos_embed(
        sd['positional_embedding'][None], (24, 24), (14, 14),
        num_prefix_tokens=1)[0]
    torch.testing.assert_close(ours, timm_pe, rtol=0, atol=1e-6)
    torch.testing.assert_close(ours[0], sd['positional_embedding'][0])
    assert big.eval()(torch.randn(1, 3, 384, 384))[0].shape == (1, 32)


def test_frozen_stages_and_lock():
    m = tiny(frozen_stages=1)
    frozen = [n for n, p in m.named_parameters() if not p.requires_grad]
    assert 'conv1.weight' in frozen and 'class_embedding' in frozen
    assert 'positional_embedding' in frozen and 'ln_pre.weight' in frozen
    assert any(n.startswith('transformer.resblocks.0.') for n in frozen)
    assert not any(n.startswith('transformer.resblocks.1.') for n in frozen)
    assert 'proj' not in frozen
    m.train()
    assert not m.transformer.resblocks[0].training  # frozen stays in eval
    assert m.transformer.resblocks[1].training
    m.lock()
    assert not any(p.requires_grad for p in m.parameters())
    m2 = tiny()
    m2.lock(unlocked_layers=1)
    trainable = {n.split('.')[0] for n, p in m2.named_parameters()
                 if p.requires_grad}
    assert trainable == {'transformer', 'ln_post', 'proj'}
    assert all(p.requires_grad
               for p in m2.transformer.resblocks[-1].parameters())


def test_grad_checkpointing_same_values_and_grads():
    x = torch.randn(2, 3, 32, 32)
    ref = tiny().train()
    ckpt = tiny(with_cp=True).train()
    ckpt.load_state_dict(ref.state_dict())
    out_ref, out_ckpt = ref(x)[0], ckpt(x)[0]
    torch.testing.assert_close(out_ref, out_ckpt)
    out_ref.sum().backward()
    out_ckpt.sum().backward()
    for (n, a), b in zip(ref.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=n)
    ckpt.set_grad_checkpointing(False)
    assert not ckpt.transformer.grad_checkpointing


def test_patch_dropout_only_in_training():
    m = tiny(patch_dropout=0.5, out_type='tokens')
    x = torch.randn(2, 3, 32, 32)
    assert m.train()(x)[0].shape == (2, 1 + 8, 64)  # class token + half
    assert m.eval()(x)[0].shape == (2, 1 + 16, 64)
    with pytest.raises(ValueError, match='patch_dropout'):
        tiny(patch_dropout=1.0)


def test_drop_path_changes_training_output_only():
    m = tiny(drop_path_rate=0.5)
    x = torch.randn(4, 3, 32, 32)
    m.eval()
    torch.testing.assert_close(m(x)[0], m(x)[0])
    m.train()
    torch.manual_seed(1)
    a = m(x)[0]
    torch.manual_seed(2)
    assert not torch.allclose(a, m(x)[0])


def test_attn_drop_rate_from_config():
    """Set from a config, reaches every block's attention, acts in training
    only (``SelfAttention(attn_drop=...)`` was unreachable before)."""
    cfg = dict(type='CLIPVisionTransformer', arch=dict(TINY), img_size=32,
               patch_size=8, attn_drop_rate=0.5)
    m = MODELS.build(cfg)
    assert [b.attn.attn_drop for b in m.transformer.resblocks] == [0.5] * 3
    ref = tiny()
    ref.load_state_dict(m.state_dict())
    x = torch.randn(4, 3, 32, 32)
    torch.testing.assert_close(m.eval()(x)[0], ref.eval()(x)[0])
    m.train()
    torch.manual_seed(1)
    a = m(x)[0]
    torch.manual_seed(2)
    assert not torch.allclose(a, m(x)[0])
    assert not torch.allclose(a, ref.train()(x)[0])


def test_norms_and_drop_path_are_stack_bricks():
    from mmcv.cnn.bricks import DropPath
    m = tiny(drop_path_rate=0.2)
    blocks = m.transformer.resblocks
    assert isinstance(blocks[1].drop_path, DropPath)
    assert [getattr(b.drop_path, 'drop_prob', 0.) for b in blocks] == [
        0., pytest.approx(0.1), pytest.approx(0.2)]
    assert type(m.ln_pre) is nn.LayerNorm and m.ln_post.eps == 1e-5
    assert tiny(layer_norm_eps=1e-6).transformer.resblocks[0].ln_1.eps == 1e-6
    # OpenAI's parameter names, no extra entries from the bricks.
    names = set(tiny().state_dict())
    assert {'ln_pre.weight', 'ln_post.bias', 'transformer.resblocks.0.ln_1.'
            'weight', 'transformer.resblocks.2.ln_2.bias'} <= names
    assert not any('drop' in n for n in names)
