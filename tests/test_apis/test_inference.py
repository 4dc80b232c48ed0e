"""mmclip.apis.inference_model / extract_features / load_image."""
import io
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image
from skimage import data as skdata

from mmclip.apis import (extract_features, get_model, inference_model,
                         load_image, model_classes, preprocess_images)

PHOTOS = ('astronaut', 'chelsea', 'coffee', 'rocket')
RETRIEVAL = 'clip_vit-base-p32_retrieval_coco'
TEXTS = ['an astronaut', 'a cat', 'a cup of coffee', 'a rocket', 'a dog']


@pytest.fixture(scope='module')
def model():
    # The digits zero-shot config: a tiny CLIP with a 10-class zero-shot
    # head; random weights. No disk cache: tests never write ~/.cache.
    return get_model('clip_vit-tiny-p8_zeroshot-cls_digits-32px',
                     cfg_options={'model.predict_head.cache_dir': None})


@pytest.fixture(scope='module')
def photos():
    return [getattr(skdata, name)() for name in PHOTOS]


def _direct_probs(model, images, texts):
    """OpenAI's recipe written out: normalised embeddings, scaled cosine
    similarities, softmax over the texts."""
    with torch.no_grad():
        img = model.encode_image(preprocess_images(model, images))
        txt = model.encode_text(texts)
        img = img / img.norm(dim=-1, keepdim=True)
        txt = txt / txt.norm(dim=-1, keepdim=True)
        return (model.logit_scale.exp() * img @ txt.t()).softmax(dim=-1)


def test_texts_probabilities_match_direct_computation(model, photos):
    results = inference_model(model, photos, texts=TEXTS, batch_size=3)
    assert isinstance(results, list) and len(results) == len(photos)
    probs = np.stack([r['pred_scores'] for r in results])
    assert probs.shape == (4, 5) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-6)
    direct = _direct_probs(model, photos, TEXTS).numpy()
    np.testing.assert_allclose(probs, direct, atol=1e-6, rtol=1e-5)
    # Random weights still rank the texts differently per image: the test
    # compares real orderings, not ties.
    assert len({tuple(np.argsort(p)) for p in probs}) > 1
    np.testing.assert_array_equal(np.argsort(probs, 1),
                                  np.argsort(direct, 1))
    for r, p in zip(results, probs):
        assert r['pred_label'] == int(p.argmax())
        assert r['pred_class'] == TEXTS[r['pred_label']]
        assert r['pred_score'] == pytest.approx(float(p.max()))
        assert 'img_path' not in r  # arrays, not files


def test_single_image_returns_one_dict_and_templates_ensemble(model, photos):
    templates = ['a photo of {}.', 'a drawing of {}.']
    r = inference_model(model, photos[1], texts=['cat', 'rocket'],
                        templates=templates)
    assert isinstance(r, dict)
    with torch.no_grad():
        img = model.encode_image(preprocess_images(model, [photos[1]]),
                                 normalize=True)
        cls = []
        for name in ['cat', 'rocket']:
            emb = model.encode_text([t.format(name) for t in templates],
                                    normalize=True).mean(0)
            cls.append(emb / emb.norm())
        direct = (model.logit_scale.exp() * img @ torch.stack(cls).t()
                  ).softmax(-1)[0]
    np.testing.assert_allclose(r['pred_scores'], direct.numpy(), atol=1e-6)


def test_without_texts_uses_configured_classes(model, photos):
    assert model_classes(model) == [
        'zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven',
        'eight', 'nine']
    results = inference_model(model, photos)
    with torch.no_grad():
        samples = model(preprocess_images(model, photos), mode='predict')
    for r, s in zip(results, samples):
        np.testing.assert_allclose(r['pred_scores'], s.pred_score.numpy(),
                                   atol=1e-6)
        assert r['pred_class'] == model_classes(model)[r['pred_label']]
        assert r['pred_scores'].shape == (10, )


