"""The model index: configs <-> metafile, mmclip's list/get_model, and
mmclip's models through mmpretrain's list_models / get_model /
inference_model."""
import glob
import os.path as osp
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config

import mmclip  # noqa: F401 (registers the index with mmpretrain)
from mmclip.apis import get_model, list_models, preprocess_images
from mmclip.model_index import (model_index, original_weights,
                                register_mmpretrain_models)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = {
    osp.splitext(osp.basename(p))[0]: p
    for p in glob.glob(osp.join(REPO, 'configs', 'clip', '*.py'))
}
DIGITS = 'clip_vit-tiny-p8_zeroshot-cls_digits-32px'
B32 = 'clip_vit-base-p32_zeroshot-cls_in1k'
OPENAI_URL = re.compile(r'https://openaipublic\.azureedge\.net/clip/models/'
                        r'[0-9a-f]{64}/[\w-]+\.pt')


def test_index_has_exactly_the_configs():
    index = model_index()
    assert sorted(index) == sorted(CONFIGS), (
        'configs/clip/metafile.yml must list every config in configs/clip, '
        'named after its file, and nothing else.')
    for name, info in index.items():
        assert info.config == osp.abspath(CONFIGS[name])


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_entry_matches_its_config(name):
    info = model_index()[name]
    cfg = Config.fromfile(info.config)
    # Builds inside mmpretrain's default scope too (mmpretrain.get_model).
    assert cfg.model.get('_scope_') == 'mmclip'
    with torch.device('meta'):
        model = get_model(cfg, device='meta')
    assert info.metadata.parameters == sum(
        p.numel() for p in model.parameters())
    tasks = {r.task for r in info.results or []}
    head = cfg.model.get('predict_head') or {}
    if head.get('type') == 'ImageTextRetrievalHead':
        assert tasks == {'Image-To-Text Retrieval', 'Text-To-Image Retrieval'}
    elif 'zeroshot-cls' in name and 'in1k-384px' not in name:
        assert tasks == {'Image Classification'}
    else:  # training (some validate zero-shot), or the 384px B/16 that
        # OpenAI never published
        assert tasks == set()
    assert info.weights is None  # mmclip publishes no converted weights


def test_original_weights_are_openai_urls():
    index = model_index()
    for name, info in index.items():
        url = original_weights(info)
        if 'WIT-400M (OpenAI)' in info.metadata.training_data:
            assert OPENAI_URL.fullmatch(url), (name, url)
            assert info.data['Converted From']['Code'].startswith('https://')
        else:  # trained from scratch by mmclip
            assert url is None, name
    assert 'ViT-L-14-336px.pt' in original_weights(
        index['clip_vit-large-p14_zeroshot-cls_in1k-336px'])


def test_published_numbers():
    top1 = {
        name: info.results[0].metrics['Top 1 Accuracy']
        for name, info in model_index().items()
        if info.results and info.results[0].dataset == 'ImageNet-1k'
    }
    assert top1 == {
        'clip_vit-base-p32_zeroshot-cls_in1k': 63.32,
        'clip_vit-base-p16_zeroshot-cls_in1k': 68.34,
        'clip_vit-large-p14_zeroshot-cls_in1k': 75.54,
        'clip_vit-large-p14_zeroshot-cls_in1k-336px': 76.56,
    }


def test_list_models():
    assert list_models() == sorted(CONFIGS)
    assert list_models('clip_vit-large') == [
        'clip_vit-large-p14_zeroshot-cls_in1k',
        'clip_vit-large-p14_zeroshot-cls_in1k-336px'
    ]
    assert list_models('*zeroshot-cls_in1k', exclude_patterns=[
        'clip_vit-large', '*384px']) == [
            'clip_vit-base-p16_zeroshot-cls_in1k', B32
        ]
    assert list_models('clip_vit-base', task='Text-To-Image Retrieval') == [
        'clip_vit-base-p16_retrieval_flickr30k',
        'clip_vit-base-p32_retrieval_coco'
    ]
    assert set(list_models(task='Image Classification')) == {
        n for n in CONFIGS if 'zeroshot-cls' in n and '384px' not in n}
    assert set(list_models(task='null')) == {
        n for n in CONFIGS if 'zeroshot' not in n and 'retrieval' not in n
    } | {'clip_vit-base-p16_zeroshot-cls_in1k-384px'}


def test_mmpretrain_lists_ours_and_its_own(monkeypatch):
    import mmpretrain
    from mmpretrain.apis.model import ModelHub
    ours = set(CONFIGS)
    # Both orders: mmclip first (``import mmclip``, then mmpretrain's lazy
    # registration on the first list) and mmpretrain first.
    for mmclip_first in (True, False):
        monkeypatch.setattr(ModelHub, '_models_dict', {})
        monkeypatch.setattr(ModelHub, '_ModelHub__mmpretrain_registered',
                            False)
        if mmclip_first:
            register_mmpretrain_models()
        else:
            ModelHub._register_mmpretrain_models()
            theirs = set(ModelHub._models_dict)
            assert not theirs & ours  # no name clashes with mmpretrain's
            register_mmpretrain_models()
        listed = set(mmpretrain.list_models())
        assert ours <= listed and 'resnet50_8xb32_in1k' in listed
        assert set(mmpretrain.list_models('clip_vit')) >= {
            n for n in ours if n.startswith('clip_vit')}
        assert mmpretrain.list_models(
            'clip_vit-tiny', task='Image Classification') == [DIGITS]


