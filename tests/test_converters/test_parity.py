"""Cross-library parity of converted checkpoints at the real CLIP sizes.

Each test builds the reference model of another library at ViT-B/32 or
ViT-B/16 size with random weights (every tensor perturbed, LayerNorms
included, see :func:`converter_helpers.perturb_`), saves it the way
that library does, converts it with the CLI, loads the result with
``torch.load(weights_only=True)`` into the model its meta describes and
compares embeddings (max abs diff <= 1e-5) and logits (<= 1e-4) on CPU in
fp32. The file takes about 95 s on 2 CPU cores, 40 s of it ViT-L/14 (1.7 GB
of weights written twice), which is marked slow.
"""
import copy
import importlib
import shutil
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from converter_helpers import (build_from_meta, build_mmpretrain, perturb_,
                               save_openai_torchscript)

open_clip = importlib.import_module('open_clip')
transformers = importlib.import_module('transformers')

REPO = Path(__file__).resolve().parents[2]
MMPRETRAIN_CONFIGS = Path(
    __import__('mmpretrain').__file__).parent / '.mim' / 'configs' / 'clip'
EMB_ATOL, LOGIT_ATOL = 1e-5, 1e-4
PROMPTS = [
    'a photo of a cat', 'a diagram', 'two dogs playing in the snow',
    'an extremely long caption that goes on and on about a red car'
]


@pytest.fixture(scope='module')
def cli_main():
    sys.path.insert(0, str(REPO / 'tools' / 'model_converters'))
    try:
        from clip_to_mmclip import main
    finally:
        sys.path.pop(0)
    return main


@pytest.fixture(autouse=True)
def _remove_checkpoints(tmp_path):
    """Delete the GB-sized files at once; pytest keeps the temporary folders
    of the last three runs."""
    yield
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.fixture(scope='module')
def inputs():
    """Two preprocessed 224px images and four tokenized prompts."""
    gen = torch.Generator().manual_seed(0)
    return torch.randn(2, 3, 224, 224, generator=gen), \
        open_clip.tokenize(PROMPTS)


@pytest.fixture(scope='module')
def openclip_b32():
    model = open_clip.create_model('ViT-B-32-quickgelu')
    return perturb_(model, seed=1).eval()


def _convert(cli_main, src, dst, *flags):
    """Convert with the CLI and load the output like a user would."""
    assert cli_main([str(src), str(dst), *flags]) == 0
    ckpt = torch.load(dst, weights_only=True, mmap=True)
    return build_from_meta(ckpt['meta'], ckpt['state_dict']), ckpt['meta']


@torch.no_grad()
def _check(model, images, ids, ref_img, ref_txt, ref_logits, label):
    """Compare mmclip's embeddings and logits with the reference ones."""
    img, txt = model.encode_image(images), model.encode_text(ids)
    logits = model.get_logits(images, ids)[0]
    diffs = dict(
        image=(img - ref_img).abs().max().item(),
        text=(txt - ref_txt).abs().max().item(),
        logits=(logits - ref_logits).abs().max().item())
    print(f'\n{label}: max abs diff {diffs}')
    assert diffs['image'] <= EMB_ATOL and diffs['text'] <= EMB_ATOL, diffs
    assert diffs['logits'] <= LOGIT_ATOL, diffs


@torch.no_grad()
def _openclip_reference(model, images, ids):
    img, txt = model.encode_image(images), model.encode_text(ids)
    logits = model.logit_scale.exp() * F.normalize(img, dim=-1) @ \
        F.normalize(txt, dim=-1).t()
    return img, txt, logits


def test_open_clip_b32_quickgelu(tmp_path, cli_main, inputs, openclip_b32):
    """An open_clip training checkpoint (DDP prefix, run name with the
    model name) of ViT-B-32-quickgelu."""
    torch.save(
        dict(
            epoch=1,
            name='run-model_ViT-B-32-quickgelu',
            state_dict={
                f'module.{k}': v
                for k, v in openclip_b32.state_dict().items()
            }), tmp_path / 'epoch_1.pt')
    model, meta = _convert(cli_main, tmp_path / 'epoch_1.pt',
                           tmp_path / 'mm.pth')
    assert meta['act_cfg'] == dict(type='QuickGELU') and meta['act_certain']
    vision = meta['arch']['vision']
    assert (vision['patch_size'], vision['num_heads'],
            meta['arch']['embed_dims']) == (32, 12, 512)
    _check(model, *inputs, *_openclip_reference(openclip_b32, *inputs),
           'open_clip ViT-B-32-quickgelu')


