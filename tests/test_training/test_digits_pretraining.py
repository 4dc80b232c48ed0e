"""Pretraining on real data shipped with scikit-learn: it learns, it resumes
exactly after a kill, and the tool produces its curves."""
import csv
import glob
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT, load_tool
from mmclip.datasets.digits import prepare_digits

# Minutes: pretrains the digits CLIP and fine-tunes it through the tools.
pytestmark = pytest.mark.slow

CONFIG = osp.join(REPO_ROOT, 'configs', 'clip',
                  'clip_vit-tiny-p8_1xb32-24e_digits-32px.py')
HERE = osp.dirname(osp.abspath(__file__))


@pytest.fixture(scope='module')
def digits_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('digits'))
    prepare_digits(root)
    return root


def read_losses(work_dir):
    """{iteration: loss} from every run logged in ``work_dir``."""
    losses = {}
    for path in sorted(glob.glob(osp.join(work_dir, '*', 'vis_data',
                                          'scalars.json'))):
        with open(path) as f:
            for line in f:
                rec = json.loads(line)
                if 'loss' in rec:
                    losses[rec['step']] = rec['loss']
    return losses


def run_tool(tool, *args, cwd=REPO_ROOT):
    """``python tools/{tool} ARGS`` in ``cwd``, as a user would."""
    cmd = [sys.executable, osp.join(REPO_ROOT, 'tools', tool), *args]
    env = dict(os.environ, PYTHONPATH=HERE + os.pathsep +
               os.environ.get('PYTHONPATH', ''))
    return subprocess.run(cmd, cwd=str(cwd), env=env, capture_output=True,
                          text=True, timeout=600)


def run_train(config, work_dir, *extra, expect_ok=True, cwd=REPO_ROOT):
    proc = run_tool('train.py', config, '--work-dir', work_dir, *extra,
                    cwd=cwd)
    if expect_ok:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def small_config(tmp_path, digits_root, kill_at=None):
    """The digits config on 256 images, batch 64 (4 iterations an epoch),
    3 epochs, a checkpoint every epoch, the loss logged every iteration."""
    with open(osp.join(digits_root, 'train.csv')) as f:
        rows = list(csv.reader(f))
    small = tmp_path / 'train_small.csv'
    with open(small, 'w', newline='') as f:
        csv.writer(f).writerows(rows[:257])
    hooks = ''
    if kill_at:
        hooks = f'''
custom_imports = dict(imports=['kill_hook'], allow_failed_imports=False)
custom_hooks = _base_.custom_hooks + [dict(type='KillAtIterHook',
                                           at_iter={kill_at})]
'''
    path = tmp_path / f'small_kill{kill_at}.py'
    path.write_text(f'''_base_ = [{CONFIG!r}]
train_dataloader = dict(batch_size=64, dataset=dict(
    data_root={digits_root!r}, ann_file={str(small)!r}))
max_epochs = 3
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, begin=0,
                        end=max_epochs, T_max=max_epochs,
                        convert_to_iter_based=True)]
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=1, max_keep_ckpts=5))
{hooks}''')
    return str(path)


def test_killed_run_resumes_to_the_uninterrupted_loss_sequence(
        tmp_path, digits_root):
    straight = str(tmp_path / 'straight')
    run_train(small_config(tmp_path, digits_root), straight)
    expected = read_losses(straight)
    assert sorted(expected) == list(range(1, 13))

    interrupted = str(tmp_path / 'interrupted')
    # SIGKILL in the middle of epoch 3 (iteration 10 of 12)
    proc = run_train(small_config(tmp_path, digits_root, kill_at=10),
                     interrupted, expect_ok=False)
    assert proc.returncode == -9
    assert osp.exists(osp.join(interrupted, 'epoch_2.pth'))
    assert not osp.exists(osp.join(interrupted, 'epoch_3.pth'))
    run_train(small_config(tmp_path, digits_root), interrupted, '--resume')
    resumed = read_losses(interrupted)
    assert sorted(resumed) == list(range(1, 13))
    for it in range(1, 13):
        assert resumed[it] == pytest.approx(expected[it], abs=1e-6), it
    assert osp.getsize(osp.join(interrupted, 'training_curves.png')) > 1000

    # The checkpoint copied to another folder resumes, from yet another
    # working directory, into a new work dir: same losses (the message hub,
    # optimizer and RNG states are plain data, read with weights_only=True).
    moved = tmp_path / 'moved'
    moved.mkdir()
    shutil.copy(osp.join(interrupted, 'epoch_2.pth'), moved)
    elsewhere = tmp_path / 'cwd'
    elsewhere.mkdir()
    new_dir = str(tmp_path / 'new_dir')
    run_train(small_config(tmp_path, digits_root), new_dir, '--resume',
              str(moved / 'epoch_2.pth'), cwd=elsewhere)
    continued = read_losses(new_dir)
    assert sorted(continued) == list(range(9, 13))
    for it in range(9, 13):
        assert continued[it] == pytest.approx(expected[it], abs=1e-6), it


