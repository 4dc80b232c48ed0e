import copy
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmclip.apis import find_config, get_model, preprocess_images
from mmclip.registry import MODELS

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(
    glob.glob(osp.join(REPO, 'configs', 'clip', '*.py')) +
    glob.glob(osp.join(REPO, 'configs', '_base_', 'models', '*.py')))


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_every_config_builds(path):
    cfg = Config.fromfile(path)
    # Build on the meta device: the real module tree without allocating
    # ~1.7 GB of L/14 weights; B/32 is built for real in the next test.
    with torch.device('meta'):
        model = get_model(cfg, device='meta')
    # Fine-tune and linear-probe recipes build mmpretrain's classifier around
    # the CLIP image tower; every other config builds the CLIP model.
    classifier = cfg.model.type == 'ImageClassifier'
    assert type(model).__name__ == ('ImageClassifier'
                                    if classifier else 'CLIPModel')
    assert type(model.backbone).__name__ == 'CLIPVisionTransformer'
    assert model.backbone.img_size in (32, 224, 336, 384)
    if 'zeroshot' in path:
        assert cfg.default_scope == 'mmclip'
        pipeline = cfg.test_dataloader.dataset.pipeline
        resize = next(t for t in pipeline if t.type == 'ResizeEdge')
        assert resize.edge == 'short' and resize.interpolation == 'bicubic'


def test_get_model_by_name_real_b32():
    model = get_model('clip_vit-base-p32_zeroshot-cls_in1k')
    assert not model.training
    n = sum(p.numel() for p in model.parameters())
    assert round(n / 1e6, 1) == 151.3  # OpenAI ViT-B/32 has 151.28M
    images = preprocess_images(model, [torch.zeros(300, 400, 3,
                                                   dtype=torch.uint8).numpy()])
    assert images.shape == (1, 3, 224, 224)
    with torch.no_grad():
        assert model.encode_image(images).shape == (1, 512)
    assert model.cfg.filename.endswith(
        'clip_vit-base-p32_zeroshot-cls_in1k.py')


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError,
                       match='clip_vit-base-p16_zeroshot-cls_in1k'):
        find_config('clip_vit-giant-p99')


def test_cfg_options_override():
    with torch.device('meta'):
        model = get_model('clip_vit-base-p16', device='meta', cfg_options={
            'model.vision_backbone.img_size': 448})
    assert model.backbone.grid_size == (28, 28)


@pytest.fixture
def tiny_cfg(tiny_clip_cfg):
    return Config(dict(model=tiny_clip_cfg, default_scope='mmclip'))


def test_pretrained_round_trip(tmp_path, tiny_cfg):
    src = get_model(tiny_cfg)
    torch.save({'state_dict': src.state_dict(), 'meta': {'note': 'x'}},
               tmp_path / 'w.pth')
    dst = get_model(tiny_cfg, pretrained=str(tmp_path / 'w.pth'))
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(src.encode_image(x), dst.encode_image(x))
        torch.testing.assert_close(
            src.encode_text(['hi there']), dst.encode_text(['hi there']))


def test_smaller_grid_checkpoint_loads_into_larger_model(tmp_path, tiny_cfg):
    torch.save({'state_dict': get_model(tiny_cfg).state_dict()},
               tmp_path / 'w32.pth')
    big = get_model(tiny_cfg, pretrained=str(tmp_path / 'w32.pth'),
                    cfg_options={'model.vision_backbone.img_size': 64})
    assert big.backbone.positional_embedding.shape[0] == 1 + 8 * 8
    assert big.encode_image(torch.randn(1, 3, 64, 64)).shape == (1, 32)


