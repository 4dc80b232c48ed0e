"""Fast tests of the checkpoint converter on tiny random models.

Every supported layout is produced by the real library that writes it
(open_clip, transformers, mmpretrain, TorchScript), converted, and loaded
strictly into the mmclip model the converted ``meta`` describes. Numerical
parity at the real CLIP sizes is in ``test_parity.py``.
"""
import importlib
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from converter_helpers import (build_from_meta, build_mmpretrain, perturb_,
                               save_openai_torchscript)
from mmclip.converters import (ActivationWarning, ConversionError,
                               UnknownLayoutError, check_model_cfg,
                               convert_checkpoint, convert_file,
                               save_mmclip_checkpoint)
from mmclip.converters.arch import default_num_heads

open_clip = importlib.import_module('open_clip')
transformers = importlib.import_module('transformers')

REPO = Path(__file__).resolve().parents[2]
CLI = REPO / 'tools' / 'model_converters' / 'clip_to_mmclip.py'
W, EMBED, IMG, PATCH, CTX, VOCAB = 64, 32, 32, 16, 12, 100


# ----------------------------------------------------------------- sources
@pytest.fixture(scope='module')
def openclip_model():
    """A tiny open_clip ``CLIP`` (OpenAI key names), every weight perturbed;
    the image MLP is 2.5x wide to check that ratios other than 4 survive."""
    from open_clip.model import CLIP
    torch.manual_seed(0)
    model = CLIP(
        EMBED,
        dict(
            layers=2, width=W, patch_size=PATCH, image_size=IMG,
            mlp_ratio=2.5),
        dict(context_length=CTX, vocab_size=VOCAB, width=W, heads=1, layers=2),
        quick_gelu=True)
    return perturb_(model).eval()


@pytest.fixture(scope='module')
def openclip_sd(openclip_model):
    return {k: v.clone() for k, v in openclip_model.state_dict().items()}


def _hf_model(act='quick_gelu'):
    from transformers import CLIPConfig, CLIPModel
    tower = dict(
        hidden_size=W,
        intermediate_size=4 * W,
        num_hidden_layers=2,
        num_attention_heads=2,
        hidden_act=act)
    cfg = CLIPConfig(
        text_config=dict(
            tower,
            vocab_size=VOCAB,
            max_position_embeddings=CTX,
            eos_token_id=VOCAB - 1,
            bos_token_id=VOCAB - 2,
            pad_token_id=0),
        vision_config=dict(tower, image_size=IMG, patch_size=PATCH),
        projection_dim=EMBED)
    return perturb_(CLIPModel(cfg)).eval()


def _mmpretrain_vit_cfg(pre_norm=True):
    return dict(
        type='VisionTransformer',
        arch=dict(
            embed_dims=W,
            num_layers=2,
            num_heads=1,
            feedforward_channels=4 * W),
        img_size=IMG,
        patch_size=PATCH,
        pre_norm=pre_norm)


@pytest.fixture(scope='module')
def mmpretrain_cls_sd():
    """An mmpretrain ImageClassifier with a CLIP ViT and a 10-class head."""
    model = build_mmpretrain(
        dict(
            type='ImageClassifier',
            backbone=_mmpretrain_vit_cfg(),
            head=dict(
                type='VisionTransformerClsHead', num_classes=10,
                in_channels=W)))
    return perturb_(model).state_dict()