def test_registering_twice_is_harmless():
    import mmpretrain
    from mmpretrain.apis.model import ModelHub
    mmpretrain.list_models()  # mmpretrain's own are registered too
    before = dict(ModelHub._models_dict)
    register_mmpretrain_models()
    register_mmpretrain_models()
    assert ModelHub._models_dict == before
    assert ModelHub.get(B32).name == B32


def test_a_taken_name_keeps_the_index_out_with_a_warning(monkeypatch):
    from mmpretrain.apis.model import ModelHub
    theirs = {B32: 'another package'}
    monkeypatch.setattr(ModelHub, '_models_dict', dict(theirs))
    with pytest.warns(UserWarning, match=f"models named \\['{B32}'\\]"):
        register_mmpretrain_models()
    assert ModelHub._models_dict == theirs


def test_mmpretrain_get_model_builds_a_clip_model():
    from mmpretrain import get_model as mmpretrain_get_model
    model = mmpretrain_get_model(
        B32, predict_head=dict(classnames=['cat', 'dog'],
                               templates=['a photo of a {}.'],
                               cache_dir=None))
    assert type(model).__name__ == 'CLIPModel'
    assert model.backbone.patch_size == 32 and model.embed_dims == 512
    assert model._metainfo.name == B32
    # the head's classes, not ImageNet's METAINFO from the test dataset
    assert model._dataset_meta['classes'] == ['cat', 'dog']


def test_mmpretrain_get_model_loads_local_weights(tmp_path):
    from mmpretrain import get_model as mmpretrain_get_model
    state = {k: v + 1 for k, v in get_model(DIGITS).state_dict().items()}
    torch.save({'state_dict': state, 'meta': {}}, tmp_path / 'digits.pth')
    model = mmpretrain_get_model(DIGITS,
                                 pretrained=str(tmp_path / 'digits.pth'))
    loaded = model.state_dict()
    assert loaded.keys() == state.keys()
    for key, value in state.items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0)


@pytest.fixture
def chelsea_png(tmp_path):
    from PIL import Image
    from skimage import data
    path = tmp_path / 'chelsea.png'
    Image.fromarray(data.chelsea()).save(path)
    return str(path)


def test_mmpretrain_inference_model(chelsea_png):
    from mmpretrain import get_model as mmpretrain_get_model
    from mmpretrain import inference_model
    model = mmpretrain_get_model(DIGITS, predict_head=dict(cache_dir=None))
    head = model.predict_head
    result = inference_model(model, chelsea_png)

    # Direct: preprocessing by mmclip's own path, the classifier from the
    # text tower (prompt ensemble of the CLIP paper).
    with torch.no_grad():
        image = model.encode_image(
            preprocess_images(model, [chelsea_png]), normalize=True)
        classes = torch.stack([
            F.normalize(model.encode_text(
                [t.format(c) for t in head.templates], normalize=True).mean(0),
                dim=-1) for c in head.classnames
        ])
        # the head's scale: its number, or the model's learned one
        scale = (model.logit_scale.exp() if head.scale == 'learned'
                 else torch.tensor(float(head.scale)))
        scores = (scale * image @ classes.t()).softmax(-1)
    torch.testing.assert_close(
        torch.from_numpy(result['pred_scores']), scores[0], atol=1e-4,
        rtol=0)
    label = int(scores[0].argmax())
    assert result['pred_label'] == label
    assert result['pred_class'] == head.classnames[label]
    assert result['pred_score'] == pytest.approx(float(scores[0, label]),
                                                 abs=1e-4)


def test_our_get_model_sets_what_mmpretrain_sets():
    model = get_model(DIGITS, pretrained=False)
    assert model._config is model.cfg
    assert model._config.filename == osp.abspath(CONFIGS[DIGITS])
    assert model._metainfo.name == DIGITS
    assert model._dataset_meta['classes'] == list(
        model.predict_head.classnames)
    # A config path finds its index entry; an in-memory config has none.
    assert get_model(CONFIGS[DIGITS])._metainfo.name == DIGITS
    cfg = Config(dict(model=Config.fromfile(CONFIGS[DIGITS]).model))
    assert get_model(cfg)._metainfo is None
    from mmpretrain import inference_model
    image = np.zeros((40, 40, 3), dtype=np.uint8)
    model.predict_head.cache_dir = None
    assert inference_model(model, image)['pred_class'] in (
        model.predict_head.classnames)


def test_pretrained_true_says_where_the_weights_are():
    url = original_weights(model_index()[B32])
    with pytest.raises(ValueError) as err:
        get_model(B32, pretrained=True)
    message = str(err.value)
    assert url in message
    assert 'clip_to_mmclip.py' in message and "pretrained='OUT.pth'" in message
    with pytest.raises(ValueError, match='trains it from scratch'):
        get_model(DIGITS, pretrained=True)
    with pytest.raises(ValueError, match='list_models'):
        get_model(Config(dict(model=dict(type='CLIPModel'))), pretrained=True)


def test_readme_model_zoo_lists_every_model():
    with open(osp.join(REPO, 'README.md')) as f:
        readme = f.read()
    zoo = readme.split('## Model zoo', 1)[1].split('\n## ', 1)[0]
    rows = {
        m.group(1): line
        for line in zoo.splitlines()
        for m in [re.match(r'\| `([^`]+)` \|', line)] if m
    }
    assert sorted(rows) == sorted(CONFIGS)
    for name, info in model_index().items():
        numbers = {float(x) for x in re.findall(r'\d+\.\d+', rows[name])}
        for result in info.results or []:
            first = next(iter(result.metrics.values()))
            assert float(first) in numbers, (name, result.task)
        url = original_weights(info)
        assert url is None or url in rows[name], name
