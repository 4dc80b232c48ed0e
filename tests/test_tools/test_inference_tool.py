"""tools/inference.py on scikit-image's photos with the tiny digits model
(random weights): table, pictures, features and errors."""
import json
import os
import os.path as osp
import re

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import load_tool

MODEL = 'clip_vit-tiny-p8_zeroshot-cls_digits-32px'
PHOTOS = {'astronaut': '.jpg', 'chelsea': '.png', 'coffee': '.jpg',
          'rocket': '.png'}
TEXTS = ['a cat', 'a rocket', 'a cup of coffee']
CELL = r'(?:[^|:]+): (\d\.\d{3})'  # "label: 0.123"


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    """A folder with the four photos (JPEG and PNG) and a corrupt JPEG."""
    from skimage import data
    folder = tmp_path_factory.mktemp('photos')
    for name, ext in PHOTOS.items():
        Image.fromarray(getattr(data, name)()).save(folder / (name + ext))
    (folder / 'broken.jpg').write_bytes(b'\xff\xd8\xff junk, not a JPEG' * 8)
    return str(folder)


@pytest.fixture(scope='module')
def tool():
    return load_tool('inference.py')


def _run(tool, tmp_path, *argv):
    return tool.main([
        *argv, '--model', MODEL, '--cfg-options',
        f'model.predict_head.cache_dir={tmp_path}/cache'
    ])


def _rows(out, paths, k):
    """The probabilities of the table row of each path (best first)."""
    rows = {}
    for line in out.splitlines():
        for path in paths:
            if line.startswith(path + ' '):
                assert path not in rows, f'two rows for {path}'
                rows[path] = [float(p) for p in re.findall(CELL, line)]
    assert sorted(rows) == sorted(paths)
    for probs in rows.values():
        assert len(probs) == k and probs == sorted(probs, reverse=True)
        assert 0 < sum(probs) <= 1 + 2e-3
    return rows


def test_folder_with_pictures_npy_and_json(tool, photos, tmp_path, capsys,
                                           mm_log):
    from mmclip.apis import load_image
    from mmclip.visualization import fit_image
    show, feats = tmp_path / 'show', tmp_path / 'feats.npy'
    out = tmp_path / 'preds.json'
    assert _run(tool, tmp_path, photos, '--show-dir', str(show),
                '--save-features', str(feats), '--out', str(out)) == 0
    printed = capsys.readouterr().out
    assert 'random weights: predictions are meaningless' in printed
    paths = [osp.join(photos, n + e) for n, e in sorted(PHOTOS.items())]
    rows = _rows(printed, paths, k=5)
    assert 'broken.jpg' not in printed.split('top-5 (label')[1]
    assert any('Skipped 1 of 5' in m and 'broken.jpg' in m for m in mm_log)

    with open(out) as f:
        dumped = json.load(f)
    assert dumped['random_weights'] and len(dumped['classes']) == 10
    preds = dumped['predictions']
    assert [p['img_path'] for p in preds] == paths
    for pred in preds:
        scores = np.array(pred['pred_scores'])
        assert scores.sum() == pytest.approx(1, abs=1e-5)
        assert pred['pred_class'] == dumped['classes'][scores.argmax()]
        top = np.sort(scores)[::-1][:5]
        np.testing.assert_allclose(rows[pred['img_path']], top, atol=6e-4)

    assert sorted(os.listdir(show)) == sorted(n + '.png' for n in PHOTOS)
    for path in paths:
        name = osp.splitext(osp.basename(path))[0]
        shown = fit_image(load_image(path))  # photo, shrunk to <= 512 px
        h, w = shown.shape[:2]
        with Image.open(show / (name + '.png')) as im:
            assert im.format == 'PNG' and im.mode == 'RGB'
            # title 28 px over max(photo, 5 bars); chart 480 px wide
            assert im.size == (w + 480, max(h, 280) + 28)
            im.verify()
        with Image.open(show / (name + '.png')) as im:
            np.testing.assert_array_equal(
                np.asarray(im)[28:28 + h, :w], shown)

    embeds = np.load(feats)
    assert embeds.shape[0] == 4 and embeds.shape[1] > 1
    np.testing.assert_allclose(np.linalg.norm(embeds, axis=1), 1, atol=1e-5)


