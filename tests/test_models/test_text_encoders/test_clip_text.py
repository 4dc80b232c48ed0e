import pytest
import torch
import torch.nn.functional as F

from mmclip.models import CLIPTextTransformer

TINY = dict(embed_dims=48, num_layers=2, num_heads=4, proj_dims=32)


def padded_batch(lengths, context_length=77, eot=49407):
    """Token ids like the tokenizer makes: SOT, words, EOT, zero padding."""
    ids = torch.zeros(len(lengths), context_length, dtype=torch.long)
    for i, n in enumerate(lengths):
        ids[i, 0] = 49406
        ids[i, 1:n - 1] = torch.randint(1, 49000, (n - 2, ))
        ids[i, n - 1] = eot
    return ids


def test_trimming_is_exact_at_the_real_width():
    """Causal mask + EOT pooling: cutting the padded tail changes nothing.

    In float64 the two paths agree to rounding (1e-10), which shows the
    equivalence is exact; in float32 the normalised embeddings (what logits
    use) agree within 1e-6 (different matmul shapes round differently)."""
    enc = CLIPTextTransformer(arch='base').eval()
    with torch.no_grad():
        for p in enc.parameters():  # every parameter non-trivial
            p.add_(0.02 * torch.randn_like(p))
    ids = padded_batch([5, 9, 14, 3])
    with torch.no_grad():
        enc.trim_padding = True
        trimmed = enc(ids)[0]
        enc.trim_padding = False
        full = enc(ids)[0]
        torch.testing.assert_close(
            F.normalize(trimmed, dim=-1), F.normalize(full, dim=-1),
            rtol=0, atol=1e-6)
        enc.double()
        full64 = enc(ids)[0]
        enc.trim_padding = True
        trimmed64 = enc(ids)[0]
    assert (trimmed64 - full64).abs().max() < 1e-10
    assert (trimmed - full).abs().max() < 1e-5


def test_trimming_really_shortens_the_sequence():
    enc = CLIPTextTransformer(arch=dict(TINY)).eval()
    seen = []
    enc.transformer.register_forward_hook(
        lambda m, args, out: seen.append(args[0].shape[1]))
    enc(padded_batch([4, 7]))
    assert seen == [7]


def test_pooling_at_eot():
    enc = CLIPTextTransformer(arch=dict(TINY)).eval()
    ids = padded_batch([6, 4])
    assert enc.pool_index(ids).tolist() == [5, 3]
    # With an explicit EOT id the first occurrence is used, as transformers
    # does for tokenizers whose EOT is not the largest id.
    custom = CLIPTextTransformer(arch=dict(TINY), eot_token_id=7).eval()
    ids2 = torch.tensor([[1, 5, 7, 9, 7, 0]])
    assert custom.pool_index(ids2).tolist() == [2]


def test_output_and_gradients():
    enc = CLIPTextTransformer(arch=dict(TINY))
    out = enc(padded_batch([5, 8]))[0]
    assert out.shape == (2, 32)
    out.sum().backward()
    assert all(p.grad is not None for p in enc.parameters())


def test_context_length_errors():
    enc = CLIPTextTransformer(arch=dict(TINY), context_length=16)
    with pytest.raises(ValueError, match='context_length=16'):
        enc(torch.ones(1, 20, dtype=torch.long))
    with pytest.raises(ValueError, match='batch, length'):
        enc(torch.ones(20, dtype=torch.long))


def test_arch_zoo_and_freezing():
    with torch.device('meta'):
        large = CLIPTextTransformer(arch='large')
    assert large.embed_dims == 768 and large.out_channels == 768
    enc = CLIPTextTransformer(arch=dict(TINY), frozen_stages=1)
    frozen = {n for n, p in enc.named_parameters() if not p.requires_grad}
    assert 'token_embedding.weight' in frozen
    assert 'positional_embedding' in frozen
    assert any(n.startswith('transformer.resblocks.0') for n in frozen)
    assert 'text_projection' not in frozen
    enc.lock()
    assert not any(p.requires_grad for p in enc.parameters())


def test_shares_the_block_with_the_vision_tower():
    from mmclip.models import CLIPVisionTransformer
    from mmclip.models.layers import ResidualAttentionBlock
    enc = CLIPTextTransformer(arch=dict(TINY))
    vit = CLIPVisionTransformer(arch=dict(TINY), img_size=32, patch_size=8)
    assert type(enc.transformer.resblocks[0]) is ResidualAttentionBlock
    assert type(vit.transformer.resblocks[0]) is ResidualAttentionBlock


def test_attn_drop_rate_from_config():
    from mmclip.registry import MODELS
    enc = MODELS.build(dict(type='CLIPTextTransformer', arch=dict(TINY),
                            attn_drop_rate=0.3))
    assert {b.attn.attn_drop for b in enc.transformer.resblocks} == {0.3}
    assert type(enc.ln_final).__name__ == 'LayerNorm'
    # Dropout acts in training only (the vision tower's test checks the
    # block in detail).
    ids = padded_batch([5, 9, 12])
    evaluated = enc.eval()(ids)[0]
    assert not torch.allclose(enc.train()(ids)[0], evaluated)
