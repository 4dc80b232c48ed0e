"""One picture per prediction: the image, and its top-k classes as a bar chart.

Used by ``tools/inference.py --show-dir`` and by ``tools/test.py --show-dir``
(:class:`mmclip.engine.hooks.ShowPredictionsHook`), so predictions are drawn in
one place.
"""
import math
import os
import os.path as osp
import textwrap
from typing import Optional, Sequence, Union

import numpy as np
from PIL import Image

# Layout in pixels (rendered at _DPI, so 1 px of the figure = 1 px out).
_DPI = 100
_CHART_WIDTH = 480  # the bar chart's column, tick labels included
_LABEL_WIDTH = 190  # room for the wrapped class names left of the bars
_ROW_HEIGHT = 40  # per top-k bar
_TITLE_HEIGHT = 28
_MARGIN = 12
# Class names (prompts can be whole sentences) wrap at this many
# characters, on at most this many lines, then end with an ellipsis.
_WRAP_CHARS = 26
_WRAP_LINES = 2
_BAR_COLOR = '#4c72b0'
_GT_COLOR = '#55a868'


def shorten_label(label: str, width: int = _WRAP_CHARS,
                  max_lines: int = _WRAP_LINES) -> str:
    """Wrap ``label`` at ``width`` characters on at most ``max_lines`` lines,
    ending with ``'…'`` when text had to be cut.

    Args:
        label (str): A class name or a prompt.
        width (int): Characters per line. Defaults to 26.
        max_lines (int): Lines kept. Defaults to 2.

    Returns:
        str: The label with ``'\\n'`` between its lines.
    """
    lines = textwrap.wrap(str(label), width=width, break_long_words=True,
                          max_lines=max_lines, placeholder=' …')
    return '\n'.join(lines) if lines else ''


