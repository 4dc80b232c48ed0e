"""ONNX export (mmclip.deployment.export_onnx and
tools/deployment/pytorch2onnx.py) and the torch-free ONNX Runtime scorer
(mmclip.apis.OnnxCLIP)."""
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

from conftest import REPO_ROOT, load_tool
from mmclip.apis import OnnxCLIP, get_model, inference_model, preprocess_images
from mmclip.deployment import META_FILE, export_onnx, read_export_meta

# Exports ViT-B/32 at its real widths (about half a minute in all).
pytestmark = pytest.mark.slow
DIGITS_CFG = osp.join(REPO_ROOT, 'configs', 'clip',
                      'clip_vit-tiny-p8_zeroshot-cls_digits-32px.py')
# The real ViT-B/32 widths; its evaluation pipeline is the ImageNet base's
# (224px, bicubic short side, centre crop) and its head names 1000 classes.
B32_CFG = osp.join(REPO_ROOT, 'configs', 'clip',
                   'clip_vit-base-p32_zeroshot-cls_in1k.py')
NO_CACHE = {'model.predict_head.cache_dir': None}  # tests never write ~/.cache
TEXTS = ['a cat', 'an astronaut', 'a cup of coffee on a wooden table',
         'a rocket on the launch pad at night, seen from far away']
ATOL = 1e-4


@pytest.fixture(scope='module')
def digits_export(tmp_path_factory):
    """``(model, export_dir, sidecar)``: the digits zero-shot CLIP (random
    weights saved as a checkpoint) exported by the command-line tool,
    which also checks the files against PyTorch."""
    root = tmp_path_factory.mktemp('digits_onnx')
    torch.manual_seed(0)
    model = get_model(DIGITS_CFG)
    # Not the initial temperature: the export must carry the learned one.
    model.logit_scale.data.fill_(2.5)
    checkpoint = str(root / 'digits.pth')
    torch.save({'state_dict': model.state_dict()}, checkpoint)
    out = str(root / 'export')
    tool = load_tool('deployment/pytorch2onnx.py')
    meta = tool.run(tool.parse_args([DIGITS_CFG, checkpoint, '--out', out]))
    model = get_model(DIGITS_CFG, pretrained=checkpoint,
                      cfg_options=NO_CACHE)
    return model, out, meta


@pytest.fixture(scope='module')
def b32_export(tmp_path_factory):
    """``(model, export_dir)``: ViT-B/32, random weights, traced with a
    batch of 2 by :func:`export_onnx`."""
    torch.manual_seed(0)
    model = get_model(B32_CFG, cfg_options=NO_CACHE)
    out = str(tmp_path_factory.mktemp('b32_onnx'))
    export_onnx(model, out, verify=False)
    return model, out


@pytest.fixture(scope='module')
def photo_files(tmp_path_factory):
    """scikit-image photos as files: RGB of three aspect ratios, grey, and
    an RGBA PNG with transparency."""
    root = tmp_path_factory.mktemp('photos')
    paths = []
    for name, ext in (('chelsea', 'jpg'), ('astronaut', 'png'),
                      ('coffee', 'jpg'), ('camera', 'png'), ('logo', 'png')):
        paths.append(str(root / f'{name}.{ext}'))
        Image.fromarray(getattr(skdata, name)()).save(paths[-1])
    return paths


def _max_diff(a, b) -> float:
    return float(np.abs(np.asarray(a) - np.asarray(b)).max())


@pytest.mark.parametrize('which', ['digits', 'b32'])
def test_embeddings_equal_pytorch(which, request):
    """Image and text embeddings of ONNX Runtime equal PyTorch's for batch
    sizes the export was not traced with and texts of several lengths,
    whether the ids are cut after the last end-of-text token or padded to
    the context length."""
    model, out = request.getfixturevalue(f'{which}_export')[:2]
    runtime = OnnxCLIP(out)
    size = model.backbone.img_size
    for batch in (3, 1):
        images = torch.randn(batch, 3, size, size)
        with torch.no_grad():
            expected = model.encode_image(images).numpy()
        assert _max_diff(runtime.encode_image(images.numpy()),
                         expected) <= ATOL
    with torch.no_grad():
        expected = model.encode_text(TEXTS).numpy()
    padded = model.tokenizer(TEXTS).numpy()
    trimmed = runtime.tokenize(TEXTS)
    assert trimmed.shape[1] < padded.shape[1]
    np.testing.assert_array_equal(trimmed, padded[:, :trimmed.shape[1]])
    for ids in (trimmed, padded, trimmed[:1]):
        assert _max_diff(runtime.encode_text(ids),
                         expected[:len(ids)]) <= ATOL
    assert _max_diff(runtime.encode_text(TEXTS, normalize=True),
                     expected / np.linalg.norm(expected, axis=1,
                                               keepdims=True)) <= ATOL


