"""draw_prediction_panel / save_prediction_panel: sizes, exact image pixels,
bars that match the scores, long labels kept out of the image."""
import numpy as np
import pytest
import torch
from PIL import Image

from mmclip.visualization import (draw_prediction_panel, fit_image,
                                  save_prediction_panel, shorten_label)

BAR = (0x4c, 0x72, 0xb0)
GT = (0x55, 0xa8, 0x68)
LONG = ('a blurry photo taken at night of a very small tabby cat sitting on '
        'a red carpet next to a cup of coffee')


def _image(h, w, channels=3, seed=0):
    shape = (h, w) if channels is None else (h, w, channels)
    return np.random.default_rng(seed).integers(0, 256, shape, np.uint8)


def _bar_runs(panel, color, x0):
    """(row count, width in px) of each horizontal run of ``color`` bars
    right of column ``x0``, top to bottom."""
    mask = (panel[:, x0:] == color).all(-1)
    widths = mask.sum(1)
    runs, start = [], None
    for y, w in enumerate(widths):
        if w and start is None:
            start = y
        if not w and start is not None:
            runs.append(int(widths[start:y].max()))
            start = None
    return runs


def test_small_image_upscaled_nearest_and_placed_pixel_exact():
    img = _image(32, 32)
    panel = draw_prediction_panel(img, ['zero', 'one', 'two'],
                                  [0.2, 0.5, 0.3], title='digit.png')
    # 32 px -> x7 = 224; body = max(224, 40 * 3 + 80) = 224; + title 28.
    assert panel.shape == (224 + 28, 224 + 480, 3)
    assert panel.dtype == np.uint8
    expected = np.repeat(np.repeat(img, 7, axis=0), 7, axis=1)
    np.testing.assert_array_equal(panel[28:28 + 224, :224], expected)


def test_large_image_downscaled_to_max_size():
    img = _image(1000, 3000)
    panel = draw_prediction_panel(img, None, np.full(10, 0.1), topk=5)
    assert panel.shape == (280, 512 + 480, 3)  # 40 * 5 + 80 rows for bars
    shown = fit_image(img)
    assert shown.shape == (171, 512, 3)
    np.testing.assert_array_equal(panel[:171, :512], shown)


@pytest.mark.parametrize('channels', [None, 1, 4])
def test_grey_and_rgba_images(channels):
    img = _image(300, 260, channels)
    panel = draw_prediction_panel(img, ['a', 'b'], [0.9, 0.1])
    assert panel.shape == (300, 260 + 480, 3) and panel.dtype == np.uint8
    region = panel[:300, :260]
    if channels == 4:
        np.testing.assert_array_equal(region, img[..., :3])
    else:
        grey = img.reshape(300, 260)
        for c in range(3):
            np.testing.assert_array_equal(region[..., c], grey)


def test_pil_image_and_tensor_scores():
    img = Image.fromarray(_image(240, 320))
    panel = draw_prediction_panel(img, ['x', 'y', 'z'],
                                  torch.tensor([0.1, 0.1, 0.8]))
    np.testing.assert_array_equal(panel[:240, :320], np.asarray(img))


def test_bars_are_sorted_and_proportional_and_gt_is_green():
    img = _image(224, 224)
    panel = draw_prediction_panel(img, ['low', 'high', 'mid', 'tiny'],
                                  [0.1, 0.6, 0.3, 0.0], topk=3,
                                  gt_label='mid')
    # Bars start right of the image (224) and the labels column (190).
    blue = _bar_runs(panel, BAR, 224 + 190)
    green = _bar_runs(panel, GT, 224 + 190)
    # 'high' (0.6) then 'low' (0.1) in blue, 'mid' (0.3) in green.
    assert len(blue) == 2 and len(green) == 1
    assert blue[0] / green[0] == pytest.approx(2, rel=0.05)
    assert blue[0] / blue[1] == pytest.approx(6, rel=0.1)
    rows = np.nonzero((panel[:, 224 + 190:] == BAR).all(-1).any(1))[0]
    green_rows = np.nonzero((panel[:, 224 + 190:] == GT).all(-1).any(1))[0]
    assert rows.min() < green_rows.min() < rows.max()  # mid is 2nd


def test_long_labels_wrapped_and_kept_out_of_the_image():
    img = np.zeros((224, 224, 3), np.uint8)
    labels = [LONG, LONG + ' again', 'cat']
    panel = draw_prediction_panel(img, labels, [0.5, 0.3, 0.2],
                                  title=LONG * 3)
    short = draw_prediction_panel(img, ['a', 'b', 'c'], [0.5, 0.3, 0.2],
                                  title='t')
    assert panel.shape == short.shape
    # No text spills onto the image (it stays pure black).
    assert not panel[28:28 + 224, :224].any()
    text = shorten_label(LONG)
    lines = text.split('\n')
    assert len(lines) == 2 and all(len(line) <= 26 for line in lines)
    assert text.endswith('…')
    assert shorten_label('cat') == 'cat'


def test_topk_larger_than_classes_and_bad_inputs():
    panel = draw_prediction_panel(_image(50, 50), ['a', 'b'], [0.4, 0.6],
                                  topk=5)
    assert len(_bar_runs(panel, BAR, 250 + 190)) == 2
    with pytest.raises(ValueError, match='2 labels for 3 scores'):
        draw_prediction_panel(_image(8, 8), ['a', 'b'], [0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match='uint8'):
        draw_prediction_panel(np.zeros((8, 8, 3)), None, [1.0])
    with pytest.raises(ValueError, match='shape'):
        draw_prediction_panel(_image(8, 8, 2), None, [1.0])


def test_save_prediction_panel_writes_valid_png(tmp_path):
    img = _image(40, 60)
    out = tmp_path / 'sub' / 'pred.png'
    kwargs = dict(topk=2, title='pred.png', gt_label='b')
    assert save_prediction_panel(img, ['a', 'b', 'c'], [0.2, 0.7, 0.1],
                                 str(out), **kwargs) == str(out)
    drawn = draw_prediction_panel(img, ['a', 'b', 'c'], [0.2, 0.7, 0.1],
                                  **kwargs)
    with Image.open(out) as im:
        assert im.format == 'PNG' and im.mode == 'RGB'
        assert im.size == (drawn.shape[1], drawn.shape[0])
        im.verify()
    with Image.open(out) as im:
        np.testing.assert_array_equal(np.asarray(im), drawn)