def _as_rgb_uint8(image) -> np.ndarray:
    """PIL image or (H, W) / (H, W, 1|3|4) uint8 array -> (H, W, 3) RGB."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert('RGB'))
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f'Expected a uint8 image, got dtype {arr.dtype}; '
                         'convert with e.g. (img * 255).astype(np.uint8).')
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or 0 in arr.shape[:2]:
        raise ValueError('Expected an (H, W), (H, W, 1), (H, W, 3) or '
                         f'(H, W, 4) image, got shape {arr.shape}.')
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr[..., :3])


def fit_image(image: np.ndarray, min_size: int = 224,
              max_size: int = 512) -> np.ndarray:
    """Resize an RGB image for display.

    A side longer than ``max_size`` is shrunk (Lanczos, aspect kept).
    Otherwise an image whose short side is under ``min_size`` is enlarged by
    the smallest integer factor that reaches it (nearest neighbour, so a 32px
    digit stays crisp), without the long side passing ``max_size``.

    Args:
        image (np.ndarray): ``(H, W, 3)`` uint8.
        min_size (int): Wanted short side of small images. Defaults to 224.
        max_size (int): Largest long side. Defaults to 512.

    Returns:
        np.ndarray: ``(H', W', 3)`` uint8.
    """
    h, w = image.shape[:2]
    if max(h, w) > max_size:
        ratio = max_size / max(h, w)
        size = (max(1, round(w * ratio)), max(1, round(h * ratio)))
        return np.asarray(Image.fromarray(image).resize(size, Image.LANCZOS))
    if min(h, w) < min_size:
        factor = min(math.ceil(min_size / min(h, w)), max_size // max(h, w))
        if factor > 1:
            return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)
    return image


def _to_numpy_scores(scores) -> np.ndarray:
    if hasattr(scores, 'detach'):  # a torch tensor
        scores = scores.detach().float().cpu().numpy()
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or scores.size == 0:
        raise ValueError('`scores` must be one non-empty row of class '
                         f'probabilities, got shape {scores.shape}.')
    return scores


def draw_prediction_panel(image: Union[np.ndarray, Image.Image],
                          labels: Optional[Sequence[str]],
                          scores,
                          topk: int = 5,
                          title: Optional[str] = None,
                          gt_label: Optional[str] = None,
                          min_size: int = 224,
                          max_size: int = 512) -> np.ndarray:
    """Draw an image next to a horizontal bar chart of its top-k classes.

    Layout (pixels)::

        +------------------------- title (optional) ----------------------+
        | image, resized by fit_image | class name  |=========== 0.734    |
        |                             | other class |==== 0.112           |
        |                             | ...  (gt: ... under the chart)    |
        +-----------------------------------------------------------------+

    The image is placed pixel for pixel (no resampling by matplotlib). Each
    bar is labelled with its wrapped class name (see :func:`shorten_label`)
    and its probability; the ground-truth class, when given and in the
    top-k, is drawn in green.

    Args:
        image (np.ndarray | PIL.Image.Image): RGB ``(H, W, 3)``, RGBA
            ``(H, W, 4)`` (alpha dropped) or grey ``(H, W)`` uint8 array, or a
            PIL image.
        labels (Sequence[str], optional): The ``C`` class names, in the order
            of ``scores``; None names classes by their index.
        scores (np.ndarray | Tensor | Sequence[float]): ``(C, )`` class
            probabilities.
        topk (int): Classes shown (fewer if ``C < topk``). Defaults to 5.
        title (str, optional): Line above everything, e.g. the file name.
            Defaults to None.
        gt_label (str, optional): The true class name, written under the
            chart. Defaults to None.
        min_size (int): Small images are enlarged (nearest, integer factor)
            towards this short side. Defaults to 224.
        max_size (int): Large images are shrunk to this long side. Defaults
            to 512.

    Returns:
        np.ndarray: ``(H, W, 3)`` uint8 RGB with ``W = w + 480`` and
        ``H = max(h, 40 * k + 80) (+ 28 with a title)``, where ``(h, w)`` is
        the image's size after :func:`fit_image` and ``k`` the bars drawn.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    pixels = fit_image(_as_rgb_uint8(image), min_size, max_size)
    scores = _to_numpy_scores(scores)
    if labels is None:
        labels = [str(i) for i in range(len(scores))]
    if len(labels) != len(scores):
        raise ValueError(f'Got {len(labels)} labels for {len(scores)} '
                         'scores; pass one class name per score.')
    if topk < 1:
        raise ValueError(f'topk must be >= 1, got {topk}.')
    order = np.argsort(-scores, kind='stable')[:topk]
    k = len(order)

    img_h, img_w = pixels.shape[:2]
    title_h = _TITLE_HEIGHT if title else 0
    body_h = max(img_h, _ROW_HEIGHT * k + 80)
    height, width = body_h + title_h, img_w + _CHART_WIDTH

    fig = Figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI,
                 facecolor='white')
    canvas = FigureCanvasAgg(fig)
    # figimage's origin is the bottom-left corner; top-align the image.
    fig.figimage(pixels, xo=0, yo=body_h - img_h, origin='upper')
    if title:
        fig.text(_MARGIN / width, 1 - (title_h / 2) / height,
                 shorten_label(title, width=width // 8, max_lines=1),
                 ha='left', va='center', fontsize=11)

    # Bar axes in pixels: labels on the left, values to the right of bars.
    left = img_w + _LABEL_WIDTH
    bottom, top = 40 if gt_label is not None else 28, _MARGIN + 20
    ax = fig.add_axes([
        left / width, bottom / height,
        (_CHART_WIDTH - _LABEL_WIDTH - _MARGIN) / width,
        (body_h - bottom - top) / height
    ])
    values = scores[order]
    names = [str(labels[i]) for i in order]
    colors = [_GT_COLOR if gt_label is not None and n == str(gt_label)
              else _BAR_COLOR for n in names]
    rows = np.arange(k)
    ax.barh(rows, values, color=colors, height=0.6)
    ax.set_yticks(rows, [shorten_label(n) for n in names], fontsize=9)
    ax.set_ylim(k - 0.5, -0.5)  # best class on top
    # Leave room for the value texts to the right of the longest bar.
    ax.set_xlim(0, max(1e-6, float(values.max())) * 1.3)
    for row, value in zip(rows, values):
        ax.text(value, row, f' {value:.3f}', va='center', fontsize=9)
    ax.set_title(f'top-{k} of {len(scores)} classes', fontsize=9)
    ax.tick_params(axis='x', labelsize=8)
    for side in ('top', 'right'):
        ax.spines[side].set_visible(False)
    if gt_label is not None:
        fig.text((left - 4) / width, 8 / height,
                 'gt: ' + shorten_label(gt_label, max_lines=1),
                 ha='right', va='bottom', fontsize=9, color=_GT_COLOR)

    canvas.draw()
    rgba = np.asarray(canvas.buffer_rgba())
    return np.ascontiguousarray(rgba[..., :3])


def save_prediction_panel(image: Union[np.ndarray, Image.Image],
                          labels: Optional[Sequence[str]],
                          scores,
                          out_file: str,
                          **kwargs) -> str:
    """Draw :func:`draw_prediction_panel` and write it as a PNG.

    Args:
        image, labels, scores: As in :func:`draw_prediction_panel`.
        out_file (str): PNG path; its folder is created.
        **kwargs: ``topk``, ``title``, ``gt_label``, ``min_size``,
            ``max_size`` of :func:`draw_prediction_panel`.

    Returns:
        str: ``out_file``.
    """
    panel = draw_prediction_panel(image, labels, scores, **kwargs)
    folder = osp.dirname(osp.abspath(out_file))
    os.makedirs(folder, exist_ok=True)
    Image.fromarray(panel).save(out_file, format='PNG')
    return out_file