def test_mismatched_checkpoint_names_keys_and_fix(tmp_path, tiny_cfg):
    other = copy.deepcopy(tiny_cfg)
    other.model.vision_backbone.patch_size = 16
    meta = {'model_cfg': {k: other.model[k].to_dict()
                          for k in ('vision_backbone', 'text_encoder')}}
    torch.save({'state_dict': get_model(other).state_dict(), 'meta': meta},
               tmp_path / 'p16.pth')
    with pytest.raises(ValueError,
                       match=r'backbone\.conv1\.weight: checkpoint '
                       r'\(64, 3, 16, 16\) vs model \(64, 3, 8, 8\).*'
                       r'vision_backbone\.patch_size: config 8, checkpoint 16'
                       '.*Use the config that matches'):
        get_model(tiny_cfg, pretrained=str(tmp_path / 'p16.pth'))
    sd = get_model(tiny_cfg).state_dict()
    image_only = {k: v for k, v in sd.items() if k.startswith('backbone.')}
    torch.save(image_only, tmp_path / 'image_only.pth')
    with pytest.raises(ValueError, match='missing: .*all of text_encoder'):
        get_model(tiny_cfg, pretrained=str(tmp_path / 'image_only.pth'))


@pytest.mark.parametrize('prefix,what', [('visual.', 'open_clip'),
                                         ('vision_model.', 'transformers')])
def test_unconverted_checkpoint_points_to_converter(tmp_path, tiny_cfg,
                                                    prefix, what):
    torch.save({prefix + 'conv1.weight': torch.zeros(1)}, tmp_path / 'raw.pt')
    with pytest.raises(ValueError, match=f'{what}.*clip_to_mmclip.py'):
        get_model(tiny_cfg, pretrained=str(tmp_path / 'raw.pt'))


def test_init_cfg_pretrained_reads_weights_without_executing(
        tmp_path, tiny_cfg):
    """mmengine's own loading path (init_cfg / load_from): outside an mmclip
    run a non-plain file is refused as torch refuses it; in an mmclip run
    its tensors are read, and nothing it names runs either way."""
    import pickle

    from mmclip.utils import mmclip_checkpoint_loading
    marker = tmp_path / 'pwned'

    class Payload:

        def __reduce__(self):
            return (open, (str(marker), 'w'))

    weights = MODELS.build(tiny_cfg.model).backbone.state_dict()
    torch.save({'state_dict': weights, 'x': Payload()}, tmp_path / 'bad.pth')
    cfg = copy.deepcopy(tiny_cfg)
    cfg.model.vision_backbone.init_cfg = dict(
        type='Pretrained', checkpoint=str(tmp_path / 'bad.pth'))
    model = MODELS.build(cfg.model)
    with pytest.raises(pickle.UnpicklingError):
        model.init_weights()
    with mmclip_checkpoint_loading():
        model.init_weights()
    assert not marker.exists()
    for name, value in model.backbone.state_dict().items():
        assert torch.equal(value, weights[name]), name


def test_preprocess_decodes_odd_modes_and_names_unreadable_files(tmp_path,
                                                                 tiny_cfg):
    from PIL import Image
    model = get_model(tiny_cfg)
    Image.new('CMYK', (40, 30), (0, 255, 0, 0)).save(tmp_path / 'cmyk.jpg')
    rgba = Image.new('RGBA', (30, 30), (255, 0, 0, 0))  # fully transparent
    images = preprocess_images(model, [str(tmp_path / 'cmyk.jpg'), rgba])
    assert images.shape == (2, 3, 32, 32)
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073])[:, None, None]
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711])[:, None, None]
    pixels = images * std + mean  # back to 0..1 RGB
    # CMYK magenta -> RGB (1, 0, 1); transparent -> white background
    torch.testing.assert_close(pixels[0, :, 16, 16], torch.tensor(
        [1., 0., 1.]), atol=0.03, rtol=0)
    torch.testing.assert_close(pixels[1, :, 16, 16], torch.ones(3),
                               atol=0.01, rtol=0)
    (tmp_path / 'broken.jpg').write_bytes(b'not an image')
    with pytest.raises(ValueError, match='broken.jpg.*readable image'):
        preprocess_images(model, [str(tmp_path / 'broken.jpg')])
