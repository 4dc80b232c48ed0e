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
    m.out_type = 'raw'
    tokens = m(x)[0]
    assert tokens.shape == (2, 1 + 16, 64)
    torch.testing.assert_close(pooled, tokens[:, 0])
    torch.testing.assert_close(proj, pooled @ m.proj)
    avg = tiny(pool_type='avg', out_type='pooled').eval()
    avg.load_state_dict(m.state_dict())
    torch.testing.assert_close(avg(x)[0], tokens[:, 1:].mean(1))


def test_final_norm_off_averages_the_last_blocks_own_tokens():
    """transformers' CLIPForImageClassification pools the last hidden state
    as it leaves the last block: final_norm=False builds no ln_post and
    pool_type='avg' then averages the un-normalised patch tokens."""
    x = torch.randn(2, 3, 32, 32)
    normed = tiny(pool_type='avg', out_channels=0).eval()
    plain = tiny(pool_type='avg', out_channels=0, final_norm=False).eval()
    assert plain.ln_post is None
    weights = {k: v for k, v in normed.state_dict().items()
               if not k.startswith('ln_post.')}
    plain.load_state_dict(weights, strict=True)
    outs, seen = block_outputs(plain, x)
    with torch.no_grad():
        expected = seen[2][:, 1:].mean(1)
        torch.testing.assert_close(outs[0], expected, rtol=0, atol=1e-6)
        assert not torch.allclose(normed(x)[0], expected)
    plain.lock()  # freezing must not trip over the missing norm
    assert not any(p.requires_grad for p in plain.parameters())


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
    m = tiny(patch_dropout=0.5, out_type='raw')
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


# Intermediate outputs (out_indices / out_type), checked against the blocks'
# own activations.


def block_outputs(model, x):
    """Every block's output ``(B, 1 + N, C)``, read with forward hooks."""
    seen = {}
    handles = [
        block.register_forward_hook(
            lambda mod, args, out, i=i: seen.__setitem__(i, out))
        for i, block in enumerate(model.transformer.resblocks)
    ]
    with torch.no_grad():
        outs = model(x)
    for h in handles:
        h.remove()
    return outs, seen


def expected_output(model, tokens, block, out_type):
    """What ``out_type`` means for the block's own output ``tokens``."""
    if block == model.transformer.num_layers - 1:
        tokens = model.ln_post(tokens)  # mmpretrain's final_norm
    if out_type == 'raw':
        return tokens
    if out_type == 'cls_token':
        return tokens[:, 0]
    if out_type == 'pooled':
        return tokens[:, 1:].mean(1) if model.pool_type == 'avg' \
            else tokens[:, 0]
    B, _, C = tokens.shape
    H, W = model.grid_size
    return tokens[:, 1:].reshape(B, H, W, C).permute(0, 3, 1, 2)


@pytest.mark.parametrize('out_type,pool_type', [
    ('raw', 'cls_token'), ('cls_token', 'avg'), ('pooled', 'cls_token'),
    ('pooled', 'avg'), ('featmap', 'cls_token')])
def test_out_indices_are_the_blocks_activations(out_type, pool_type):
    m = tiny(out_indices=(0, 1, 2), out_type=out_type,
             pool_type=pool_type).eval()
    x = torch.randn(2, 3, 32, 32)
    outs, seen = block_outputs(m, x)
    assert isinstance(outs, tuple) and len(outs) == 3
    for block, out in enumerate(outs):
        with torch.no_grad():
            ref = expected_output(m, seen[block], block, out_type)
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
    shapes = dict(raw=(2, 17, 64), cls_token=(2, 64), pooled=(2, 64),
                  featmap=(2, 64, 4, 4))
    assert outs[0].shape == shapes[out_type]
    # Intermediate blocks are not normalised, the last one is (ln_post).
    assert not torch.allclose(outs[1], expected_output(m, seen[1], 2,
                                                       out_type).detach())


def test_featmap_keeps_the_patch_layout():
    """Pixel (r, c) of a map is the patch at row r, column c of the image:
    with identity blocks, block 0's map is conv1's map + position, ln_pre."""
    m = tiny(out_indices=0, out_type='featmap').eval()
    for block in m.transformer.resblocks:
        nn.init.zeros_(block.attn.out_proj.weight)
        nn.init.zeros_(block.attn.out_proj.bias)
        nn.init.zeros_(block.mlp.c_proj.weight)
        nn.init.zeros_(block.mlp.c_proj.bias)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        featmap, = m(x)
        patches = m.conv1(x).permute(0, 2, 3, 1)  # (B, H, W, C)
        pos = m.positional_embedding[1:].reshape(4, 4, 64)
        ref = m.ln_pre(patches + pos).permute(0, 3, 1, 2)
    torch.testing.assert_close(featmap, ref, rtol=0, atol=1e-6)


def test_default_output_is_the_projected_class_token():
    m = tiny().eval()
    assert m.out_indices == (2, ) and m.out_type == 'proj'
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        outs = m(x)
        ref = m.ln_post(m.transformer(m.embed(x)))[:, 0] @ m.proj
    assert len(outs) == 1 and torch.equal(outs[0], ref)