@pytest.fixture(scope='module')
def pretrained_digits(tmp_path_factory, digits_root):
    """The demo's digits pretraining (the full tiny config, from scratch),
    run once for the tests below: ``(demo module, its args, zero-shot
    accuracy)``. Two threads whatever the load: float sums, and so the
    numbers, depend on the thread count."""
    demo = load_tool('demo.py')
    args = demo.parse_args([
        '--skip-digits', '--data-root', digits_root, '--threads', '2',
        '--work-dir', str(tmp_path_factory.mktemp('wd'))])
    return demo, args, demo.pretrain_digits(args)


def test_digits_zero_shot_top1_at_least_85(tmp_path, digits_root,
                                           pretrained_digits, capsys):
    """The full tiny config, from scratch: >= 85 % zero-shot top-1 on the
    held-out digits, with prompts that never occur in training captions."""
    from PIL import Image

    from mmclip.datasets.digits import (CLASSNAMES, TRAIN_TEMPLATES,
                                        ZERO_SHOT_TEMPLATES, train_caption)
    train_captions = {train_caption(d, t) for d in range(10)
                      for t in TRAIN_TEMPLATES}
    prompts = {t.format(c) for t in ZERO_SHOT_TEMPLATES for c in CLASSNAMES}
    assert not any(p.rstrip('.') in train_captions or p in train_captions
                   for p in prompts)

    _, args, acc = pretrained_digits
    print(f'digits zero-shot: {acc}')
    assert acc['top1'] >= 85.0
    png = osp.join(args.work_dir, 'training_curves.png')
    assert Image.open(png).size[0] >= 500

    # The run's own full training checkpoint (message hub, optimizer, RNG
    # states) serves inference from anywhere: its weights are read without
    # executing anything, and give the same zero-shot predictions.
    from mmclip.apis import get_model, inference_model
    ckpt = osp.join(args.work_dir, 'epoch_24.pth')
    model = get_model('clip_vit-tiny-p8_zeroshot-cls_digits-32px',
                      pretrained=ckpt,
                      cfg_options={'model.predict_head.cache_dir': None})
    with open(osp.join(digits_root, 'val.csv')) as f:
        rows = list(csv.DictReader(f))
    results = inference_model(
        model, [osp.join(digits_root, r['filepath']) for r in rows],
        progress=False)
    top1 = 100 * sum(res['pred_label'] == int(r['label'])
                     for res, r in zip(results, rows)) / len(rows)
    # Same images right (one image is 0.28 %; acc is float32 arithmetic).
    assert top1 == pytest.approx(acc['top1'], abs=1e-3)
    # tools/test.py evaluates that checkpoint from any folder (mmengine's
    # loader reads it with weights_only=True) and reports the same top-1.
    elsewhere = tmp_path / 'somewhere_else'
    elsewhere.mkdir()
    proc = run_tool(
        'test.py', osp.join(REPO_ROOT, 'configs', 'clip',
                            'clip_vit-tiny-p8_zeroshot-cls_digits-32px.py'),
        ckpt, '--cfg-options',
        f'test_dataloader.dataset.data_root={digits_root}',
        f'test_dataloader.dataset.classes={digits_root}/classnames.txt',
        'model.predict_head.cache_dir=None', cwd=elsewhere)
    assert proc.returncode == 0, proc.stderr[-3000:]
    top1_line = [line for line in proc.stdout.splitlines()
                 if line.startswith('accuracy/top1:')]
    assert float(top1_line[0].split(':')[1]) == pytest.approx(
        acc['top1'], abs=1e-3)

    # The CLI with that checkpoint on scikit-image's photos.
    from skimage import data
    photos = tmp_path / 'photos'
    photos.mkdir()
    for name in ('astronaut', 'chelsea', 'coffee', 'rocket'):
        Image.fromarray(getattr(data, name)()).save(photos / f'{name}.jpg')
    tool = __import__('conftest').load_tool('inference.py')
    capsys.readouterr()
    assert tool.main([str(photos), '--model',
                      'clip_vit-tiny-p8_zeroshot-cls_digits-32px',
                      '--checkpoint', ckpt, '--cfg-options',
                      'model.predict_head.cache_dir=None']) == 0
    out = capsys.readouterr().out
    assert f'checkpoint: {ckpt} (loaded)' in out
    assert 'random weights' not in out
    assert sum(f'{n}.jpg' in out
               for n in ('astronaut', 'chelsea', 'coffee', 'rocket')) == 4