def test_cli_writes_files_and_sidecar(digits_export):
    model, out, meta = digits_export
    for name in ('image_encoder.onnx', 'text_encoder.onnx', META_FILE):
        assert osp.isfile(osp.join(out, name))
    with open(osp.join(out, META_FILE)) as f:
        assert json.load(f) == meta
    assert max(meta['verified_max_abs_diff'].values()) <= ATOL
    assert meta['embed_dims'] == 64 and meta['normalized'] is False
    assert meta['image'] == dict(
        meta['image'], size=32, resize_short=32, crop_size=32,
        interpolation='bicubic')
    np.testing.assert_allclose(meta['image']['mean'],
                               [0.48145466, 0.4578275, 0.40821073])
    assert meta['text']['context_length'] == 32
    assert meta['scale'] == pytest.approx(np.exp(2.5), rel=1e-6)
    # The head's classes, templates and learned temperature.
    head = model.predict_head
    assert meta['zero_shot'] == dict(
        classes=list(head.classnames), templates=list(head.templates),
        scale=meta['scale'])
    assert meta['checkpoint'].endswith('digits.pth')
    assert isinstance(meta['exported_with']['opset'], int)


def test_cli_random_weights_warns_and_resizes(tmp_path, capsys):
    assert load_tool('deployment/pytorch2onnx.py').main(
        [DIGITS_CFG, '--out', str(tmp_path), '--img-size', '40']) == 0
    assert 'RANDOM weights' in capsys.readouterr().err
    meta = OnnxCLIP(str(tmp_path)).meta
    assert (meta['image']['size'], meta['image']['crop_size'],
            meta['image']['resize_short']) == (40, 40, 40)
    assert meta['checkpoint'] is None


def test_unsupported_pipeline_is_refused(tmp_path):
    model = get_model(DIGITS_CFG, cfg_options={
        'test_pipeline': [dict(type='Resize', scale=32)]})
    with pytest.raises(ValueError, match="ResizeEdge.*CenterCrop"):
        export_onnx(model, str(tmp_path), verify=False)


def test_preprocessing_equals_mmclip(b32_export, photo_files):
    """Pillow + numpy preprocessing equals mmclip's pipeline (mmcv
    ResizeEdge, CenterCrop, data preprocessor) on files of several aspect
    ratios, a grey image and a transparent PNG."""
    model, out = b32_export
    runtime = OnnxCLIP(out)
    expected = preprocess_images(model, photo_files).numpy()
    assert _max_diff(runtime.preprocess(photo_files), expected) <= 1e-5


# Run in a fresh interpreter where importing torch fails, as on a machine
# with only `pip install --no-deps mmclip numpy pillow ftfy regex
# onnxruntime`.
TORCH_FREE_SCORER = r'''
import json, sys
import numpy as np

class RefuseTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'torch':
            raise ModuleNotFoundError(f'No module named {name!r}', name=name)

sys.meta_path.insert(0, RefuseTorch())
export_dir, images, texts, out = sys.argv[1:]
from mmclip.apis import OnnxCLIP
results = OnnxCLIP(export_dir).predict(json.loads(images),
                                       texts=json.loads(texts))
np.save(out, np.stack([r['pred_scores'] for r in results]))
heavy = sorted({m.split('.')[0] for m in sys.modules} &
               {'torch', 'mmengine', 'mmcv', 'mmpretrain'})
assert not heavy, heavy
try:
    from mmclip.apis import get_model
except ImportError as err:
    assert 'needs PyTorch' in str(err), err
else:
    raise AssertionError('get_model imported without torch')
print('ok', [r['pred_class'] for r in results])
'''


