"""The coloured-shapes caption set (mmclip.datasets.shapes) and its command
line: what it writes, that captions and prompts say what is drawn, that
the prompts are new to the captions, and that a rerun does nothing."""
import csv
import os
import os.path as osp
import re

import numpy as np
import pytest
from PIL import Image

from conftest import load_tool
from mmclip.datasets import ImageTextDataset
from mmclip.datasets.digits import TRAIN_TEMPLATES as DIGIT_CAPTIONS
from mmclip.datasets.digits import ZERO_SHOT_TEMPLATES as DIGIT_PROMPTS
from mmclip.datasets.shapes import (COLOURS, SHAPES, TRAIN_TEMPLATES,
                                    ZERO_SHOT_TEMPLATES, draw_shape,
                                    prepare_shapes)
from mmclip.datasets.zero_shot_data import (resolve_classnames,
                                            resolve_templates)


def read_csv(path):
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope='module')
def shapes(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('shapes'))
    return root, prepare_shapes(root, num_train=5, num_val=3)


def test_layout_and_counts(shapes):
    root, meta = shapes
    assert not meta['skipped']
    assert (meta['num_train'], meta['num_val']) == (5 * len(SHAPES),
                                                    3 * len(SHAPES))
    train = read_csv(osp.join(root, 'train.csv'))
    val = read_csv(osp.join(root, 'val.csv'))
    assert list(train[0]) == ['filepath', 'title', 'label']
    assert list(val[0]) == ['filepath', 'label']
    # every shape as often in each split
    for rows, per_class in ((train, 5), (val, 3)):
        counts = np.bincount([int(r['label']) for r in rows],
                             minlength=len(SHAPES))
        assert counts.tolist() == [per_class] * len(SHAPES)
    for row in train + val:
        img = Image.open(osp.join(root, row['filepath']))
        assert img.size == (32, 32) and img.mode == 'RGB'
    with open(osp.join(root, 'classnames.txt')) as f:
        assert tuple(f.read().split('\n')[:-1]) == SHAPES
    assert resolve_classnames('shapes') == SHAPES
    assert resolve_templates(osp.join(root, 'templates.txt')) == \
        resolve_templates('shapes') == ZERO_SHOT_TEMPLATES
    # open_clip's caption CSV, as a user's own data reads
    dataset = ImageTextDataset('train.csv', data_root=root)
    assert len(dataset) == len(train)


def test_captions_name_the_drawn_shape(shapes):
    root, _ = shapes
    for row in read_csv(osp.join(root, 'train.csv')):
        words = row['title'].split()
        assert SHAPES[int(row['label'])] in words
        assert not re.search(r'\ba [aeiou]', row['title']), row['title']
        others = set(SHAPES) - {SHAPES[int(row['label'])]}
        assert not others & set(words)


def test_prompts_are_new_to_every_caption():
    """Zero-shot prompts share no phrasing with the shapes' captions, and
    the shapes' captions none with the digits' captions and prompts (so
    what the digits CLIP knew and what it learns stay apart)."""
    filled = [t.format(colour='red', shape='{}', size='small')
              for t in TRAIN_TEMPLATES]
    assert not set(ZERO_SHOT_TEMPLATES) & set(filled)
    digit_words = {w for t in DIGIT_CAPTIONS + DIGIT_PROMPTS
                   for w in t.replace('{}', ' ').replace('.', ' ').split()
                   if '{' not in w}
    shape_words = {w for t in TRAIN_TEMPLATES
                   for w in t.split() if '{' not in w}
    assert shape_words & digit_words <= {'a', 'of'}


def test_drawings_differ_by_shape_and_take_the_colour():
    pixels = {}
    for shape in SHAPES:
        img = np.asarray(draw_shape(shape, COLOURS['blue'], 32, (.5, .5),
                                    .4, 0.))
        ink = (img < 200).any(-1)
        assert 40 < ink.sum() < 32 * 32 * .8, shape
        # the ink is blue
        assert img[ink][:, 2].mean() > img[ink][:, 0].mean() + 40, shape
        pixels[shape] = ink
    for a in SHAPES:
        for b in SHAPES:
            if a < b:
                assert (pixels[a] != pixels[b]).sum() > 20, (a, b)


def written_files(root):
    """``{relative path: bytes}`` of everything under ``root``."""
    files = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = osp.join(folder, name)
            with open(path, 'rb') as f:
                files[osp.relpath(path, root)] = f.read()
    return files


def test_same_seed_same_files(shapes, tmp_path):
    root, _ = shapes
    again = str(tmp_path / 'again')
    prepare_shapes(again, num_train=5, num_val=3)
    assert written_files(again) == written_files(root)
    other = str(tmp_path / 'other')
    prepare_shapes(other, num_train=5, num_val=3, seed=1)
    other_files = written_files(other)
    assert other_files.keys() == written_files(root).keys()
    assert other_files['train.csv'] != written_files(root)['train.csv']
    # more training images leave the held-out ones as they were
    more = str(tmp_path / 'more')
    prepare_shapes(more, num_train=7, num_val=3)
    held_out = {k: v for k, v in written_files(root).items()
                if 'val' in k}
    assert held_out == {k: v for k, v in written_files(more).items()
                        if 'val' in k}


def test_written_captions_never_hold_a_prompt(shapes):
    root, _ = shapes
    prompts = [t.format(shape).rstrip('.') for t in ZERO_SHOT_TEMPLATES
               for shape in SHAPES]
    for row in read_csv(osp.join(root, 'train.csv')):
        for prompt in prompts:
            assert prompt not in row['title'], (prompt, row['title'])


def test_rerun_and_cli(shapes, tmp_path, capsys):
    root, meta = shapes
    before = {path: os.stat(osp.join(root, path)).st_mtime_ns
              for path in written_files(root)}
    assert prepare_shapes(root, num_train=5, num_val=3)['skipped']
    assert before == {path: os.stat(osp.join(root, path)).st_mtime_ns
                      for path in written_files(root)}
    tool = load_tool('dataset_converters/prepare_shapes.py')
    out = str(tmp_path / 's')
    argv = [out, '--size', '24', '--num-train', '2', '--num-val', '1']
    assert tool.main(argv) == 0 and tool.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    counts = f'{2 * len(SHAPES)} train / {len(SHAPES)} val images'
    assert lines == [f'{out}: {counts}, written.',
                     f'{out}: {counts}, already up to date.']
    assert tool.main([out, '--size', '8']) == 1
    assert capsys.readouterr().err == (
        'error: size=8: shapes need at least 16 pixels.\n')