def test_digits_classifier_table(pretrained_digits, capsys):
    """The demo's classifiers of that CLIP: the zero-shot head (the
    zero-shot evaluation's classifier, the fine-tune's start), the linear
    probe, the full fine-tune, WiSE-FT and FLYP, on the held-out and the
    noisy digits."""
    demo, args, zero_shot = pretrained_digits
    capsys.readouterr()
    table = demo.fine_tune_digits(
        args, osp.join(args.work_dir, 'epoch_24.pth'))
    printed = capsys.readouterr().out
    with capsys.disabled():
        print(f'digits classifiers: {table}')
    assert table['zero-shot']['held-out'] == pytest.approx(
        zero_shot['top1'], abs=1e-3)
    # In distribution the digits are nearly saturated: over seeds, CPUs and
    # thread counts the fine-tune scored from 2 digits of 359 below to 3
    # above zero-shot (docs/fine_tuning.md#the-demos-table; it tied on this
    # test's Intel run), so it must stay within a point, and the weight
    # average gained in every run measured. Off distribution, on the noisy
    # copy, fine-tuning loses points and WiSE-FT keeps part of the zero-shot
    # robustness (the trade-off WiSE-FT exists for).
    assert table['full fine-tune']['held-out'] >= \
        table['zero-shot']['held-out'] - 1.0
    assert table['WiSE-FT alpha=0.5']['held-out'] > \
        table['zero-shot']['held-out']
    assert table['zero-shot']['noisy'] > table['WiSE-FT alpha=0.5']['noisy'] \
        > table['full fine-tune']['noisy']
    assert table['linear probe']['held-out'] > 50
    # FLYP trains with the pretraining's loss on captions of the class
    # names and classifies with the zero-shot head it keeps: measured with
    # this seed on an Intel Xeon, it tied zero-shot in distribution (98.3)
    # and on the noisy copy kept 4.7 points more than the fine-tune (78.8
    # vs 74.1, zero-shot 77.2; docs/fine_tuning.md#the-demos-table).
    assert table['FLYP']['held-out'] >= table['zero-shot']['held-out'] - 1.0
    assert table['FLYP']['noisy'] > table['full fine-tune']['noisy']
    # One table: a row per classifier, a column per test set.
    for name, row in table.items():
        assert set(row) == {'held-out', 'noisy'}
        line = [ln for ln in printed.splitlines()
                if ln.startswith(f'| {name} ')]
        assert len(line) == 1
        assert line[0].endswith(
            f'| {row["held-out"]:>8.1f} | {row["noisy"]:>8.1f} |')


SHAPES_FT = osp.join(REPO_ROOT, 'configs', 'clip',
                     'clip_vit-tiny-p8_caption-ft-1xb32-5e_shapes-32px.py')
