"""scikit-learn's handwritten digits as a tiny CLIP dataset: class names,
zero-shot prompts, and :func:`prepare_digits`, which writes the data.

:func:`prepare_digits` (``tools/dataset_converters/prepare_digits.py`` is
its command line) writes the 1797 8x8 images of
``sklearn.datasets.load_digits`` once as upscaled RGB PNGs (dark ink on
white) with, in the output folder:

- ``train.csv`` (``filepath,title,label``): training images with captions
  drawn from :data:`TRAIN_TEMPLATES` (several phrasings, the digit as a
  word or a numeral) for CLIP pretraining (``ImageTextDataset`` reads
  ``filepath`` and ``title``), and their class for fine-tuning and linear
  probes (``CsvClassificationDataset`` reads ``filepath`` and ``label``);
- ``val.csv`` (``filepath,label``): held-out images with their class, for
  zero-shot evaluation with :data:`ZERO_SHOT_TEMPLATES`, whose phrasings
  never occur in training captions (so zero-shot accuracy measures
  transfer, not memorised prompts);
- ``val_shifted.csv`` (``filepath,label``): the same held-out digits with
  pixel noise (:func:`shift_digit`, images in ``images_shifted/``), to
  measure how much of its accuracy a model keeps off the training
  distribution (the robustness that WiSE-FT trades against fine-tuned
  accuracy);
- ``classnames.txt``: ``zero`` .. ``nine``, one per line;
- ``meta.json``: the arguments, to skip re-writing identical data: running
  it again with the same arguments does nothing.

Paths in the CSVs are relative to the output folder (use it as
``data_root``). Training and evaluation read the class names and prompts
through the ``'digits'`` entries of :mod:`mmclip.datasets.zero_shot_data`
(e.g. the zero-shot head of
``configs/clip/clip_vit-tiny-p8_zeroshot-cls_digits-32px.py``).
"""
import os
import os.path as osp
from typing import Dict

import numpy as np
from PIL import Image

from mmclip.errors import ConfigError
from .prepared_files import current_meta, write_csv, write_lines, write_meta

#: The digits' names, ``classnames.txt`` of the written data.
CLASSNAMES = ('zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven',
              'eight', 'nine')

#: Zero-shot prompts for evaluation, ``{}`` takes a class name; never seen
#: in training captions (:data:`TRAIN_TEMPLATES`), so zero-shot
#: accuracy measures transfer, not memorised prompts.
ZERO_SHOT_TEMPLATES = (
    'a picture of the digit {}.',
    '{} drawn in black and white.',
    'a low resolution sketch of {}.',
)


#: Training caption phrasings; ``{word}`` is e.g. ``seven``, ``{num}`` ``7``.
TRAIN_TEMPLATES = (
    'a photo of the number {word}',
    'a handwritten digit {num}',
    'the digit {word} written by hand',
    'an image of a {num}',
    'a scanned {word}',
    'the number {num} written with a pen',
    'a tiny blurry handwritten {word}',
    'someone wrote a {num}',
)

#: Bumped when the written files change, so old outputs are rewritten
#: (2: train.csv's label column and a rotated held-out copy; 3: the copy
#: has pixel noise instead).
FORMAT_VERSION = 3
#: Files that make a complete output folder (``meta.json`` is written last).
OUTPUT_FILES = ('train.csv', 'val.csv', 'val_shifted.csv', 'classnames.txt')
#: Standard deviation of the shifted held-out copy's pixel noise.
SHIFT_NOISE_STD = 64.


def train_caption(label: int, template: str) -> str:
    """Fill a training template for digit ``label``."""
    return template.format(word=CLASSNAMES[label], num=label)


def digit_image(pixels: np.ndarray, size: int, resample: str) -> Image.Image:
    """8x8 grey levels 0..16 (16 = ink) -> ``size`` x ``size`` RGB image."""
    grey = np.rint(255 - pixels * (255 / 16)).astype(np.uint8)
    method = {'nearest': Image.NEAREST, 'bilinear': Image.BILINEAR}[resample]
    img = Image.fromarray(grey).resize((size, size), method)
    return img.convert('RGB')