def test_negative_indices_and_block_order():
    x = torch.randn(2, 3, 32, 32)
    m = tiny(out_indices=(0, 1, 2), out_type='raw').eval()
    neg = tiny(out_indices=[-3, -1, -2], out_type='raw').eval()
    neg.load_state_dict(m.state_dict())
    assert neg.out_indices == (0, 1, 2)
    with torch.no_grad():
        for a, b in zip(m(x), neg(x)):
            assert torch.equal(a, b)


def test_blocks_after_the_last_index_do_not_run():
    m = tiny(out_indices=(0, ), out_type='featmap').eval()
    _, seen = block_outputs(m, torch.randn(1, 3, 32, 32))
    assert sorted(seen) == [0]


@pytest.mark.parametrize('bad', [3, -4, (0, 3), (), (1, -2), 'last', 1.0])
def test_bad_out_indices_name_the_valid_range(bad):
    with pytest.raises(ValueError, match=re.escape('in [-3, 2]') + '|twice'):
        tiny(out_indices=bad, out_type='raw')


def test_bad_out_type_names_the_choices():
    choices = "('proj', 'pooled', 'cls_token', 'raw', 'featmap')"
    for bad in ('tokens', 'avg_featmap', 'FEATMAP'):
        with pytest.raises(ValueError, match=re.escape(choices)):
            tiny(out_type=bad)
    # The projection exists for the last block only.
    with pytest.raises(ValueError, match="out_type='proj'.*out_indices=-1"):
        tiny(out_indices=(0, 2))
    assert tiny(out_indices=2).out_indices == (2, )


def test_featmap_and_patch_dropout():
    m = tiny(out_indices=(0, 2), out_type='featmap', patch_dropout=0.5)
    x = torch.randn(2, 3, 32, 32)
    with pytest.raises(ValueError, match='patch_dropout=0.5 drops some'):
        m.train()(x)
    assert [o.shape for o in m.eval()(x)] == [(2, 64, 4, 4)] * 2
    m.out_type = 'raw'  # token outputs are defined in training
    assert [o.shape for o in m.train()(x)] == [(2, 1 + 8, 64)] * 2


def test_intermediates_with_grad_checkpointing():
    x = torch.randn(2, 3, 32, 32)
    ref = tiny(out_indices=(0, 1, 2), out_type='featmap').train()
    ckpt = tiny(out_indices=(0, 1, 2), out_type='featmap',
                with_cp=True).train()
    ckpt.load_state_dict(ref.state_dict())
    outs_ref, outs_ckpt = ref(x), ckpt(x)
    for a, b in zip(outs_ref, outs_ckpt):
        torch.testing.assert_close(a, b)
    sum(o.sum() for o in outs_ref).backward()
    sum(o.sum() for o in outs_ckpt).backward()
    for (n, a), b in zip(ref.named_parameters(), ckpt.parameters()):
        if n == 'proj':
            assert a.grad is None and b.grad is None  # not on any output
            continue
        torch.testing.assert_close(a.grad, b.grad, msg=n)


def test_featmaps_at_384px_from_a_224px_checkpoint():
    small = CLIPVisionTransformer(arch=dict(TINY), img_size=224,
                                  patch_size=16)
    big = CLIPVisionTransformer(arch=dict(TINY), img_size=384, patch_size=16,
                                out_indices=(1, -1), out_type='featmap')
    big.load_state_dict(small.state_dict())  # 14x14 grid resized to 24x24
    outs, seen = block_outputs(big.eval(), torch.randn(1, 3, 384, 384))
    assert [o.shape for o in outs] == [(1, 64, 24, 24)] * 2
    for block, out in zip((1, 2), outs):
        with torch.no_grad():
            ref = expected_output(big, seen[block], block, 'featmap')
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)


def test_multi_level_backbone_in_an_image_classifier():
    """Featmaps of three blocks -> mmpretrain's GlobalAveragePooling neck
    (one pooled vector per level) -> a head that reads the last level."""
    from mmengine.registry import DefaultScope
    from mmpretrain.structures import DataSample
    cfg = dict(
        type='ImageClassifier',
        backbone=dict(type='CLIPVisionTransformer', arch=dict(TINY),
                      img_size=32, patch_size=8, out_indices=(0, 1, -1),
                      out_type='featmap'),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(type='LinearClsHead', num_classes=5, in_channels=64))
    with DefaultScope.overwrite_default_scope('mmclip'):
        model = MODELS.build(cfg)
    x = torch.randn(2, 3, 32, 32)
    feats = model.extract_feat(x, stage='neck')
    assert [f.shape for f in feats] == [(2, 64)] * 3
    with torch.no_grad():
        maps = model.backbone(x)
    torch.testing.assert_close(feats[1], maps[1].mean((2, 3)))
    assert model(x, mode='tensor').shape == (2, 5)
    samples = [DataSample().set_gt_label(i) for i in (1, 3)]
    loss = model(x, samples, mode='loss')['loss']
    loss.backward()
    assert model.backbone.transformer.resblocks[0].ln_1.weight.grad is not None