def test_model_without_classes_says_what_to_do(tiny_clip_cfg, photos):
    model = get_model(Config(dict(model=tiny_clip_cfg)))
    with pytest.raises(ValueError, match=r"texts=\['a dog'"):
        inference_model(model, photos[0])


def test_mmpretrain_classifier_head(photos):
    # A fine-tuned classifier (mmpretrain ImageClassifier) predicts its own
    # classes through the same call.
    from mmpretrain import get_model as mmpretrain_get_model
    cfg = Config(dict(
        model=dict(
            type='ImageClassifier',
            backbone=dict(type='VisionTransformer', img_size=32,
                          patch_size=8, arch=dict(
                              embed_dims=32, num_layers=1, num_heads=2,
                              feedforward_channels=64)),
            head=dict(type='VisionTransformerClsHead', num_classes=3,
                      in_channels=32),
            data_preprocessor=dict(type='ClsDataPreprocessor', to_rgb=True)),
        test_pipeline=[dict(type='Resize', scale=32),
                       dict(type='PackInputs')]))
    clf = mmpretrain_get_model(cfg)
    clf._dataset_meta = dict(classes=['a', 'b', 'c'])
    results = inference_model(clf, photos[:2])
    with torch.no_grad():
        samples = clf(preprocess_images(clf, photos[:2]), mode='predict')
    for r, s in zip(results, samples):
        np.testing.assert_allclose(r['pred_scores'], s.pred_score.numpy(),
                                   atol=1e-6)
        assert r['pred_class'] == 'abc'[r['pred_label']]


def _save_odd_images(folder, photos):
    """Readable images in the modes users meet, plus unreadable files."""
    chelsea = Image.fromarray(photos[1])
    chelsea.save(folder / 'a_rgb.jpg')
    chelsea.convert('L').save(folder / 'b_grey.png')
    chelsea.convert('RGBA').save(folder / 'c_rgba.png')
    chelsea.convert('CMYK').save(folder / 'd_cmyk.jpg')
    grey16 = (np.asarray(chelsea.convert('L')).astype(np.uint16) * 257)
    Image.fromarray(grey16).save(folder / 'e_grey16.png')
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
    chelsea.save(folder / 'f_exif_rotated.jpg', exif=exif)
    (folder / 'x_broken.jpg').write_bytes(b'\xff\xd8 definitely not a jpeg')
    (folder / 'y_empty.png').write_bytes(b'')
    buf = io.BytesIO()
    chelsea.save(buf, 'JPEG')
    (folder / 'z_truncated.jpg').write_bytes(buf.getvalue()[:2000])
    (folder / 'notes.txt').write_text('not an image')
    (folder / '.hidden.jpg').write_bytes(b'junk')  # hidden: not tried
    (folder / 'subdir').mkdir()  # folders inside are not recursed into


@pytest.mark.parametrize('num_workers', [0, 3])
def test_folder_mode_skips_bad_files_and_counts_them(tmp_path, model, photos,
                                                     mm_log, num_workers):
    _save_odd_images(tmp_path, photos)
    # batch_size 4: batches straddle the skipped files; threads keep order.
    results = inference_model(model, str(tmp_path), texts=TEXTS,
                              batch_size=4, num_workers=num_workers)
    good = ['a_rgb.jpg', 'b_grey.png', 'c_rgba.png', 'd_cmyk.jpg',
            'e_grey16.png', 'f_exif_rotated.jpg']
    assert [osp.basename(r['img_path']) for r in results] == good
    warning = [m for m in mm_log if m.startswith('Skipped')]
    assert len(warning) == 1
    assert warning[0].startswith('Skipped 4 of 10 files')
    for bad in ('x_broken.jpg', 'y_empty.png', 'z_truncated.jpg',
                'notes.txt'):
        assert bad in warning[0]
    assert '.hidden' not in warning[0]
    # Each result is what the same image alone gives.
    alone = inference_model(model, str(tmp_path / 'd_cmyk.jpg'), texts=TEXTS)
    np.testing.assert_allclose(results[3]['pred_scores'],
                               alone['pred_scores'], atol=1e-6)
    assert alone['img_path'] == str(tmp_path / 'd_cmyk.jpg')


