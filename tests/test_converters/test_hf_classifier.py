"""transformers' ``CLIPForImageClassification`` <-> mmclip, both ways, with
the command-line tools: a random classifier saved by ``save_pretrained`` is
converted (checkpoint + config), built with ``get_model`` and must give
transformers' logits (max abs diff <= 1e-5, CPU, fp32); exported back, the
folder loads with ``from_pretrained`` (every weight found) and gives them
again. A tiny tower (GELU, LayerNorm eps 1e-6, a ViT-style image processor)
and a real ViT-B/32-size one (QuickGELU, CLIP's default processor), marked
slow. Then the refusals: a classifier where a CLIP is expected and the
reverse, each one ``error:`` line, nothing written."""
import json
import shutil

import pytest
import torch

from conftest import REPO_ROOT, load_tool
from converter_helpers import perturb_

LOGIT_ATOL = 1e-5
CLASSES = ['tabby cat', 'dog', "o'clock", 'bird', 'zebra', 'fish']
TINY = dict(hidden_size=64, intermediate_size=160, num_hidden_layers=2,
            num_attention_heads=4, image_size=32, patch_size=8,
            hidden_act='gelu', layer_norm_eps=1e-6)
B32 = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
           num_attention_heads=12, image_size=224, patch_size=32,
           hidden_act='quick_gelu')
# A ViT-style processor: squash to a square, bilinear, mean/std 0.5.
VIT_PROCESSOR = dict(
    image_processor_type='ViTImageProcessor', do_resize=True,
    size=dict(height=32, width=32), resample=2, do_rescale=True,
    rescale_factor=1 / 255, do_normalize=True, image_mean=[0.5] * 3,
    image_std=[0.5] * 3)


def hf_classifier(vision: dict, classes=CLASSES, seed: int = 0):
    """A transformers CLIPForImageClassification, every weight perturbed."""
    from transformers import CLIPConfig, CLIPForImageClassification
    config = CLIPConfig(
        vision_config=vision,
        text_config=dict(hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=2),
        id2label=dict(enumerate(classes)))
    return perturb_(CLIPForImageClassification(config), seed=seed).eval()


def hf_clip(vision: dict = TINY):
    """A transformers CLIPModel with the same image tower."""
    from transformers import CLIPConfig, CLIPModel
    config = CLIPConfig(
        vision_config=vision,
        text_config=dict(hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=2),
        projection_dim=16)
    return perturb_(CLIPModel(config)).eval()


@pytest.fixture(scope='module')
def convert_main():
    return load_tool('model_converters/clip_to_mmclip.py').main


@pytest.fixture(scope='module')
def export_main():
    return load_tool('model_converters/mmclip_to_hf.py').main


def save(hf, folder, processor=None):
    hf.save_pretrained(folder)
    if processor is not None:
        with open(folder / 'preprocessor_config.json', 'w') as f:
            json.dump(processor, f)
    return folder


def round_trip(tmp_path, hf, convert_main, export_main, processor=None):
    """Convert ``hf`` with the CLI, build it with get_model, export it back
    with the CLI; returns the mmclip model, the re-loaded transformers model
    and its loading info."""
    from transformers import CLIPForImageClassification

    from mmclip.apis import get_model
    src = save(hf, tmp_path / 'hf', processor)
    ckpt, config = tmp_path / 'mm' / 'cls.pth', tmp_path / 'mm' / 'cls.py'
    assert convert_main([str(src), str(ckpt)]) == 0
    assert config.is_file()
    model = get_model(str(config), pretrained=str(ckpt))
    assert export_main([str(config), str(ckpt), str(tmp_path / 'back')]) == 0
    back, info = CLIPForImageClassification.from_pretrained(
        tmp_path / 'back', output_loading_info=True)
    return model, back.eval(), info


@torch.no_grad()
def check_logits(hf, model, back, images, label):
    expected = hf(pixel_values=images).logits
    diffs = dict(
        converted=(model(images, mode='tensor') - expected).abs().max(),
        exported=(back(pixel_values=images).logits - expected).abs().max())
    print(f'\n{label}: max abs logit diff {diffs}')
    assert max(diffs.values()) <= LOGIT_ATOL, diffs