DIGITS_ZERO_SHOT = osp.join(REPO_ROOT, 'configs', 'clip',
                            'clip_vit-tiny-p8_zeroshot-cls_digits-32px.py')


def zero_shot_top1(config, checkpoint, data_root):
    """``tools/test.py`` top-1 of ``checkpoint`` on ``data_root``'s
    ``val.csv`` and ``classnames.txt``, two threads."""
    proc = run_tool(
        'test.py', config, checkpoint, '--threads', '2', '--cfg-options',
        f'test_dataloader.dataset.data_root={data_root}',
        f'test_dataloader.dataset.classes={data_root}/classnames.txt',
        'model.predict_head.cache_dir=None')
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines()
            if ln.startswith('accuracy/top1:')]
    return float(line[0].split(':')[1])


def test_caption_fine_tune_teaches_shapes_and_keeps_digits(
        tmp_path, digits_root, pretrained_digits, capsys):
    """docs/own_data.md's CPU example through the tools: the digits CLIP
    caption-fine-tuned on coloured shapes (with digits captions replayed)
    classifies shapes zero-shot far better than before, still knows its
    digits, and WiSE-FT alpha=0.5 keeps at least as much of the digits."""
    from mmclip.datasets.shapes import prepare_shapes
    _, args, _ = pretrained_digits
    pretrained = osp.join(args.work_dir, 'epoch_24.pth')
    shapes_root = str(tmp_path / 'shapes')
    prepare_shapes(shapes_root)
    work_dir = str(tmp_path / 'shapes_ft')
    run_train(SHAPES_FT, work_dir, '--threads', '2', '--cfg-options',
              f'load_from={pretrained}',
              f'train_dataloader.dataset.datasets.0.data_root={shapes_root}',
              f'train_dataloader.dataset.datasets.1.data_root={digits_root}',
              f'val_dataloader.dataset.data_root={shapes_root}',
              f'val_dataloader.dataset.classes={shapes_root}/classnames.txt')
    tuned = osp.join(work_dir, 'epoch_5.pth')
    wise = str(tmp_path / 'wise_ft.pth')
    proc = run_tool('model_converters/wise_ft.py', pretrained, tuned, wise,
                    '--alpha', '0.5')
    assert proc.returncode == 0, proc.stderr[-3000:]
    top1 = {name: (zero_shot_top1(SHAPES_FT, ckpt, shapes_root),
                   zero_shot_top1(DIGITS_ZERO_SHOT, ckpt, digits_root))
            for name, ckpt in (('pretrained', pretrained),
                               ('fine-tuned', tuned), ('WiSE-FT', wise))}
    with capsys.disabled():
        print(f'(shapes, digits) zero-shot top-1: {top1}')
    (shapes_before, digits_before), (shapes_after, digits_after), \
        (shapes_wise, digits_wise) = top1.values()
    # Measured on an Intel Xeon, 2 threads: shapes 14.6 -> 45.4 (chance
    # 16.7: the digits CLIP does not know them), digits 98.3 -> 98.1,
    # WiSE-FT 33.8 / 98.9 (docs/own_data.md).
    assert shapes_after >= 2 * shapes_before
    assert shapes_after >= shapes_before + 20
    assert digits_after >= digits_before - 3
    assert digits_wise >= digits_after
    assert shapes_before < shapes_wise < shapes_after


#: The small-data fine-tuning recipe a user's config for a new task inherits.
SMALL_DATA_RECIPE = osp.join(
    REPO_ROOT, 'configs', 'clip',
    'clip_vit-tiny-p8_ft-small-data-1xb32-10e_digits-32px.py')


