"""The zero-shot suite (mmclip.evaluation.zero_shot_suite and
tools/analysis_tools/zero_shot_suite.py) on small generated datasets in
clip_benchmark's webdataset export format and as class folders, with the
tiny digits CLIP (random weights)."""
import csv
import io
import json
import math
import os
import os.path as osp
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO_ROOT, load_tool
from mmclip.evaluation.zero_shot_suite import (DATASETS, SuiteDataset,
                                               classification_metrics,
                                               evaluate_suite, find_dataset,
                                               resolve_datasets)

CONFIG = osp.join(REPO_ROOT, 'configs', 'clip',
                  'clip_vit-tiny-p8_zeroshot-cls_digits-32px.py')
COLOURS = ('red', 'green', 'blue', 'yellow', 'white', 'black')
RGB = dict(red=(255, 0, 0), green=(0, 255, 0), blue=(0, 0, 255),
           yellow=(255, 255, 0), white=(255, 255, 255), black=(0, 0, 0))


def _png(colour: str, shade: int = 0) -> bytes:
    rgb = tuple(max(0, c - shade) for c in RGB[colour])
    buf = io.BytesIO()
    Image.new('RGB', (40, 36), rgb).save(buf, format='PNG')
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_wds_export(folder: str, per_class: int = 2, shards: int = 2,
                     corrupt: tuple = (), classnames=COLOURS) -> list:
    """clip_benchmark's export layout: ``test/{i}.tar`` + ``nshards.txt``,
    ``classnames.txt``, templates with ``{c}``. Returns the labels."""
    os.makedirs(osp.join(folder, 'test'))
    samples = [(i, label) for i, label in enumerate(
        label for label in range(len(COLOURS)) for _ in range(per_class))]
    for shard in range(shards):
        with tarfile.open(osp.join(folder, 'test', f'{shard}.tar'),
                          'w') as tar:
            for index, label in samples[shard::shards]:
                key = f's{index:07d}'
                image = (b'not an image' if key in corrupt else _png(
                    COLOURS[label], 40 * index % 120))
                _add(tar, f'{key}.png', image)
                _add(tar, f'{key}.cls', str(label).encode())
    with open(osp.join(folder, 'test', 'nshards.txt'), 'w') as f:
        f.write(f'{shards}\n')
    with open(osp.join(folder, 'classnames.txt'), 'w') as f:
        f.write('\n'.join(classnames) + '\n')
    with open(osp.join(folder, 'zeroshot_classification_templates.txt'),
              'w') as f:
        f.write('a photo of a {c} square.\na {c} thing.\n')
    return [label for _, label in samples]


@pytest.fixture(scope='module')
def model():
    from mmclip.apis import get_model
    torch.manual_seed(0)
    return get_model(CONFIG)


def _evaluate(model, specs, root, out, encode_calls=None, **kwargs):
    from mmclip.apis.preprocess import build_eval_transform, collate_images

    def encode(packed):
        if encode_calls is not None:
            encode_calls.append(len(packed))
        return model.encode_image(collate_images(model, packed))

    return evaluate_suite(model, specs, str(root), str(out),
                          build_eval_transform(model), encode, 'tiny',
                          'random', cache_dir=str(out / 'zs_cache'),
                          num_workers=1, **kwargs)


def test_metrics_match_a_hand_computation():
    # 4 samples, 5 classes; labels 0, 1, 1, 3.
    logits = torch.tensor([
        [9., 1., 2., 3., 4.],   # label 0: top-1 hit
        [1., 2., 9., 3., 4.],   # label 1: ranked 5th -> top-5 hit only
        [1., 9., 2., 3., 4.],   # label 1: top-1 hit
        [9., 8., 7., 6., 1.],   # label 3: 4th -> top-5 hit only
    ])
    labels = np.array([0, 1, 1, 3])
    metrics = classification_metrics(logits, labels)
    assert metrics['acc1'] == 2 / 4
    # With 5 classes every label is in the top 5.
    assert metrics['acc5'] == 1.0
    # Recall per class present: class 0 1/1, class 1 1/2, class 3 0/1.
    assert metrics['mean_per_class_recall'] == pytest.approx(
        (1 + 0.5 + 0) / 3)