def shift_digit(img: Image.Image, rng: np.random.RandomState) -> Image.Image:
    """The distribution shift of ``val_shifted.csv``: grey Gaussian pixel
    noise of standard deviation :data:`SHIFT_NOISE_STD` (of 255 levels), as
    from a noisy scanner.

    A texture shift, like ImageNet-C's: the digit's shape, size and place
    are unchanged, and every training image is clean. Fine-tuning adapts
    every weight to the clean digits and keeps whatever separates them
    there, fine pixel detail included (Kumar et al., "Fine-tuning can
    distort pretrained features", arXiv 2202.10054); the zero-shot head
    reads the features contrastive pretraining learned for matching many
    phrasings of a caption. So noise plausibly costs the fine-tuned
    classifier more of its accuracy than the zero-shot one: the trade-off
    WiSE-FT's weight averaging addresses. (Inverted colours would make
    every model guess: no training image is light on dark.)

    Args:
        img (PIL.Image.Image): A rendered digit (dark ink on white, RGB).
        rng (np.random.RandomState): Draws the noise.

    Returns:
        PIL.Image.Image: The noisy digit, same size, still grey.
    """
    pixels = np.asarray(img, dtype=np.float32)
    noise = rng.normal(0., SHIFT_NOISE_STD, pixels.shape[:2])[..., None]
    noisy = np.clip(np.rint(pixels + noise), 0, 255).astype(np.uint8)
    return Image.fromarray(noisy)


def stratified_split(labels: np.ndarray, fraction: float,
                     rng: np.random.RandomState) -> np.ndarray:
    """``(N, )`` bool mask holding out ``fraction`` of every class."""
    held_out = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        held_out[idx[:int(round(len(idx) * fraction))]] = True
    return held_out


def prepare_digits(out_dir: str,
                   size: int = 32,
                   val_fraction: float = 0.2,
                   seed: int = 0,
                   resample: str = 'bilinear') -> Dict:
    """Write the digits dataset (see the module docstring); idempotent.

    Args:
        out_dir (str): Output folder (created).
        size (int): Side length of the PNGs. Defaults to 32.
        val_fraction (float): Fraction of each class held out for
            ``val.csv``. Defaults to 0.2.
        seed (int): Seed of the split and of the caption choice.
            Defaults to 0.
        resample (str): ``'bilinear'`` or ``'nearest'`` upscaling.
            Defaults to ``'bilinear'``.

    Returns:
        dict: The ``meta.json`` content: the arguments plus ``num_train``,
        ``num_val`` and ``skipped`` (True when identical data existed).
    """
    from sklearn.datasets import load_digits
    if not 0 < val_fraction < 1:
        raise ConfigError(
            f'val_fraction must be in (0, 1), got {val_fraction}.')
    if resample not in ('bilinear', 'nearest'):
        raise ConfigError(f"resample must be 'bilinear' or 'nearest', got "
                          f'{resample!r}.')
    args = dict(
        size=int(size), val_fraction=float(val_fraction), seed=int(seed),
        resample=resample, version=FORMAT_VERSION)
    meta = current_meta(out_dir, args, OUTPUT_FILES)
    if meta is not None:
        return dict(meta, skipped=True)

    digits = load_digits()
    images, labels = digits.images, digits.target.astype(int)
    rng = np.random.RandomState(seed)
    is_val = stratified_split(labels, val_fraction, rng)

    # Its own stream: the split and captions stay those of format 1.
    shift_rng = np.random.RandomState(seed + 1)
    for folder in ('images', 'images_shifted'):
        os.makedirs(osp.join(out_dir, folder), exist_ok=True)
    train_rows, val_rows, shifted_rows = [], [], []
    for i, (pixels, label) in enumerate(zip(images, labels)):
        rel = f'images/{i:04d}.png'
        img = digit_image(pixels, size, resample)
        img.save(osp.join(out_dir, rel))
        if is_val[i]:
            val_rows.append((rel, int(label)))
            shifted = f'images_shifted/{i:04d}.png'
            shift_digit(img, shift_rng).save(osp.join(out_dir, shifted))
            shifted_rows.append((shifted, int(label)))
        else:
            template = TRAIN_TEMPLATES[rng.randint(len(TRAIN_TEMPLATES))]
            train_rows.append(
                (rel, train_caption(label, template), int(label)))

    write_csv(osp.join(out_dir, 'train.csv'), ('filepath', 'title',
                                               'label'), train_rows)
    write_csv(osp.join(out_dir, 'val.csv'), ('filepath', 'label'), val_rows)
    write_csv(osp.join(out_dir, 'val_shifted.csv'), ('filepath', 'label'),
              shifted_rows)
    write_lines(osp.join(out_dir, 'classnames.txt'), CLASSNAMES)
    meta = dict(args=args, num_train=len(train_rows), num_val=len(val_rows))
    write_meta(out_dir, meta)  # last: marks a complete write
    return dict(meta, skipped=False)