def test_small_data_recipe_beats_the_linear_probe_on_a_new_task(
        tmp_path, pretrained_digits):
    """A user's config for a new 16-class task that inherits the digits
    fine-tune recipe (the mirrored digits: 960 labelled images, 6 classes
    the CLIP's captions never named), trained and tested through the tools,
    scores at least the linear probe of the same frozen tower
    (``docs/fine_tuning.md``, "Small data")."""
    _, args, _ = pretrained_digits
    clip = osp.join(args.work_dir, 'epoch_24.pth')
    data = str(tmp_path / 'mirrored')
    proc = run_tool('dataset_converters/prepare_mirrored_digits.py', data)
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = tmp_path / 'mirrored_ft.py'
    config.write_text(f'''_base_ = [{SMALL_DATA_RECIPE!r}]
data_root = {data!r}
classes = data_root + '/classnames.txt'
model = dict(head=dict(num_classes=16),
             init_cfg=dict(checkpoint={clip!r}, classnames=classes,
                           cache_dir=None))
train_dataloader = dict(dataset=dict(data_root=data_root, classes=classes))
val_dataloader = dict(dataset=dict(data_root=data_root, classes=classes))
test_dataloader = dict(dataset=dict(data_root=data_root, classes=classes))
''')
    work_dir = str(tmp_path / 'ft')
    # Two threads whatever the load: the accuracy depends on the count.
    run_train(str(config), work_dir, '--threads', '2')
    proc = run_tool('test.py', str(config),
                    osp.join(work_dir, 'epoch_10.pth'))
    assert proc.returncode == 0, proc.stderr[-3000:]
    top1 = [line for line in proc.stdout.splitlines()
            if line.startswith('accuracy/top1:')]
    fine_tuned = float(top1[0].split(':')[1])
    probe_json = str(tmp_path / 'probe.json')
    proc = run_tool('analysis_tools/linear_probe.py', str(config), clip,
                    '--out', probe_json)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(probe_json) as f:
        probe = json.load(f)
    assert probe['num_samples'] == {'train': 960, 'test_dataloader': 448}
    print(f'mirrored digits: fine-tune {fine_tuned:.2f}, '
          f'linear probe {probe["top1"]:.2f}')
    # Measured on this task over seeds 0-3: the recipe 97.3-98.0, the probe
    # 95.1; the digits' earlier recipe (lr 1e-4, batch 64) 68.1.
    assert fine_tuned >= probe['top1']


def test_search_finds_digits_by_text_and_by_image(tmp_path, digits_root,
                                                  pretrained_digits, capsys):
    """The trained digits CLIP behind the search: its 359 held-out digits
    indexed through tools/search/index.py; a text query names a digit in
    the zero-shot templates' words, an image query is another held-out
    digit. Precision@10: the share of the top 10 of that digit (chance:
    0.1)."""
    from mmclip.apis import ImageSearch
    from mmclip.datasets.digits import CLASSNAMES, ZERO_SHOT_TEMPLATES
    _, args, _ = pretrained_digits
    ckpt = osp.join(args.work_dir, 'epoch_24.pth')
    index = str(tmp_path / 'digits_index')
    proc = run_tool('search/index.py', osp.join(digits_root, 'val.csv'),
                    '--out', index, '--model', DIGITS_ZERO_SHOT,
                    '--checkpoint', ckpt, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'digits_index: 359 images (359 added' in proc.stdout
    with open(osp.join(digits_root, 'val.csv')) as f:
        label_of = {osp.normpath(osp.join(digits_root, r['filepath'])):
                    int(r['label']) for r in csv.DictReader(f)}
    search = ImageSearch(index)

    def precision(hits, digit):
        return sum(label_of[h['image_path']] == digit for h in hits) / 10

    by_text = [precision(search.query_text(t.format(name), k=10), digit)
               for digit, name in enumerate(CLASSNAMES)
               for t in ZERO_SHOT_TEMPLATES]
    queries = sorted(label_of)[::7]  # 52 held-out digits as queries
    by_image = [precision(search.query_image(q, k=11)[1:], label_of[q])
                for q in queries]  # the first hit is the query itself
    text_p10, image_p10 = np.mean(by_text), np.mean(by_image)
    with capsys.disabled():
        print(f'digits search precision@10: text {text_p10:.3f}, '
              f'image {image_p10:.3f}')
    # Measured with this seed, 2 threads, on an Intel Xeon: text 0.817 (one
    # template per query, no ensemble as the zero-shot head has), image
    # 0.948. The bounds leave room for other CPUs and stay far above chance.
    assert text_p10 >= 0.7 and image_p10 >= 0.85
