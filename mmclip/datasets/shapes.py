"""Coloured shapes with captions: concepts the digits CLIP never saw, for
trying caption fine-tuning on a CPU.

The digits CLIP (``configs/clip/clip_vit-tiny-p8_1xb32-24e_digits-32px.py``)
learns from grey handwritten digits and captions about numbers; it has seen
no colour, no geometric shape and none of their words. :func:`prepare_shapes`
(``tools/dataset_converters/prepare_shapes.py`` is its command line) writes
a small image-caption set of such concepts, laid out like a user's own data
(open_clip's ``filepath,title`` CSV) plus a labelled held-out set for
zero-shot validation. In the output folder:

- ``images/{train,val}/NNNNN.png``: one shape of :data:`SHAPES` in one of
  :data:`COLOURS` on white, at a random place and size, slightly rotated;
- ``train.csv`` (``filepath,title,label``): the training images with a
  caption from :data:`TRAIN_TEMPLATES` ("a small red triangle") for
  ``ImageTextDataset``, and the shape's class index;
- ``val.csv`` (``filepath,label``): held-out images (drawn with another
  random stream) and their shape, for zero-shot evaluation with
  :data:`ZERO_SHOT_TEMPLATES`, phrasings no training caption uses;
- ``classnames.txt`` (:data:`SHAPES`) and ``templates.txt``
  (:data:`ZERO_SHOT_TEMPLATES`), one per line, as a user would write them
  for their own classes;
- ``meta.json``: the arguments; running again with the same ones does
  nothing.

Paths in the CSVs are relative to the output folder (the ``data_root``).
The ``'shapes'`` entries of :mod:`mmclip.datasets.zero_shot_data` name the
class names and templates in configs.
"""
import math
import os
import os.path as osp
import re
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image, ImageDraw

from mmclip.errors import ConfigError
from .prepared_files import current_meta, write_csv, write_lines, write_meta

#: The classes: shapes distinct at 32 px.
SHAPES = ('circle', 'ring', 'square', 'triangle', 'star', 'cross')

#: Fill colours (RGB), all dark enough to stand out on white.
COLOURS = {
    'red': (215, 35, 35),
    'green': (35, 150, 60),
    'blue': (40, 70, 215),
    'orange': (240, 130, 20),
    'purple': (135, 45, 170),
}

#: Training caption phrasings; ``{size}`` is ``small`` or ``large``. None
#: repeats a word of the digits' captions or prompts besides "a" and "of".
TRAIN_TEMPLATES = (
    'a {colour} {shape}',
    'a {size} {colour} {shape}',
    'a {shape} coloured {colour}',
    'a flat {colour} {shape} shape',
    'a {size} {shape}',
    'clip art of a {colour} {shape}',
)

#: Zero-shot prompts for evaluation, never used by a training caption.
ZERO_SHOT_TEMPLATES = (
    'an illustration of a {}.',
    'a {} icon.',
    'a simple drawing of a {}.',
)

#: Bumped when the written files change, so old outputs are rewritten.
FORMAT_VERSION = 2
OUTPUT_FILES = ('train.csv', 'val.csv', 'classnames.txt', 'templates.txt')
#: Shape radius as a fraction of the image side; below the middle the
#: caption calls it small.
RADIUS_RANGE = (0.28, 0.45)
#: Largest rotation either way, in radians: a square turned by 45 degrees
#: would read as a diamond, a triangle upside down as another shape.
MAX_ROTATION = math.pi / 9
#: Drawn at this many times the size, then downsampled: smooth edges.
SUPERSAMPLE = 4


def _around(radii: Tuple[float, ...], count: int,
            start: float = -math.pi / 2) -> List[Tuple[float, float]]:
    """``count`` points evenly spaced in angle from ``start``, at the
    ``radii`` in turn (one radius: a regular polygon; two: a star)."""
    points = []
    for i in range(count):
        theta = start + 2 * math.pi * i / count
        r = radii[i % len(radii)]
        points.append((r * math.cos(theta), r * math.sin(theta)))
    return points


def _outline(shape: str) -> List[Tuple[float, float]]:
    """The polygon of ``shape`` around the origin, radius about 1."""
    if shape == 'square':
        return _around((1., ), 4, start=math.pi / 4)
    if shape == 'triangle':
        return _around((1., ), 3)
    if shape == 'star':
        return _around((1., .42), 10)
    if shape == 'cross':
        a, b = .3, 1.
        return [(-a, -b), (a, -b), (a, -a), (b, -a), (b, a), (a, a), (a, b),
                (-a, b), (-a, a), (-b, a), (-b, -a), (-a, -a)]
    raise ValueError(f'no outline for {shape!r}')