def check_weights_and_names(hf, back, info):
    """Every weight comes back bit for bit but post_layernorm, which the
    logits never use (a fresh LayerNorm); class names survive."""
    assert not any(info[k] for k in ('missing_keys', 'unexpected_keys',
                                     'mismatched_keys')), info
    theirs, ours = hf.state_dict(), back.state_dict()
    assert set(theirs) == set(ours)
    changed = sorted(k for k in theirs if not torch.equal(theirs[k], ours[k]))
    assert changed == ['vision_model.post_layernorm.bias',
                       'vision_model.post_layernorm.weight']
    assert back.config.id2label == hf.config.id2label
    assert back.config.vision_config.hidden_act == \
        hf.config.vision_config.hidden_act
    assert back.config.vision_config.layer_norm_eps == \
        hf.config.vision_config.layer_norm_eps


def test_tiny_both_ways(tmp_path, convert_main, export_main):
    from mmclip.apis import inference_model
    hf = hf_classifier(TINY)
    model, back, info = round_trip(tmp_path, hf, convert_main, export_main,
                                   VIT_PROCESSOR)
    check_logits(hf, model, back, torch.randn(3, 3, 32, 32), 'tiny')
    check_weights_and_names(hf, back, info)
    # the image processor is the config's preprocessing, and back
    cfg = model.cfg
    assert cfg.model.data_preprocessor.mean == [127.5] * 3
    assert [step['type'] for step in cfg.test_pipeline] == [
        'LoadImageFromFile', 'Resize', 'PackInputs']
    with open(tmp_path / 'back' / 'preprocessor_config.json') as f:
        processor = json.load(f)
    for key in ('size', 'resample', 'image_mean', 'image_std'):
        assert processor[key] == VIT_PROCESSOR[key], key
    assert processor['do_center_crop'] is False
    # class names reach inference_model
    result = inference_model(model, torch.randint(
        0, 256, (40, 48, 3), dtype=torch.uint8).numpy())
    assert result['pred_class'] == CLASSES[result['pred_label']]


@pytest.mark.slow
def test_b32_both_ways(tmp_path, convert_main, export_main):
    """ViT-B/32 size: about 15 s here (three 350 MB files written)."""
    hf = hf_classifier(B32, seed=1)
    try:
        model, back, info = round_trip(tmp_path, hf, convert_main,
                                       export_main)
        check_logits(hf, model, back,
                     torch.randn(2, 3, 224, 224), 'ViT-B/32')
        check_weights_and_names(hf, back, info)
        with open(tmp_path / 'back' / 'preprocessor_config.json') as f:
            processor = json.load(f)
        assert processor['size'] == dict(shortest_edge=224)
        assert processor['crop_size'] == dict(height=224, width=224)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)


# ------------------------------------------------------------- refusals
def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: '), err
    return err[0]


def test_converter_asked_for_the_other_model(tmp_path, convert_main,
                                             capsys):
    classifier = save(hf_classifier(TINY), tmp_path / 'cls')
    clip = save(hf_clip(), tmp_path / 'clip')
    dst = tmp_path / 'out' / 'x.pth'
    capsys.readouterr()  # transformers' progress bars
    assert convert_main([str(classifier), str(dst), '--format', 'hf']) == 1
    assert '--format hf_cls' in one_error_line(capsys)
    assert convert_main([str(clip), str(dst), '--format', 'hf_cls']) == 1
    assert "lacks its key(s) ['classifier.weight']" in one_error_line(
        capsys)
    assert not (tmp_path / 'out').exists()


def test_export_refuses_clip_checkpoints_and_other_layouts(
        tmp_path, convert_main, export_main, capsys):
    """A CLIP checkpoint with a classifier config, a CLIP config, and an
    mmclip fine-tune classifier (CLIPClsHead): one line each, no folder."""
    from mmclip.apis import get_model
    from mmclip.models.multimodal.clip_model import CLIPModel
    save(hf_classifier(TINY), tmp_path / 'hf')
    assert convert_main([str(tmp_path / 'hf'), str(tmp_path / 'cls.pth')]) \
        == 0
    save(hf_clip(), tmp_path / 'hf_clip')
    assert convert_main(
        [str(tmp_path / 'hf_clip'), str(tmp_path / 'clip.pth')]) == 0
    capsys.readouterr()
    out = tmp_path / 'exported'

    assert export_main([str(tmp_path / 'cls.py'), str(tmp_path / 'clip.pth'),
                        str(out)]) == 1
    line = one_error_line(capsys)
    assert 'is a CLIP checkpoint' in line and 'no weights for the head.*' \
        in line
    # a CLIP config (a model-zoo one, random weights saved for it)
    clip_config = (f'{REPO_ROOT}/configs/clip/'
                   'clip_vit-tiny-p8_zeroshot-cls_digits-32px.py')
    clip = get_model(clip_config)
    assert isinstance(clip, CLIPModel)
    torch.save(dict(state_dict=clip.state_dict(), meta={}),
               tmp_path / 'digits.pth')
    assert export_main([clip_config, str(tmp_path / 'digits.pth'),
                        str(out)]) == 1
    assert 'it builds a CLIPModel, not an ImageClassifier' in \
        one_error_line(capsys)
    ft_config = clip_config.replace('zeroshot-cls', 'ft-1xb64-10e')
    tuned = get_model(ft_config)
    torch.save(dict(state_dict=tuned.state_dict(), meta={}),
               tmp_path / 'ft.pth')
    assert export_main([ft_config, str(tmp_path / 'ft.pth'), str(out)]) == 1
    line = one_error_line(capsys)
    assert 'its head is a CLIPClsHead' in line
    assert "Only classifiers of its layout export, ImageClassifier(" in line
    assert not out.exists()