def test_recall_is_scikit_learns_balanced_accuracy():
    # clip_benchmark's mean_per_class_recall is balanced_accuracy_score.
    from sklearn.metrics import balanced_accuracy_score
    rng = np.random.default_rng(0)
    logits = torch.from_numpy(rng.normal(size=(200, 7)))
    labels = rng.integers(0, 6, size=200)  # class 6 never a label
    assert classification_metrics(logits, labels)[
        'mean_per_class_recall'] == pytest.approx(
            balanced_accuracy_score(labels, logits.argmax(1).numpy()),
            abs=1e-12)


def test_acc5_is_nan_below_five_classes():
    metrics = classification_metrics(torch.eye(3), np.array([0, 1, 2]))
    assert metrics['acc1'] == 1.0 and math.isnan(metrics['acc5'])


def test_names_and_collections_resolve_in_clip_benchmarks_terms():
    specs = resolve_datasets(['cifar100', 'imagenet_robustness', 'cifar100'])
    assert [s.name for s in specs] == [
        'cifar100', 'imagenetv2', 'imagenet_sketch', 'imagenet-a',
        'imagenet-r', 'objectnet'
    ]
    assert SuiteDataset('vtab/dtd').wds_folder == 'wds_vtab-dtd'
    assert 'imagenet/val/ (one folder of images per class, or the images ' \
        'listed in meta/val.txt' in DATASETS['imagenet1k'].where()
    assert 'KEY.txt, its captions' in DATASETS['flickr30k'].where()
    assert [s.name for s in resolve_datasets(['retrieval'])] == [
        'mscoco_captions', 'flickr8k', 'flickr30k'
    ]


def test_wds_export_is_read_with_its_lists(tmp_path):
    labels = write_wds_export(str(tmp_path / 'wds_colours'))
    data = find_dataset(SuiteDataset('colours'), str(tmp_path))
    assert data.classnames == COLOURS
    assert data.templates == ('a photo of a {} square.', 'a {} thing.')
    samples = list(data.samples())
    # Shard order: shard 0's samples, then shard 1's.
    assert sorted(label for _, _, label in samples) == sorted(labels)
    assert all(isinstance(image, bytes) for _, image, _ in samples)
    assert not data.read_errors


def test_tool_writes_clip_benchmark_files_and_lists_missing(
        tmp_path, capsys):
    write_wds_export(str(tmp_path / 'data' / 'wds_colours'))
    tool = load_tool('analysis_tools/zero_shot_suite.py')
    out = tmp_path / 'out'
    assert tool.main([
        CONFIG, '--datasets', 'colours,imagenet-r,cifar100', '--data-root',
        str(tmp_path / 'data'), '--out', str(out), '--cache-dir',
        str(tmp_path / 'cache'), '--num-workers', '1'
    ]) == 0
    stdout = capsys.readouterr().out
    with open(out / 'colours_random_clip_vit-tiny-p8_zeroshot-cls_digits-'
              '32px_en_zeroshot_classification.json') as f:
        record = json.load(f)
    assert list(record) == [
        'dataset', 'model', 'pretrained', 'task', 'metrics', 'language'
    ]
    assert record['dataset'] == 'colours'
    assert record['task'] == 'zeroshot_classification'
    assert sorted(record['metrics']) == [
        'acc1', 'acc5', 'mean_per_class_recall'
    ]
    with open(out / 'benchmark.csv') as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1
    assert set(rows[0]) == {
        'dataset', 'model', 'pretrained', 'task', 'language',
        'model_fullname', 'acc1', 'acc5', 'mean_per_class_recall'
    }
    assert float(rows[0]['acc1']) == record['metrics']['acc1']
    assert '| colours |' in stdout and '| 12 | 0 |' in stdout
    # Missing datasets are listed with where to put them, not fetched.
    assert '- imagenet-r: imagenet-r/ (one folder of images per class' \
        in stdout and ' or wds_imagenet-r/ (' in stdout
    assert '- cifar100: cifar100/ (torchvision' in stdout
    assert np.load(out / 'colours_features.npy').shape[0] == 12