@pytest.mark.slow
def test_open_clip_l14_quickgelu(tmp_path, cli_main, inputs):
    ref = perturb_(open_clip.create_model('ViT-L-14-quickgelu'), seed=6)
    ref.eval()
    torch.save(ref.state_dict(), tmp_path / 'l14.pt')
    model, meta = _convert(cli_main, tmp_path / 'l14.pt', tmp_path / 'mm.pth',
                           '--act', 'quick_gelu')
    assert (meta['arch']['vision']['num_heads'],
            meta['arch']['text']['num_heads']) == (16, 12)
    _check(model, *inputs, *_openclip_reference(ref, *inputs),
           'open_clip ViT-L-14-quickgelu')


def test_open_clip_b16_gelu(tmp_path, cli_main, inputs):
    """open_clip's plain ViT-B-16 uses GELU: given with --act gelu."""
    ref = perturb_(open_clip.create_model('ViT-B-16'), seed=2).eval()
    torch.save(ref.state_dict(), tmp_path / 'b16.bin')
    model, meta = _convert(cli_main, tmp_path / 'b16.bin', tmp_path / 'mm.pth',
                           '--act', 'gelu')
    assert meta['act_cfg'] == dict(type='GELU')
    assert meta['arch']['vision']['patch_size'] == 16
    _check(model, *inputs, *_openclip_reference(ref, *inputs),
           'open_clip ViT-B-16 (GELU)')


def test_openai_torchscript_b32(tmp_path, cli_main, inputs, openclip_b32):
    """OpenAI's TorchScript archive layout, fp16 weights like the release;
    the reference is open_clip with exactly the stored (rounded) values."""
    stored = save_openai_torchscript(openclip_b32, str(tmp_path / 'B32.pt'))
    ref = copy.deepcopy(openclip_b32)
    ref.load_state_dict({
        k: v
        for k, v in stored.items()
        if k not in ('input_resolution', 'context_length', 'vocab_size')
    })
    model, meta = _convert(cli_main, tmp_path / 'B32.pt', tmp_path / 'mm.pth')
    assert meta['source_format'] == 'torchscript'
    assert meta['dtype'] == 'float16'
    _check(model, *inputs, *_openclip_reference(ref, *inputs),
           'OpenAI TorchScript ViT-B/32 (fp16 weights)')


@pytest.fixture(scope='module')
def hf_b32_reference(inputs):
    """transformers CLIPModel at ViT-B/32 size and its outputs."""
    from transformers import CLIPConfig, CLIPModel
    config = CLIPConfig(
        text_config=dict(
            hidden_size=512,
            intermediate_size=2048,
            num_hidden_layers=12,
            num_attention_heads=8,
            vocab_size=49408,
            max_position_embeddings=77,
            hidden_act='quick_gelu'),
        vision_config=dict(
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            image_size=224,
            patch_size=32,
            hidden_act='quick_gelu'),
        projection_dim=512)
    model = perturb_(CLIPModel(config), seed=3).eval()
    images, ids = inputs
    with torch.no_grad():
        # transformers 5.x returns a BaseModelOutputWithPooling whose
        # pooler_output is the projected embedding; 4.x returned the tensor
        img = model.get_image_features(pixel_values=images)
        txt = model.get_text_features(input_ids=ids)
        img, txt = (getattr(x, 'pooler_output', x) for x in (img, txt))
        logits = model(input_ids=ids, pixel_values=images).logits_per_image
    return model, (img, txt, logits)