def test_class_names_must_match_the_classifier(tmp_path, convert_main,
                                               capsys):
    src = save(hf_classifier(TINY), tmp_path / 'hf')
    with open(src / 'config.json') as f:
        config = json.load(f)
    config['id2label'] = {str(i): str(i) for i in range(5)}  # 6 outputs
    with open(src / 'config.json', 'w') as f:
        json.dump(config, f)
    capsys.readouterr()
    assert convert_main([str(src), str(tmp_path / 'x.pth')]) == 1
    assert 'names 5 classes but its classifier has 6 outputs' in \
        one_error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['hf']


# ---------------------------------------------------------- preprocessing
@pytest.mark.parametrize('processor,pipeline,mean,size', [
    # no preprocessor_config.json: CLIPImageProcessor's defaults (OpenAI)
    (None, [('ResizeEdge', 40), ('CenterCrop', (40, 40))],
     0.48145466 * 255, dict(shortest_edge=40)),
    # an older CLIP processor: an int size is the shortest side
    (dict(image_processor_type='CLIPImageProcessor', size=48, crop_size=40,
          do_center_crop=True), [('ResizeEdge', 48),
                                 ('CenterCrop', (40, 40))],
     0.48145466 * 255, dict(shortest_edge=48)),
    # a ViT processor: an int size is a square, no crop, mean 0.5
    (dict(VIT_PROCESSOR, size=40), [('Resize', (40, 40))], 127.5,
     dict(height=40, width=40)),
], ids=['defaults', 'clip-int-size', 'vit'])
def test_image_processors_both_ways(processor, pipeline, mean, size):
    """The image processor becomes the config's pipeline and normalisation,
    and the config gives the image processor back."""
    from mmengine.config import Config

    from mmclip.converters import (classifier_config, hf_image_processor,
                                   hf_preprocess)
    from mmclip.converters.classifier import CLIP_PROCESSOR_DEFAULTS
    preprocess = hf_preprocess(processor, 40)
    cfg = Config(classifier_config(dict(
        preprocess=preprocess,
        classifier_head=dict(type='LinearClsHead', num_classes=3,
                             in_channels=64),
        model_cfg=dict(vision_backbone=dict(type='CLIPVisionTransformer')))))
    steps = cfg.test_pipeline[1:-1]
    assert [(s['type'], s.get('scale', s.get('crop_size')))
            for s in steps] == pipeline
    assert cfg.model.data_preprocessor.mean[0] == pytest.approx(mean)
    assert cfg.test_evaluator.topk == (1, )  # 3 classes: no top-5

    back = hf_image_processor(cfg)
    given = dict(CLIP_PROCESSOR_DEFAULTS, **(processor or {}))
    assert back['image_mean'] == pytest.approx(given['image_mean'])
    assert back['image_std'] == pytest.approx(given['image_std'])
    assert back['resample'] == given['resample']
    assert back['size'] == size
    crops = [s['crop_size'] for s in steps if s['type'] == 'CenterCrop']
    assert back['do_center_crop'] == bool(crops)


def test_unsupported_preprocessing():
    from mmengine.config import Config

    from mmclip.converters import ConversionError, hf_image_processor
    from mmclip.converters.classifier import hf_preprocess
    with pytest.raises(ConversionError,
                       match="resample=5 .*Move the file away to convert "
                       "with OpenAI's preprocessing"):
        hf_preprocess(dict(resample=5), 224)
    # a random crop has no image processor equivalent, and a config without
    # a test pipeline says nothing: no processor file
    cfg = Config(dict(
        model=dict(data_preprocessor=dict(mean=[0] * 3, std=[1] * 3,
                                          to_rgb=True)),
        test_pipeline=[dict(type='RandomResizedCrop', scale=224)]))
    assert hf_image_processor(cfg) is None
    cfg.pop('test_pipeline')
    assert hf_image_processor(cfg) is None