def test_second_run_reuses_features_and_rescores(model, tmp_path):
    write_wds_export(str(tmp_path / 'data' / 'wds_colours'))
    specs = [SuiteDataset('colours')]
    calls = []
    first = _evaluate(model, specs, tmp_path / 'data', tmp_path, calls)
    assert calls and first.reused == []
    calls.clear()
    again = _evaluate(model, specs, tmp_path / 'data', tmp_path, calls)
    assert calls == [] and again.reused == ['colours']
    assert again.records == first.records
    # Other templates: scored from the kept features, still no encoding.
    other = _evaluate(model, specs, tmp_path / 'data', tmp_path, calls,
                      overrides=dict(templates={'*': ['{} colour']}))
    assert calls == [] and other.reused == ['colours']
    # Changed weights: the features are computed again.
    with torch.no_grad():
        model.backbone.ln_post.weight.add_(1.)
    try:
        _evaluate(model, specs, tmp_path / 'data', tmp_path, calls)
    finally:
        with torch.no_grad():
            model.backbone.ln_post.weight.sub_(1.)
    assert calls


def test_corrupt_image_and_truncated_shard_are_counted_and_named(
        model, tmp_path):
    write_wds_export(str(tmp_path / 'data' / 'wds_colours'),
                     corrupt=('s0000002', ))
    shard = tmp_path / 'data' / 'wds_colours' / 'test' / '1.tar'
    # Cut shard 1 after its second sample's image (a member boundary:
    # tarfile and webdataset read such a shard without an error).
    shard.write_bytes(shard.read_bytes()[:3072])
    report = _evaluate(model, [SuiteDataset('colours')], tmp_path / 'data',
                       tmp_path)
    skipped = report.skipped['colours']
    assert any(s.startswith('s0000002: ') for s in skipped)
    assert any(s.endswith('1.tar: truncated (no end-of-archive blocks); '
                          'its samples after the cut are missing: export or '
                          'copy it again') for s in skipped)
    assert report.counts['colours']['skipped'] == len(skipped)
    # Shard 0's 6 samples less the corrupt one, and shard 1's first (its
    # second lost its label in the cut: named too).
    assert any(s.startswith('s0000003: ') for s in skipped)
    assert report.counts['colours']['samples'] == 6


def test_class_list_shorter_than_labels_is_one_error_line(tmp_path, capsys):
    write_wds_export(str(tmp_path / 'data' / 'wds_colours'),
                     classnames=COLOURS[:4])
    tool = load_tool('analysis_tools/zero_shot_suite.py')
    assert tool.main([
        CONFIG, '--datasets', 'colours', '--data-root',
        str(tmp_path / 'data'), '--out', str(tmp_path / 'out'),
        '--cache-dir', str(tmp_path / 'cache'), '--num-workers', '1'
    ]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: colours: labels go '
                                               'up to 5')


def _class_folders(root, classes):
    for label, name in enumerate(classes):
        os.makedirs(root / name)
        (root / name / 'a.png').write_bytes(_png(COLOURS[label % 6]))


def test_class_folders_follow_the_registered_class_list(model, tmp_path):
    spec = SuiteDataset('digit_folders', layout='class_folders',
                        folder='digits', classnames='digits',
                        templates='digits')
    _class_folders(tmp_path / 'data' / 'digits', [str(i) for i in range(10)])
    data = find_dataset(spec, str(tmp_path / 'data'))
    # Numeric folder names sort as numbers.
    assert [label for _, _, label in data.samples()] == list(range(10))
    report = _evaluate(model, [spec], tmp_path / 'data', tmp_path / 'out')
    assert report.counts['digit_folders'] == dict(samples=10, skipped=0)


def test_mmpretrain_listing_is_read_and_missing_images_named(
        model, tmp_path):
    spec = SuiteDataset('digit_list', layout='class_folders',
                        folder='digits/val', classnames='digits',
                        templates='digits')
    os.makedirs(tmp_path / 'digits' / 'val')
    os.makedirs(tmp_path / 'digits' / 'meta')
    lines = []
    for i in range(4):
        (tmp_path / 'digits' / 'val' / f'{i}.png').write_bytes(_png('red'))
        lines.append(f'{i}.png {9 - i}')
    lines.append('gone.png 3')
    (tmp_path / 'digits' / 'meta' / 'val.txt').write_text(
        '\n'.join(lines) + '\n')
    data = find_dataset(spec, str(tmp_path))
    assert [label for _, _, label in data.samples()] == [9, 8, 7, 6, 3]
    report = _evaluate(model, [spec], tmp_path, tmp_path / 'out')
    assert report.counts['digit_list'] == dict(samples=4, skipped=1)
    assert report.skipped['digit_list'][0].startswith('gone.png: ')