def test_torch_free_scorer_equals_inference_model(b32_export, photo_files,
                                                  tmp_path):
    model, out = b32_export
    probs_file = str(tmp_path / 'probs.npy')
    proc = subprocess.run(
        [sys.executable, '-c', TORCH_FREE_SCORER, out,
         json.dumps(photo_files), json.dumps(TEXTS), probs_file],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = inference_model(model, photo_files, texts=TEXTS)
    expected = np.stack([r['pred_scores'] for r in results])
    assert _max_diff(np.load(probs_file), expected) <= 1e-5
    assert proc.stdout.split('\n')[0] == 'ok ' + str(
        [r['pred_class'] for r in results])


def test_predict_matches_inference_model(digits_export):
    """The exported zero-shot head (classes x templates, learned
    temperature), prompt ensembles, a given temperature, one image."""
    model, out, _ = digits_export
    runtime = OnnxCLIP(out, cache_dir=None)  # tests never write ~/.cache
    photos = [skdata.chelsea(), skdata.coins(), skdata.rocket()]
    runs = [
        {},
        dict(texts=['zero', 'one', 'seven'],
             templates=['a photo of the digit {}.', '{} written by hand']),
        dict(texts=TEXTS, scale=100.),
    ]
    for kwargs in runs:
        ours = runtime.predict(photos, **kwargs)
        theirs = inference_model(model, photos, **kwargs)
        for a, b in zip(ours, theirs):
            assert a['pred_class'] == b['pred_class']
            assert _max_diff(a['pred_scores'], b['pred_scores']) <= 1e-5
    single = runtime.predict(photos[0], texts=TEXTS)
    assert isinstance(single, dict) and single['pred_scores'].shape == (4, )
    assert runtime.classes == list(model.predict_head.classnames)


def test_zero_shot_classifier_is_built_once_per_cache(digits_export,
                                                      tmp_path, monkeypatch):
    """The exported head's classifier is written to cache_dir under the
    PyTorch head's key scheme; another OnnxCLIP on the same export reads
    it without running the text graph."""
    from mmclip.zero_shot_cache import zero_shot_cache_key
    _, out, meta = digits_export
    photo = skdata.chelsea()
    first = OnnxCLIP(out, cache_dir=str(tmp_path))
    expected = first.predict(photo)['pred_scores']
    classes, templates = (meta['zero_shot'][k]
                          for k in ('classes', 'templates'))
    key = zero_shot_cache_key(first.text_fingerprint(), classes, templates)
    assert [p.name for p in tmp_path.iterdir()] == [key + '.npy']

    second = OnnxCLIP(out, cache_dir=str(tmp_path))
    runs = []
    monkeypatch.setattr(second.text_session, 'run',
                        lambda *args: runs.append(args))
    np.testing.assert_array_equal(second.predict(photo)['pred_scores'],
                                  expected)
    assert runs == []  # the text graph did not run
    # Other templates are another classifier: built, not read.
    third = OnnxCLIP(out, cache_dir=str(tmp_path))
    third.meta = dict(meta, zero_shot=dict(meta['zero_shot'],
                                           templates=['a {}.']))
    third.predict(photo)
    assert len(list(tmp_path.glob('*.npy'))) == 2


def test_many_prompts_show_progress(digits_export, capsys):
    runtime = OnnxCLIP(digits_export[1], cache_dir=None)
    runtime.text_classifier(['zero', 'one'], ['{}', 'a {}'], batch_size=2)
    assert 'templates' in capsys.readouterr().err  # 2 runs: a bar
    runtime.text_classifier(['zero', 'one'], ['{}', 'a {}'])
    assert capsys.readouterr().err == ''  # one run: no bar


def test_errors_name_the_fix(b32_export, tmp_path):
    with pytest.raises(FileNotFoundError, match='pytorch2onnx.py'):
        OnnxCLIP(str(tmp_path))
    runtime = OnnxCLIP(b32_export[1])
    with pytest.raises(ValueError, match='uint8'):
        runtime.predict(np.zeros((8, 8, 3), np.float32), texts=TEXTS)
    with pytest.raises(ValueError, match='Cannot read image'):
        runtime.predict(str(tmp_path / 'missing.jpg'), texts=TEXTS)
    with pytest.raises(ValueError, match='No texts'):
        runtime.encode_text([])
    runtime.meta = dict(runtime.meta, zero_shot=None)  # as a headless model
    with pytest.raises(ValueError, match='no zero-shot head'):
        runtime.predict(np.zeros((8, 8, 3), np.uint8))


def test_version_1_exports_and_the_old_keyword_still_score(digits_export,
                                                           tmp_path):
    """Format 1 named the multipliers logit_scale (the model's log
    temperature); it is read as ``scale``. ``predict(logit_scale=...)``
    warns and means ``scale``."""
    import shutil
    _, out, meta = digits_export
    old = shutil.copytree(out, tmp_path / 'v1')
    v1 = dict(meta, format_version=1, logit_scale=meta['scale'],
              zero_shot=dict(meta['zero_shot'],
                             logit_scale=meta['zero_shot']['scale']))
    del v1['scale'], v1['zero_shot']['scale']
    with open(osp.join(old, META_FILE), 'w') as f:
        json.dump(v1, f)
    assert read_export_meta(str(old)) == dict(meta, format_version=1)
    photo = skdata.chelsea()
    ours = OnnxCLIP(str(old)).predict(photo)
    theirs = OnnxCLIP(out).predict(photo)
    assert _max_diff(ours['pred_scores'], theirs['pred_scores']) == 0
    with pytest.warns(FutureWarning, match=r'pass scale=50\.0 instead'):
        deprecated = OnnxCLIP(out).predict(photo, texts=TEXTS,
                                           logit_scale=50.)
    renamed = OnnxCLIP(out).predict(photo, texts=TEXTS, scale=50.)
    assert _max_diff(deprecated['pred_scores'], renamed['pred_scores']) == 0