def test_loading_modes(tmp_path, photos):
    _save_odd_images(tmp_path, photos)
    h, w = photos[1].shape[:2]
    rotated = load_image(str(tmp_path / 'f_exif_rotated.jpg'))
    assert rotated.shape == (w, h, 3)  # EXIF orientation applied
    grey16 = load_image(tmp_path / 'e_grey16.png')  # os.PathLike too
    grey8 = load_image(str(tmp_path / 'b_grey.png'))
    np.testing.assert_array_equal(grey16, grey8)  # scaled, not clipped
    cmyk = load_image(str(tmp_path / 'd_cmyk.jpg'))
    assert cmyk.dtype == np.uint8 and cmyk.shape == (h, w, 3)
    assert np.abs(cmyk.astype(int) - photos[1]).mean() < 12
    rgba = np.dstack([photos[1], np.full((h, w), 255, np.uint8)])
    np.testing.assert_array_equal(load_image(rgba), photos[1])
    np.testing.assert_array_equal(load_image(photos[1][..., 0]),
                                  np.dstack([photos[1][..., 0]] * 3))


def test_encoded_bytes_load_as_the_file_does(tmp_path, photos):
    """A file's bytes (an upload, a shard member) decode exactly as the
    file; empty or junk bytes raise one message saying so."""
    _save_odd_images(tmp_path, photos)
    for name in ('f_exif_rotated.jpg', 'e_grey16.png', 'd_cmyk.jpg'):
        path = tmp_path / name
        np.testing.assert_array_equal(load_image(path.read_bytes()),
                                      load_image(str(path)))
    with pytest.raises(ValueError, match='image bytes: the data is empty'):
        load_image(b'')
    with pytest.raises(ValueError, match='image bytes: not a readable image'):
        load_image(b'<html>not an image</html>')


@pytest.mark.parametrize('name,match', [
    ('x_broken.jpg', 'x_broken.jpg.*not a readable image format'),
    ('y_empty.png', 'y_empty.png.*empty'),
    ('z_truncated.jpg', 'z_truncated.jpg.*truncated'),
    ('missing.jpg', 'missing.jpg.*does not exist'),
])
def test_explicit_unreadable_file_raises_naming_it(tmp_path, model, photos,
                                                   name, match):
    _save_odd_images(tmp_path, photos)
    with pytest.raises(ValueError, match=match):
        inference_model(model, [photos[0], str(tmp_path / name)],
                        texts=TEXTS)


def test_folder_without_readable_images_raises(tmp_path, model):
    (tmp_path / 'a.txt').write_text('x')
    with pytest.raises(ValueError, match='None of the files'):
        inference_model(model, str(tmp_path), texts=TEXTS)


def test_bad_arrays_are_refused_clearly():
    with pytest.raises(ValueError, match='uint8.*float'):
        load_image(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r'shape \(8, 8, 2\)'):
        load_image(np.zeros((8, 8, 2), np.uint8))


def test_huge_images(tmp_path, monkeypatch, photos):
    from mmclip.apis import preprocess
    from mmclip.datasets.transforms.loading import decode_image
    big = Image.fromarray(photos[0]).resize((1600, 1200), Image.BICUBIC)
    buf = io.BytesIO()
    big.save(buf, 'JPEG', quality=95)
    (tmp_path / 'big.jpg').write_bytes(buf.getvalue())
    # Above the draft threshold a JPEG decodes at a DCT scale (here 1/4)
    # whose short side still reaches draft_min_side; the model input barely
    # changes.
    full = decode_image(buf.getvalue())
    draft = decode_image(buf.getvalue(), draft_pixels=1000,
                         draft_min_side=256)
    assert full.shape == (1200, 1600, 3) and draft.shape == (300, 400, 3)
    model = get_model('clip_vit-base-p32', device='cpu')
    x_full, x_draft = preprocess_images(model, [full, draft])
    assert (x_full - x_draft).abs().mean() < 0.05  # normalised units
    # Over the limit: refused before decoding, naming the file and limit.
    monkeypatch.setattr(preprocess, 'MAX_PIXELS', 10**6)
    with pytest.raises(ValueError, match=r'big.jpg.*2 megapixels.*limit'):
        load_image(str(tmp_path / 'big.jpg'),
                   max_pixels=preprocess.MAX_PIXELS)
    # Pillow's own decompression-bomb limit does not apply below ours.
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 10**5)
    assert load_image(str(tmp_path / 'big.jpg')).shape == (1200, 1600, 3)
    assert Image.MAX_IMAGE_PIXELS == 10**5  # restored afterwards