def test_missing_class_folder_is_refused(tmp_path):
    from mmclip.errors import ConfigError
    spec = SuiteDataset('digit_folders', layout='class_folders',
                        folder='digits', classnames='digits')
    _class_folders(tmp_path / 'digits', [str(i) for i in range(9)])
    with pytest.raises(ConfigError, match='9 class folders but '
                       'digit_folders has 10 classes'):
        find_dataset(spec, str(tmp_path))


def test_recall_at_k_counts_any_true_match():
    from mmclip.evaluation.zero_shot_suite.retrieval import recall_at_k

    # Query 0's match is ranked 2nd; query 1 has two matches, ranked 1st
    # and 3rd; query 2's is ranked last.
    scores = torch.tensor([[3., 2., 1.], [9., 1., 5.], [3., 2., 1.]])
    true_match = torch.tensor([[0, 1, 0], [1, 0, 1], [0, 0, 1]]).bool()
    # A float32 mean, as clip_benchmark's.
    assert recall_at_k(scores, true_match, (1, 2, 3)) == pytest.approx({
        1: 1 / 3, 2: 2 / 3, 3: 1.0}, rel=1e-6)


def write_retrieval_export(folder: str, count: int = 4) -> None:
    """A captioned export: dataset_type.txt and KEY.png + KEY.txt (two
    captions each)."""
    os.makedirs(osp.join(folder, 'test'))
    with tarfile.open(osp.join(folder, 'test', '0.tar'), 'w') as tar:
        for index in range(count):
            key, colour = f's{index:07d}', COLOURS[index % len(COLOURS)]
            _add(tar, f'{key}.png', _png(colour, 20 * index))
            _add(tar, f'{key}.txt',
                 f'a {colour} square {index}\na plain {colour} picture\n'
                 .encode())
    with open(osp.join(folder, 'test', 'nshards.txt'), 'w') as f:
        f.write('1\n')
    with open(osp.join(folder, 'dataset_type.txt'), 'w') as f:
        f.write('retrieval\n')


def test_retrieval_export_is_scored_as_clip_benchmark(model, tmp_path):
    write_retrieval_export(str(tmp_path / 'data' / 'wds_squares'))
    specs = [SuiteDataset('squares')]
    calls = []
    report = _evaluate(model, specs, tmp_path / 'data', tmp_path, calls)
    record = report.records[0]
    assert record['task'] == 'zeroshot_retrieval'
    metrics = record['metrics']
    # 4 images, 8 captions: recall@10 covers everything.
    assert metrics['image_retrieval_recall@10'] == 1.0
    assert metrics['text_retrieval_recall@10'] == 1.0
    # Any own caption among an image's 5 best (of 8): at least 2 of them.
    assert metrics['text_retrieval_recall@5'] >= 0.5
    assert {'i2t_R@1', 't2i_R@1', 'rsum'} <= set(metrics)
    # A second run scores from the kept features and captions.
    calls.clear()
    again = _evaluate(model, specs, tmp_path / 'data', tmp_path, calls)
    assert calls == [] and again.records == report.records
    assert '| image_retrieval_recall@1 |' in again.table()


def test_torchvision_cifar_is_read_without_download(tmp_path, monkeypatch):
    # torchvision checks the real files' MD5 sums, so a stand-in class
    # records how the reader calls it (no CIFAR files can be generated).
    import torchvision.datasets
    calls = []

    class FakeCIFAR100:
        base_folder = 'cifar-100-python'
        test_list = [['test', 'md5']]
        classes = ['apple', 'aquarium_fish']

        def __init__(self, root, train, download):
            calls.append((root, train, download))
            self.data = np.zeros((3, 32, 32, 3), np.uint8)
            self.targets = [1, 0, 1]

    monkeypatch.setattr(torchvision.datasets, 'CIFAR100', FakeCIFAR100)
    os.makedirs(tmp_path / 'cifar100' / 'cifar-100-python')
    data = find_dataset(DATASETS['cifar100'], str(tmp_path))
    assert calls == [(str(tmp_path / 'cifar100'), False, False)]
    # torchvision's names as clip_benchmark uses them; OpenAI's 18 CIFAR
    # templates.
    assert data.classnames == ('apple', 'aquarium_fish')
    assert len(data.templates) == 18
    assert [(key, label) for key, _, label in data.samples()] == [
        ('0', 1), ('1', 0), ('2', 1)]
    assert data.files == [
        str(tmp_path / 'cifar100' / 'cifar-100-python' / 'test')]