def draw_shape(shape: str, colour: Tuple[int, int, int], size: int,
               centre: Tuple[float, float], radius: float,
               angle: float) -> Image.Image:
    """One shape on a white ``size`` x ``size`` RGB image.

    Args:
        shape (str): One of :data:`SHAPES`.
        colour (tuple[int, int, int]): RGB fill.
        size (int): Image side in pixels.
        centre (tuple[float, float]): Centre as fractions of the side.
        radius (float): Radius as a fraction of the side.
        angle (float): Rotation in radians (circles and rings ignore it).

    Returns:
        PIL.Image.Image: The drawing.
    """
    side = size * SUPERSAMPLE
    img = Image.new('RGB', (side, side), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    cx, cy, r = centre[0] * side, centre[1] * side, radius * side
    if shape in ('circle', 'ring'):
        box = (cx - r, cy - r, cx + r, cy + r)
        width = max(1, round(.32 * r)) if shape == 'ring' else 0
        if width:
            draw.ellipse(box, outline=colour, width=width)
        else:
            draw.ellipse(box, fill=colour)
    else:
        cos, sin = math.cos(angle), math.sin(angle)
        points = [(cx + r * (x * cos - y * sin), cy + r * (x * sin + y * cos))
                  for x, y in _outline(shape)]
        draw.polygon(points, fill=colour)
    return img.resize((size, size), Image.LANCZOS)


def _draw_sample(rng: np.random.RandomState, label: int,
                 size: int) -> Tuple[Image.Image, str, str]:
    """A random drawing of class ``label``: image, colour and size word."""
    colour = list(COLOURS)[rng.randint(len(COLOURS))]
    radius = rng.uniform(*RADIUS_RANGE)
    margin = radius + .03
    centre = tuple(rng.uniform(margin, 1 - margin, size=2))
    angle = rng.uniform(-MAX_ROTATION, MAX_ROTATION)
    img = draw_shape(SHAPES[label], COLOURS[colour], size, centre, radius,
                     angle)
    size_word = 'small' if radius < sum(RADIUS_RANGE) / 2 else 'large'
    return img, colour, size_word


def shape_caption(label: int, colour: str, size_word: str,
                  template: str) -> str:
    """Fill a :data:`TRAIN_TEMPLATES` entry for a drawing ("an" before a
    vowel)."""
    caption = template.format(shape=SHAPES[label], colour=colour,
                              size=size_word)
    return re.sub(r'\ba (?=[aeiou])', 'an ', caption)


def prepare_shapes(out_dir: str,
                   size: int = 32,
                   num_train: int = 150,
                   num_val: int = 40,
                   seed: int = 0) -> Dict:
    """Write the shapes dataset (see the module docstring); idempotent.

    Args:
        out_dir (str): Output folder (created).
        size (int): Side length of the PNGs. Defaults to 32.
        num_train (int): Training images per shape. Defaults to 150.
        num_val (int): Held-out images per shape. Defaults to 40.
        seed (int): Seed of the drawings and captions. Defaults to 0.

    Returns:
        dict: The ``meta.json`` content: the arguments plus ``num_train``,
        ``num_val`` (images in all) and ``skipped`` (True when identical
        data existed).
    """
    if size < 16:
        raise ConfigError(f'size={size}: shapes need at least 16 pixels.')
    if num_train < 1 or num_val < 1:
        raise ConfigError(f'num_train={num_train} and num_val={num_val} '
                          'must be at least 1 image per shape.')
    args = dict(size=int(size), num_train=int(num_train),
                num_val=int(num_val), seed=int(seed), version=FORMAT_VERSION)
    meta = current_meta(out_dir, args, OUTPUT_FILES)
    if meta is not None:
        return dict(meta, skipped=True)

    rows = {}
    # One stream per split: more training images leave the held-out ones
    # unchanged.
    for split, per_class, split_seed in (('train', num_train, seed),
                                         ('val', num_val, seed + 1)):
        rng = np.random.RandomState(split_seed)
        folder = osp.join(out_dir, 'images', split)
        os.makedirs(folder, exist_ok=True)
        labels = np.repeat(np.arange(len(SHAPES)), per_class)
        rng.shuffle(labels)
        rows[split] = []
        for i, label in enumerate(labels):
            img, colour, size_word = _draw_sample(rng, int(label), size)
            rel = f'images/{split}/{i:05d}.png'
            img.save(osp.join(out_dir, rel))
            if split == 'val':
                rows[split].append((rel, int(label)))
                continue
            template = TRAIN_TEMPLATES[rng.randint(len(TRAIN_TEMPLATES))]
            rows[split].append((rel, shape_caption(int(label), colour,
                                                   size_word, template),
                                int(label)))

    write_csv(osp.join(out_dir, 'train.csv'), ('filepath', 'title', 'label'),
              rows['train'])
    write_csv(osp.join(out_dir, 'val.csv'), ('filepath', 'label'),
              rows['val'])
    write_lines(osp.join(out_dir, 'classnames.txt'), SHAPES)
    write_lines(osp.join(out_dir, 'templates.txt'), ZERO_SHOT_TEMPLATES)
    meta = dict(args=args, num_train=len(rows['train']),
                num_val=len(rows['val']))
    write_meta(out_dir, meta)  # last: marks a complete write
    return dict(meta, skipped=False)