def test_pixel_limit_survives_concurrent_decoding(tmp_path, monkeypatch):
    # inference_model decodes on threads; Pillow's limit is process-wide.
    # Every thread must see a raised limit while decoding, and the user's
    # value must come back afterwards (not a raised one left behind).
    from concurrent.futures import ThreadPoolExecutor
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 10**5)
    Image.fromarray(np.zeros((600, 800, 3), np.uint8)).save(tmp_path / 'a.png')
    with ThreadPoolExecutor(8) as pool:  # 480k px: Pillow alone refuses
        shapes = set(pool.map(lambda _: load_image(tmp_path / 'a.png').shape,
                              range(200)))
    assert shapes == {(600, 800, 3)}
    assert Image.MAX_IMAGE_PIXELS == 10**5


def test_extract_features(tmp_path, model, photos):
    Image.fromarray(photos[1]).save(tmp_path / 'cat.png')
    texts = TEXTS + ['word ' * 200]  # longer than the context: truncated
    feats = extract_features(model, [str(tmp_path / 'cat.png'), photos[2]],
                             texts=texts, to_numpy=True)
    dim = model.embed_dims
    assert feats['image_embeds'].shape == (2, dim)
    assert feats['text_embeds'].shape == (6, dim)
    assert feats['img_paths'] == [str(tmp_path / 'cat.png'), None]
    assert feats['texts'] == texts
    np.testing.assert_allclose(
        np.linalg.norm(feats['image_embeds'], axis=1), 1, atol=1e-5)
    with torch.no_grad():
        direct = model.encode_image(
            preprocess_images(model, [photos[1], photos[2]]), normalize=True)
    np.testing.assert_allclose(feats['image_embeds'], direct.numpy(),
                               atol=1e-6)
    raw = extract_features(model, photos[2], normalize=False)
    assert isinstance(raw['image_embeds'], torch.Tensor)
    assert not torch.allclose(raw['image_embeds'].norm(dim=-1),
                              torch.ones(1))


@pytest.fixture(scope='module')
def retrieval_model():
    # COCO retrieval: its evaluation pipeline starts with TokenizeText (the
    # captions) and LoadImageRGB (the files). Random weights.
    return get_model(RETRIEVAL)


def test_retrieval_model_embeds_and_classifies_images(retrieval_model,
                                                      photos):
    feats = extract_features(retrieval_model, photos[:2], texts=TEXTS)
    assert feats['image_embeds'].shape == (2, 512)
    assert feats['text_embeds'].shape == (len(TEXTS), 512)
    results = inference_model(retrieval_model, photos[:2], texts=TEXTS)
    direct = _direct_probs(retrieval_model, photos[:2], TEXTS).numpy()
    np.testing.assert_allclose(np.stack([r['pred_scores'] for r in results]),
                               direct, atol=1e-6, rtol=1e-5)