def _convert(path, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', ActivationWarning)
        return convert_checkpoint(str(path), **kwargs)


def _images_and_ids():
    torch.manual_seed(1)
    ids = torch.randint(1, VOCAB - 2, (3, CTX))
    ids[:, 0], ids[0, 5], ids[1, 9], ids[2, CTX - 1] = VOCAB - 2, VOCAB - 1, \
        VOCAB - 1, VOCAB - 1  # BOS, then EOT (the largest id) per row
    ids[0, 6:], ids[1, 10:] = 0, 0  # padding after EOT
    return torch.randn(2, 3, IMG, IMG), ids


# ---------------------------------------------------------- open_clip / OpenAI
def test_open_clip_plain(tmp_path, openclip_model, openclip_sd):
    torch.save(openclip_sd, tmp_path / 'oc.pt')
    sd, meta = _convert(tmp_path / 'oc.pt')
    assert meta['source_format'] == 'open_clip'
    assert meta['towers'] == ['vision', 'text']
    vision, text = meta['arch']['vision'], meta['arch']['text']
    assert (vision['embed_dims'], vision['num_layers'], vision['num_heads'],
            vision['patch_size'], vision['img_size'],
            vision['out_channels']) == (W, 2, 1, PATCH, IMG, EMBED)
    assert (text['vocab_size'], text['context_length'], text['num_heads'],
            text['out_channels']) == (VOCAB, CTX, 1, EMBED)
    assert 'width // 64' in vision['num_heads_source']
    model = build_from_meta(meta, sd)
    assert model.backbone.transformer.resblocks[0].mlp.c_fc.out_features \
        == int(W * 2.5)
    images, ids = _images_and_ids()
    with torch.no_grad():
        torch.testing.assert_close(
            model.encode_image(images),
            openclip_model.encode_image(images),
            rtol=0,
            atol=1e-5)
        torch.testing.assert_close(
            model.encode_text(ids),
            openclip_model.encode_text(ids),
            rtol=0,
            atol=1e-5)


def test_open_clip_ddp_training_checkpoint(tmp_path, openclip_sd):
    """open_clip's train script saves {'epoch', 'name', 'state_dict',
    'optimizer'} with DDP's ``module.`` prefix; the run name, which embeds
    the model name, tells the activation."""
    ckpt = dict(
        epoch=3,
        name='2024_01_01-model_ViT-B-32-quickgelu-lr_0.001',
        state_dict={
            f'module.{k}': v
            for k, v in openclip_sd.items()
        },
        optimizer=dict(state={}, param_groups=[dict(lr=1e-3, params=[0])]))
    torch.save(ckpt, tmp_path / 'epoch_3.pt')
    with warnings.catch_warnings():
        warnings.simplefilter('error', ActivationWarning)
        sd, meta = convert_checkpoint(str(tmp_path / 'epoch_3.pt'))
    assert meta['act_cfg'] == dict(type='QuickGELU') and meta['act_certain']
    assert not any(k.startswith('module.') for k in sd)
    build_from_meta(meta, sd)

    ckpt['name'] = '2024_01_01-model_ViT-B-32-lr_0.001'
    torch.save(ckpt, tmp_path / 'epoch_3.pt')
    with pytest.warns(ActivationWarning, match='force-quick-gelu'):
        _, meta = convert_checkpoint(str(tmp_path / 'epoch_3.pt'))
    assert meta['act_cfg'] == dict(type='GELU') and not meta['act_certain']


def test_open_clip_ambiguous_activation_warns(tmp_path, openclip_sd):
    torch.save(openclip_sd, tmp_path / 'oc.bin')
    with pytest.warns(ActivationWarning, match='LAION') as record:
        _, meta = convert_checkpoint(str(tmp_path / 'oc.bin'))
    assert 'QuickGELU' in str(record[0].message)
    assert meta['act_cfg'] == dict(type='QuickGELU')
    assert meta['act_certain'] is False
    with warnings.catch_warnings():
        warnings.simplefilter('error', ActivationWarning)
        _, meta = convert_checkpoint(str(tmp_path / 'oc.bin'), act='gelu')
    assert meta['act_cfg'] == dict(type='GELU') and meta['act_certain']
    assert meta['model_cfg']['text_encoder']['act_cfg'] == dict(type='GELU')


def test_open_clip_hub_folder(tmp_path, openclip_sd):
    """open_clip's hub export: open_clip_model.safetensors next to
    open_clip_config.json, whose quick_gelu flag and head_width are used."""
    from safetensors.torch import save_file
    save_file(openclip_sd, str(tmp_path / 'open_clip_model.safetensors'))
    config = dict(
        model_cfg=dict(
            embed_dim=EMBED,
            vision_cfg=dict(
                width=W,
                layers=2,
                head_width=32,
                patch_size=PATCH,
                image_size=IMG),
            text_cfg=dict(width=W, heads=1, layers=2)))
    (tmp_path / 'open_clip_config.json').write_text(json.dumps(config))
    with warnings.catch_warnings():
        warnings.simplefilter('error', ActivationWarning)
        sd, meta = convert_checkpoint(str(tmp_path))
    assert meta['source_format'] == 'open_clip'
    assert meta['source_file'] == 'open_clip_model.safetensors'
    assert meta['act_cfg'] == dict(type='GELU') and meta['act_certain']
    assert meta['arch']['vision']['num_heads'] == 2  # width 64 / head 32
    build_from_meta(meta, sd)


def test_torchscript_archive(tmp_path, openclip_model):
    """An fp16 TorchScript archive with OpenAI's names (and its
    input_resolution/context_length/vocab_size scalars)."""
    path = str(tmp_path / 'ViT-tiny.pt')
    stored = save_openai_torchscript(openclip_model, path, img_size=IMG)
    assert {'input_resolution', 'vocab_size'} <= set(stored)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # certain activation, consistent sizes
        sd, meta = convert_checkpoint(path)
    assert meta['source_format'] == 'torchscript'
    assert meta['act_cfg'] == dict(type='QuickGELU') and meta['act_certain']
    assert meta['dtype'] == 'float16'
    assert not {'input_resolution', 'context_length', 'vocab_size'} & set(sd)
    build_from_meta(meta, sd)
    with pytest.raises(ConversionError, match='not a TorchScript archive'):
        torch.save(stored, tmp_path / 'plain.pt')
        convert_checkpoint(str(tmp_path / 'plain.pt'), fmt='torchscript')


# ---------------------------------------------------------------- transformers
@pytest.mark.parametrize('act', ['quick_gelu', 'gelu'])
def test_hf_folder(tmp_path, act):
    hf = _hf_model(act)
    hf.save_pretrained(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter('error', ActivationWarning)
        sd, meta = convert_checkpoint(str(tmp_path))
    assert meta['source_format'] == 'hf' and meta['act_certain']
    assert meta['act_cfg'] == dict(type={
        'quick_gelu': 'QuickGELU',
        'gelu': 'GELU'
    }[act])
    assert meta['arch']['vision']['num_heads'] == 2  # from config.json
    assert meta['model_cfg']['text_encoder']['eot_token_id'] == VOCAB - 1
    model = build_from_meta(meta, sd)
    images, ids = _images_and_ids()
    with torch.no_grad():
        ref_img = hf.get_image_features(pixel_values=images)
        ref_txt = hf.get_text_features(input_ids=ids)
        ref_img = getattr(ref_img, 'pooler_output', ref_img)  # 5.x: output
        ref_txt = getattr(ref_txt, 'pooler_output', ref_txt)
        torch.testing.assert_close(
            model.encode_image(images), ref_img, rtol=0, atol=1e-5)
        torch.testing.assert_close(
            model.encode_text(ids), ref_txt, rtol=0, atol=1e-5)


def test_hf_pytorch_model_bin(tmp_path):
    """Older transformers folders hold pytorch_model.bin (5.x always writes
    safetensors, so the file is written by hand)."""
    hf = _hf_model()
    hf.config.save_pretrained(tmp_path)
    torch.save(hf.state_dict(), tmp_path / 'pytorch_model.bin')
    sd, meta = convert_checkpoint(str(tmp_path / 'pytorch_model.bin'))
    assert meta['source_format'] == 'hf' and meta['act_certain']
    build_from_meta(meta, sd)


def test_hf_sharded(tmp_path):
    hf = _hf_model()
    hf.save_pretrained(tmp_path, max_shard_size='100KB')
    assert (tmp_path / 'model.safetensors.index.json').exists()
    sd, meta = convert_checkpoint(str(tmp_path))
    assert meta['source_format'] == 'hf'
    build_from_meta(meta, sd)


# ------------------------------------------------------------------ mmpretrain
def test_mmpretrain_classifier(tmp_path, mmpretrain_cls_sd):
    torch.save(
        dict(meta=dict(epoch=1), state_dict=mmpretrain_cls_sd),
        tmp_path / 'cls.pth')
    sd, meta = convert_checkpoint(str(tmp_path / 'cls.pth'))
    assert meta['source_format'] == 'mmpretrain_cls'
    assert meta['towers'] == ['vision']
    assert meta['model_cfg']['text_encoder'] is None
    assert meta['arch']['vision']['out_channels'] == 0  # no projection
    assert meta['act_cfg'] == dict(type='GELU')
    assert meta['layer_norm_eps']['vision'] == 1e-6
    assert meta['classifier_head'] == dict(
        type='VisionTransformerClsHead',
        num_classes=10,
        in_channels=W,
        hidden_dim=None)
    assert torch.equal(sd['head.layers.head.weight'],
                       mmpretrain_cls_sd['head.layers.head.weight'])
    assert any('Image tower only' in n for n in meta['notes'])
    build_from_meta(meta, sd)


def test_mmpretrain_plain_vit_refused(tmp_path):
    vit = build_mmpretrain(_mmpretrain_vit_cfg(pre_norm=False))
    torch.save({
        f'backbone.{k}': v
        for k, v in vit.state_dict().items()
    }, tmp_path / 'vit.pth')
    with pytest.raises(ConversionError, match='not a CLIP image tower'):
        convert_checkpoint(str(tmp_path / 'vit.pth'))


def test_mmpretrain_zero_shot_clip(tmp_path, openclip_sd):
    """mmpretrain's CLIP layout: visual.* in mmpretrain ViT names, its
    projection in visual_proj.proj, OpenAI's text tower at the top level."""
    vit = perturb_(build_mmpretrain(_mmpretrain_vit_cfg()))
    sd = {f'visual.{k}': v for k, v in vit.state_dict().items()}
    sd['visual_proj.proj'] = torch.randn(W, EMBED)
    sd.update({
        k: v
        for k, v in openclip_sd.items() if not k.startswith('visual.')
    })
    torch.save(sd, tmp_path / 'clip.pth')
    out, meta = convert_checkpoint(str(tmp_path / 'clip.pth'))
    assert meta['source_format'] == 'mmpretrain_clip'
    assert meta['act_cfg'] == dict(type='QuickGELU')
    assert torch.equal(out['backbone.class_embedding'],
                       sd['visual.cls_token'].flatten())
    assert torch.equal(out['backbone.ln_post.weight'], sd['visual.ln1.weight'])
    assert torch.equal(out['backbone.transformer.resblocks.1.ln_1.bias'],
                       sd['visual.layers.1.ln1.bias'])
    build_from_meta(meta, out)


# ------------------------------------------------------- output and mmclip
def test_output_loads_with_weights_only(tmp_path, openclip_sd):
    torch.save(openclip_sd, tmp_path / 'oc.pt')
    meta = convert_file(
        str(tmp_path / 'oc.pt'), str(tmp_path / 'o/mm.pth'), act='quick_gelu')
    ckpt = torch.load(tmp_path / 'o/mm.pth', weights_only=True)
    assert set(ckpt) == {'state_dict', 'meta'}
    assert ckpt['meta'] == meta
    assert ckpt['meta']['mmclip_version']
    build_from_meta(ckpt['meta'], ckpt['state_dict'])

    # converting an mmclip checkpoint again keeps weights and activation
    with warnings.catch_warnings():
        warnings.simplefilter('error', ActivationWarning)
        sd, meta2 = convert_checkpoint(str(tmp_path / 'o/mm.pth'))
    assert meta2['source_format'] == 'mmclip'
    assert meta2['model_cfg'] == meta['model_cfg']
    assert sd.keys() == ckpt['state_dict'].keys()
    with pytest.raises(TypeError, match='plain Python'):
        save_mmclip_checkpoint(
            str(tmp_path / 'bad.pth'), sd, dict(meta, dtype=torch.float32))


def test_check_model_cfg(tmp_path, openclip_sd):
    torch.save(openclip_sd, tmp_path / 'oc.pt')
    _, meta = _convert(tmp_path / 'oc.pt')
    assert check_model_cfg(meta['model_cfg'], meta) == []
    wrong = dict(
        vision_backbone=dict(arch='base', patch_size=PATCH, img_size=IMG),
        text_encoder=dict(meta['model_cfg']['text_encoder'], vocab_size=7))
    problems = check_model_cfg(wrong, meta)
    assert 'vision_backbone.embed_dims: config 768, checkpoint 64' in problems
    assert 'text_encoder.vocab_size: config 7, checkpoint 100' in problems


def test_default_num_heads():
    assert default_num_heads(768, 'vision')[0] == 12
    assert default_num_heads(1280, 'vision')[0] == 16  # ViT-H: head width 80
    assert default_num_heads(1280, 'text')[0] == 20  # bigG text: 64
    with pytest.raises(ConversionError, match='--vision-heads'):
        default_num_heads(100, 'vision')


# ---------------------------------------------------------------- failures
def test_missing_file():
    with pytest.raises(FileNotFoundError, match='no/such/ckpt.pth'):
        convert_checkpoint('no/such/ckpt.pth')


def test_unknown_layout(tmp_path):
    torch.save(
        {
            'encoder.weight': torch.zeros(2),
            'decoder.bias': torch.zeros(2)
        }, tmp_path / 'x.pth')
    with pytest.raises(UnknownLayoutError) as err:
        convert_checkpoint(str(tmp_path / 'x.pth'))
    message = str(err.value)
    assert 'encoder.weight' in message and 'decoder.bias' in message
    for name in ('torchscript', 'open_clip', 'hf', 'mmpretrain_cls',
                 'mmpretrain_clip'):
        assert f'- {name}:' in message


def test_unsupported_extra_weights_refused(tmp_path, openclip_sd):
    """Weights mmclip has no place for must stop the conversion."""
    torch.save(
        dict(openclip_sd, logit_bias=torch.zeros(())),
        tmp_path / 'siglip_like.pt')
    with pytest.raises(ConversionError, match='logit_bias'):
        _convert(tmp_path / 'siglip_like.pt')
    truncated = {
        k: v
        for k, v in openclip_sd.items()
        if k != 'transformer.resblocks.1.ln_2.bias'
    }
    torch.save(truncated, tmp_path / 'truncated.pt')
    with pytest.raises(ConversionError, match='resblocks.1.ln_2.bias'):
        _convert(tmp_path / 'truncated.pt')


def test_a_clip_image_tower_without_its_final_norm_is_truncated(
        tmp_path, openclip_sd):
    """Only transformers' classifier layout has no final LayerNorm; a CLIP
    without one is refused, not converted into another model."""
    torch.save({k: v for k, v in openclip_sd.items()
                if not k.startswith('visual.ln_post.')},
               tmp_path / 'no_ln_post.pt')
    with pytest.raises(ConversionError, match='no final LayerNorm.*'
                       'truncated'):
        _convert(tmp_path / 'no_ln_post.pt')


def test_outputs_are_written_all_or_nothing(tmp_path, openclip_sd):
    """An error while writing leaves the previous outputs as they were and
    no partial file; success replaces them."""
    from mmclip.converters.common import staged_files
    ckpt, config = tmp_path / 'out.pth', tmp_path / 'out.py'
    ckpt.write_text('previous')
    with pytest.raises(OSError):
        with staged_files(str(ckpt), str(config)) as (temp_ckpt,
                                                      temp_config):
            with open(temp_ckpt, 'w') as f:
                f.write('half')
            raise OSError('disk full')
    assert ckpt.read_text() == 'previous'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['out.pth']
    torch.save(openclip_sd, tmp_path / 'oc.pt')
    convert_file(str(tmp_path / 'oc.pt'), str(ckpt), act='gelu')
    assert torch.load(ckpt, weights_only=True)['meta']['source_format'] == \
        'open_clip'
    assert sorted(p.name for p in tmp_path.iterdir()) == ['oc.pt',
                                                          'out.pth']


def test_training_checkpoint_converts_without_running_its_objects(
        tmp_path, openclip_sd):
    # open_clip's training checkpoints pickle argparse args: the converter
    # takes the weights and never runs what the file names.
    marker = tmp_path / 'pwned'
    torch.save(dict(state_dict=openclip_sd, args=_Args(),
                    payload=WritesAFileWhenUnpickled(str(marker))),
               tmp_path / 'u.pt')
    torch.save(openclip_sd, tmp_path / 'plain.pt')
    ours, _ = convert_checkpoint(str(tmp_path / 'u.pt'))
    plain, _ = convert_checkpoint(str(tmp_path / 'plain.pt'))
    assert not marker.exists()
    assert ours.keys() == plain.keys()
    for k, v in plain.items():
        assert torch.equal(ours[k], v), k


def test_forced_format_mismatch(tmp_path, openclip_sd):
    torch.save(openclip_sd, tmp_path / 'oc.pt')
    with pytest.raises(ConversionError, match="format 'hf' was requested"):
        convert_checkpoint(str(tmp_path / 'oc.pt'), fmt='hf')


class WritesAFileWhenUnpickled:
    """A pickle payload: unpickling it calls ``open(path, 'w')``."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, 'w'))


class _Args:
    """Stands for an argparse.Namespace pickled into a training checkpoint."""


# ---------------------------------------------------------------------- CLI
def test_cli_subprocess(tmp_path, openclip_sd):
    torch.save(openclip_sd, tmp_path / 'oc.pt')
    dst = tmp_path / 'mm.pth'
    result = subprocess.run([
        sys.executable,
        str(CLI),
        str(tmp_path / 'oc.pt'),
        str(dst), '--act', 'gelu'
    ],
                            capture_output=True,
                            text=True,
                            cwd=REPO,
                            env=dict(os.environ, PYTHONWARNINGS='ignore'))
    assert result.returncode == 0, result.stderr
    assert 'Saved' in result.stdout
    meta = torch.load(dst, weights_only=True)['meta']
    assert meta['act_cfg'] == dict(type='GELU')


def test_cli_main_errors(tmp_path, capsys):
    sys.path.insert(0, str(CLI.parent))
    try:
        from clip_to_mmclip import main
    finally:
        sys.path.remove(str(CLI.parent))
    assert main([str(tmp_path / 'missing.pt'), str(tmp_path / 'o.pth')]) == 1
    assert 'missing.pt' in capsys.readouterr().err
    torch.save({'foo': torch.zeros(1)}, tmp_path / 'foo.pt')
    assert main([str(tmp_path / 'foo.pt'), str(tmp_path / 'foo.pt')]) == 1
    assert 'source checkpoint' in capsys.readouterr().err