def test_texts_and_npz_agree_with_the_probabilities(tool, photos, tmp_path,
                                                    capsys):
    from mmclip.apis import get_model
    paths = [osp.join(photos, n + e) for n, e in PHOTOS.items()]
    feats, out = tmp_path / 'feats.npz', tmp_path / 'preds.json'
    assert _run(tool, tmp_path, *paths, '--texts', *TEXTS, '--topk', '2',
                '--save-features', str(feats), '--out', str(out)) == 0
    printed = capsys.readouterr().out
    assert 'random weights' in printed
    _rows(printed, paths, k=2)

    npz = np.load(feats)
    assert list(npz['img_paths']) == paths and list(npz['texts']) == TEXTS
    img, txt = npz['image_embeds'], npz['text_embeds']
    assert img.shape == (4, txt.shape[1]) and txt.shape[0] == 3
    for emb in (img, txt):
        np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    # The probabilities are softmax(logit_scale.exp() * cos) of the saved
    # embeddings (logit_scale is the config's constant initial value).
    scale = float(get_model(MODEL).logit_scale.detach().exp())
    expected = torch.softmax(torch.from_numpy(scale * img @ txt.T), -1)
    with open(out) as f:
        preds = json.load(f)['predictions']
    got = np.array([p['pred_scores'] for p in preds])
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-4)
    assert [p['pred_class'] for p in preds] == [
        TEXTS[i] for i in expected.argmax(-1)
    ]


def test_texts_with_a_templates_file(tool, photos, tmp_path, capsys):
    templates = tmp_path / 'templates.txt'
    templates.write_text('a photo of {}.\na blurry photo of {}.\n')
    path = osp.join(photos, 'coffee.jpg')
    assert _run(tool, tmp_path, path, '--texts', 'cup', 'cat',
                '--templates', str(templates)) == 0
    printed = capsys.readouterr().out
    assert f"2 classes from --texts with templates '{templates}'" in printed
    row = _rows(printed, [path], k=2)[path]
    assert sum(row) == pytest.approx(1, abs=2e-3)


def test_checkpoint_is_named_and_no_random_weights_warning(
        tool, photos, tmp_path, capsys):
    from mmclip.apis import get_model
    ckpt = str(tmp_path / 'tiny.pth')
    torch.save(dict(state_dict=get_model(MODEL).state_dict()), ckpt)
    path = osp.join(photos, 'rocket.png')
    assert _run(tool, tmp_path, path, '--checkpoint', ckpt, '--texts',
                *TEXTS) == 0
    printed = capsys.readouterr().out
    assert f'checkpoint: {ckpt} (loaded)' in printed
    assert 'random weights' not in printed
    _rows(printed, [path], k=3)


def test_explicit_unreadable_file_stops_with_one_message(tool, photos,
                                                         tmp_path, capsys):
    broken = osp.join(photos, 'broken.jpg')
    good = osp.join(photos, 'chelsea.png')
    assert _run(tool, tmp_path, good, broken) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith('error: ') and broken in err[-1]
    assert not any('Traceback' in line for line in err)


@pytest.mark.parametrize('argv, match', [
    (['missing.jpg'], "No such image file or folder: 'missing.jpg'"),
    (['IMG', '--templates', 'digits'], '--templates expands --texts'),
    (['IMG', '--save-features', 'f.pt'], r"one of \('.npy', '.npz'\)"),
    (['IMG', '--out', 'p.csv'], 'must end in .json'),
])
def test_bad_arguments_fail_before_building_the_model(
        tool, photos, argv, match, capsys):
    argv = [osp.join(photos, 'chelsea.png') if a == 'IMG' else a
            for a in argv]
    args = tool.parse_args(argv + ['--model', 'no-such-model'])
    # An unknown model would fail later; these fail first.
    with pytest.raises(ValueError, match=match):
        tool.check_args(args)
    assert tool.main(argv + ['--model', 'no-such-model']) == 1
    assert re.search(match, capsys.readouterr().err)
