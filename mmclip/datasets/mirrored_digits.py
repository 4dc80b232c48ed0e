"""A small labelled task that the digits CLIP knows only in part: the ten
digits plus the mirror images of six of them as six classes of their own.

:func:`prepare_mirrored_digits` (``tools/dataset_converters/
prepare_mirrored_digits.py`` is its command line) writes, from
scikit-learn's 8x8 digits, 16 classes of upscaled RGB PNGs (dark ink on
white, as :func:`mmclip.datasets.digits.prepare_digits` draws them):

- ``zero`` .. ``nine``: the digits as written;
- ``mirrored two`` .. ``mirrored seven`` (:data:`MIRRORED_DIGITS`): the
  same digits flipped left to right, drawn from other images of the digit
  than its upright class.

No pretraining caption of the digits CLIP says "mirrored", so its
zero-shot head cannot tell a class from its mirrored twin (the prompts of
both name the same digit) and is weak on this task, while the image tower
sees the difference plainly. It is the kind of new task on which a
fine-tuning recipe tuned on the near-saturated digits can lose to a linear
probe of the frozen tower (``docs/fine_tuning.md``, "Small data").

Files, in the output folder (``data_root``):

- ``train.csv`` (``filepath,label``): ``train_per_class`` images of every
  class (960 with the defaults);
- ``val.csv`` (``filepath,label``): ``val_per_class`` other images of
  every class;
- ``classnames.txt``: the 16 names above, in label order;
- ``meta.json``: the arguments; the same arguments again write nothing.
"""
import os
import os.path as osp
from typing import Dict

import numpy as np

from mmclip.errors import ConfigError
from .digits import CLASSNAMES as DIGIT_NAMES
from .digits import digit_image
from .prepared_files import current_meta, write_csv, write_lines, write_meta

#: Digits whose mirror image is a class too: six that mirroring changes
#: (a mirrored 0, 1 or 8 looks like itself), for 16 classes in all.
MIRRORED_DIGITS = (2, 3, 4, 5, 6, 7)

#: The 16 class names, in label order: the digits, then the mirrored ones.
CLASSNAMES = DIGIT_NAMES + tuple(f'mirrored {DIGIT_NAMES[d]}'
                                 for d in MIRRORED_DIGITS)

#: Bumped when the written files change, so old outputs are rewritten.
FORMAT_VERSION = 1
#: Files that make a complete output folder (``meta.json`` is written last).
OUTPUT_FILES = ('train.csv', 'val.csv', 'classnames.txt')


def class_pools(labels: np.ndarray,
                rng: np.random.RandomState) -> Dict[int, np.ndarray]:
    """Indices of the source digits for every class of :data:`CLASSNAMES`:
    a mirrored digit's images are split at random between its upright and
    its mirrored class, so no image is in both.

    Args:
        labels (np.ndarray): ``(N, )`` digit of every source image.
        rng (np.random.RandomState): Shuffles the images.

    Returns:
        dict[int, np.ndarray]: Class label -> shuffled image indices.
    """
    pools = {}
    for digit in range(len(DIGIT_NAMES)):
        idx = np.flatnonzero(labels == digit)
        rng.shuffle(idx)
        if digit in MIRRORED_DIGITS:
            mirrored = len(DIGIT_NAMES) + MIRRORED_DIGITS.index(digit)
            pools[digit], pools[mirrored] = idx[0::2], idx[1::2]
        else:
            pools[digit] = idx
    return pools


def prepare_mirrored_digits(out_dir: str,
                            size: int = 32,
                            train_per_class: int = 60,
                            val_per_class: int = 28,
                            seed: int = 0) -> Dict:
    """Write the mirrored-digits task (see the module docstring);
    idempotent.

    Args:
        out_dir (str): Output folder (created).
        size (int): Side length of the PNGs. Defaults to 32.
        train_per_class (int): Training images per class. Defaults to 60
            (960 in all).
        val_per_class (int): Held-out images per class. Defaults to 28
            (448 in all).
        seed (int): Seed of the split. Defaults to 0.

    Returns:
        dict: The ``meta.json`` content: the arguments plus ``num_train``,
        ``num_val`` and ``skipped`` (True when identical data existed).

    Raises:
        ConfigError: More images per class than the smallest class has
            (scikit-learn has 88 of a mirrored digit's half).
    """
    from sklearn.datasets import load_digits
    args = dict(size=int(size), train_per_class=int(train_per_class),
                val_per_class=int(val_per_class), seed=int(seed),
                version=FORMAT_VERSION)
    meta = current_meta(out_dir, args, OUTPUT_FILES)
    if meta is not None:
        return dict(meta, skipped=True)

    digits = load_digits()
    pools = class_pools(digits.target, np.random.RandomState(seed))
    available = min(len(p) for p in pools.values())
    if min(train_per_class, val_per_class) < 1 or \
            train_per_class + val_per_class > available:
        raise ConfigError(
            f'train_per_class + val_per_class must be at most {available} '
            f'(the smallest class), each at least 1; got {train_per_class} '
            f'+ {val_per_class}.')
    os.makedirs(osp.join(out_dir, 'images'), exist_ok=True)
    rows = {'train': [], 'val': []}
    for label, pool in sorted(pools.items()):
        mirror = label >= len(DIGIT_NAMES)
        chosen = pool[:train_per_class + val_per_class]
        for k, i in enumerate(chosen):
            pixels = digits.images[i]
            rel = f'images/{label:02d}_{i:04d}.png'
            digit_image(pixels[:, ::-1] if mirror else pixels, size,
                        'bilinear').save(osp.join(out_dir, rel))
            split = 'train' if k < train_per_class else 'val'
            rows[split].append((rel, label))
    for split, split_rows in rows.items():
        write_csv(osp.join(out_dir, f'{split}.csv'), ('filepath', 'label'),
                  split_rows)
    meta = dict(args=args, num_train=len(rows['train']),
                num_val=len(rows['val']))
    write_lines(osp.join(out_dir, 'classnames.txt'), CLASSNAMES)
    write_meta(out_dir, meta)  # last: marks a complete write
    return dict(meta, skipped=False)