@pytest.mark.parametrize('storage', ['safetensors', 'bin'])
def test_hf_b32(tmp_path, cli_main, inputs, hf_b32_reference, storage):
    hf, reference = hf_b32_reference
    if storage == 'safetensors':
        hf.save_pretrained(tmp_path)
        assert (tmp_path / 'model.safetensors').exists()
    else:
        # transformers 5.x only writes safetensors; older versions wrote
        # pytorch_model.bin, which is what this reproduces
        hf.config.save_pretrained(tmp_path)
        torch.save(hf.state_dict(), tmp_path / 'pytorch_model.bin')
    model, meta = _convert(cli_main, tmp_path, tmp_path / 'mm.pth')
    assert meta['source_format'] == 'hf' and meta['act_certain']
    _check(model, *inputs, *reference, f'transformers ViT-B/32 ({storage})')


def test_mmpretrain_classifier_b16(tmp_path, cli_main, inputs):
    """mmpretrain's CLIP ViT-B/16 ImageNet classifier: the image tower must
    give mmpretrain's pre-head feature (final-norm class token), and the kept
    head must give its logits inside mmpretrain's ImageClassifier."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope

    from mmclip.registry import MODELS
    cfg = Config.fromfile(MMPRETRAIN_CONFIGS /
                          'vit-base-p16_pt-64xb64_in1k.py')
    ref = perturb_(build_mmpretrain(cfg.model.to_dict()), seed=4)
    torch.save(
        dict(meta=dict(epoch=300), state_dict=ref.state_dict()),
        tmp_path / 'cls.pth')
    backbone, meta = _convert(cli_main, tmp_path / 'cls.pth',
                              tmp_path / 'mm.pth')
    assert meta['model_cfg']['text_encoder'] is None
    images = inputs[0]
    # mmpretrain's ViT runs LayerNorm with eps=1e-6 (OpenAI/timm: 1e-5); the
    # converted config carries it, so the model as shipped must match.
    assert meta['model_cfg']['vision_backbone']['layer_norm_eps'] == 1e-6
    with torch.no_grad():
        feat = backbone(images)[0]
        diff = (feat - ref.extract_feat(images)[-1]).abs().max().item()
    print(f'\nmmpretrain classifier ViT-B/16: feature diff {diff}')
    assert diff <= EMB_ATOL

    with DefaultScope.overwrite_default_scope('mmclip'):
        classifier = MODELS.build(
            dict(
                type='ImageClassifier',
                backbone=meta['model_cfg']['vision_backbone'],
                head=meta['classifier_head']))
    classifier.load_state_dict(
        torch.load(tmp_path / 'mm.pth', weights_only=True)['state_dict'])
    classifier.eval()
    with torch.no_grad():
        logits = classifier(images, mode='tensor')
        diff = (logits - ref(images, mode='tensor')).abs().max().item()
    print(f'mmpretrain classifier ViT-B/16: logits diff {diff}')
    assert diff <= LOGIT_ATOL


class _OfflineTokenizer:
    """Stands in for the HF tokenizer mmpretrain's CLIP builds (a download);
    only its vocabulary lookup runs at construction."""

    def get_vocab(self):
        return {'<|startoftext|>': 49406, '<|endoftext|>': 49407}


def test_mmpretrain_zero_shot_b16(tmp_path, cli_main, inputs):
    """mmpretrain's CLIPZeroShot (config clip_vit-base-p16_zeroshot-cls_*),
    saved flat as its openai-clip_to_mmpretrain-clip converter does."""
    from mmengine.config import Config
    cfg = Config.fromfile(MMPRETRAIN_CONFIGS /
                          'clip_vit-base-p16_zeroshot-cls_cifar100.py')
    model_cfg = cfg.model.to_dict()
    model_cfg['tokenizer'] = dict(type=_OfflineTokenizer)
    ref = perturb_(build_mmpretrain(model_cfg), seed=5)
    torch.save(ref.state_dict(), tmp_path / 'clip.pth')
    model, meta = _convert(cli_main, tmp_path / 'clip.pth',
                           tmp_path / 'mm.pth')
    assert meta['source_format'] == 'mmpretrain_clip'
    images, ids = inputs
    with torch.no_grad():
        reference = (ref.extract_image_feat(images),
                     ref.extract_text_feat(ids),
                     ref.compute_similarity(images, ids)[0])
    _check(model, images, ids, *reference, 'mmpretrain CLIPZeroShot ViT-B/16')