def test_mmpretrain_model_under_mmpretrain_scope(retrieval_model, photos):
    # mmpretrain.get_model builds in its own scope, and a user of mmpretrain
    # has 'mmpretrain' as the default scope: mmclip's transforms
    # (PackImageText) must still be found.
    from mmengine.registry import DefaultScope
    from mmpretrain import get_model as mmpretrain_get_model
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = mmpretrain_get_model(RETRIEVAL)
        model.load_state_dict(retrieval_model.state_dict())
        feats = extract_features(model, photos[:2])
        result = inference_model(model, photos[0], texts=TEXTS)
    expected = extract_features(retrieval_model, photos[:2])
    torch.testing.assert_close(feats['image_embeds'],
                               expected['image_embeds'], atol=1e-6, rtol=0)
    np.testing.assert_allclose(
        result['pred_scores'],
        _direct_probs(retrieval_model, photos[:1], TEXTS)[0].numpy(),
        atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize('name,size', [
    ('clip_vit-base-p32_zeroshot-cls_in1k', 224),
    ('clip_vit-base-p16_zeroshot-cls_in1k-384px', 384),
    # its test pipeline also tokenizes captions: images alone skip that
    (RETRIEVAL, 224)])
def test_preprocessing_equals_open_clip(name, size, photos):
    # OpenAI's eval transform as open_clip builds it (PIL bicubic resize of
    # the short side, center crop, normalise); odd sizes exercise the crop
    # offset rounding.
    import open_clip
    ref = open_clip.image_transform(size, is_train=False,
                                    mean=open_clip.OPENAI_DATASET_MEAN,
                                    std=open_clip.OPENAI_DATASET_STD)
    model = get_model(name)
    images = [Image.fromarray(photos[1])]
    images += [images[0].resize(s, Image.BICUBIC)
               for s in [(size + 77, size + 3), (size + 1, 4 * size + 1)]]
    ours = preprocess_images(model, images)
    expected = torch.stack([ref(img) for img in images])
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=0)


def test_rgb_config_gets_rgb_pixels(photos):
    # The CIFAR-100 config's preprocessor does not flip channels (its
    # dataset yields RGB): user images must then arrive as RGB, and both
    # configs normalise a photo to the same tensor.
    cifar = get_model('clip_vit-base-p16_zeroshot-cls_cifar100')
    in1k = get_model('clip_vit-base-p16_zeroshot-cls_in1k')
    assert cifar.data_preprocessor.to_rgb is False
    square = photos[0]  # 512x512: resize-only and resize+crop agree
    torch.testing.assert_close(preprocess_images(cifar, [square]),
                               preprocess_images(in1k, [square]),
                               atol=1e-6, rtol=0)


def test_model_in_another_dtype(photos):
    # Users cast models (.half() on GPUs); inputs follow the model's dtype.
    model = get_model('clip_vit-tiny-p8_zeroshot-cls_digits-32px',
                      cfg_options={'model.predict_head.cache_dir': None})
    ref = inference_model(model, photos[:2], texts=TEXTS)
    model.double()
    assert preprocess_images(model, photos[:1]).dtype == torch.float64
    out = inference_model(model, photos[:2], texts=TEXTS)
    for a, b in zip(ref, out):
        np.testing.assert_allclose(a['pred_scores'], b['pred_scores'],
                                   atol=1e-5)


def test_scale_is_the_multiplier_and_logit_scale_its_old_name(model, photos):
    """``scale`` multiplies the cosine similarities (a number, or
    'learned'); the old keyword ``logit_scale`` still works, with a
    FutureWarning that names the new one."""
    with torch.no_grad():
        img = model.encode_image(preprocess_images(model, photos[:2]),
                                 normalize=True)
        txt = model.encode_text(TEXTS, normalize=True)
    by_scale = inference_model(model, photos[:2], texts=TEXTS, scale=7.)
    np.testing.assert_allclose(
        np.stack([r['pred_scores'] for r in by_scale]),
        (7. * img @ txt.t()).softmax(-1).numpy(), atol=1e-6)
    learned = inference_model(model, photos[:2], texts=TEXTS,
                              scale='learned')
    default = inference_model(model, photos[:2], texts=TEXTS)
    for a, b in zip(learned, default):
        np.testing.assert_array_equal(a['pred_scores'], b['pred_scores'])
    with pytest.warns(FutureWarning, match=r'pass scale=7\.0 instead'):
        old = inference_model(model, photos[:2], texts=TEXTS, logit_scale=7.)
    for a, b in zip(old, by_scale):
        np.testing.assert_array_equal(a['pred_scores'], b['pred_scores'])
