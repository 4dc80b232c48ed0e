"""ImageNet-A, ImageNet-R and ObjectNet read by the zero-shot suite from
their downloads' folder layouts (generated here, a PNG or two per class),
scored with the subsets of ImageNet's class names (WiSE-FT's way)."""
import json
import os

import numpy as np
import pytest
import torch
from test_zero_shot_suite import COLOURS, _evaluate, _png, model  # noqa

from mmclip.datasets.imagenet_wnids import (IMAGENET_A_WNIDS, IMAGENET_R_WNIDS,
                                            IMAGENET_WNIDS, imagenet_indices)
from mmclip.datasets.zero_shot_data import resolve_classnames
from mmclip.errors import ConfigError
from mmclip.evaluation.zero_shot_suite import DATASETS, find_dataset
from mmclip.evaluation.zero_shot_suite.metrics import group_logits


def write_wnid_folders(root, wnids, per_class: int = 1) -> None:
    """One folder per WordNet id with ``per_class`` PNGs (and a README, as
    the published tars have)."""
    os.makedirs(root)
    (root / 'README.txt').write_text('not a class\n')
    for label, wnid in enumerate(wnids):
        os.makedirs(root / wnid)
        for i in range(per_class):
            (root / wnid / f'{i}.png').write_bytes(
                _png(COLOURS[label % 6], 10 * i))


def test_subsets_are_200_imagenet_classes_in_imagenet_order():
    assert len(IMAGENET_WNIDS) == 1000 and list(IMAGENET_WNIDS) == sorted(
        IMAGENET_WNIDS)
    imagenet = resolve_classnames('imagenet')
    for name, wnids in (('imagenet_a', IMAGENET_A_WNIDS),
                        ('imagenet_r', IMAGENET_R_WNIDS)):
        indices = imagenet_indices(wnids)
        assert len(set(wnids)) == 200 and list(indices) == sorted(indices)
        assert resolve_classnames(name) == tuple(imagenet[i]
                                                 for i in indices)
    # ImageNet-R's first classes: goldfish (n01443537), great white shark.
    assert resolve_classnames('imagenet_r')[:2] == ('goldfish',
                                                    'great white shark')


@pytest.mark.parametrize('name', ['imagenet-a', 'imagenet-r'])
def test_imagenet_variant_folders_are_scored_on_their_200_classes(
        model, tmp_path, name):  # noqa: F811
    spec = DATASETS[name]
    wnids = dict(imagenet_a=IMAGENET_A_WNIDS,
                 imagenet_r=IMAGENET_R_WNIDS)[spec.classnames]
    write_wnid_folders(tmp_path / 'data' / name, wnids)
    data = find_dataset(spec, str(tmp_path / 'data'))
    assert len(data.classnames) == 200 and data.class_groups is None
    samples = list(data.samples())
    # Label i is the i-th sorted WordNet-id folder.
    assert [(key, label) for key, _, label in samples[:2]] == [
        (f'{wnids[0]}/0.png', 0), (f'{wnids[1]}/0.png', 1)]
    report = _evaluate(model, [spec], tmp_path / 'data', tmp_path / 'out',
                       overrides=dict(templates={'*': ['a {}.']}))
    assert report.counts[name] == dict(samples=200, skipped=0)
    assert set(report.records[0]['metrics']) == {
        'acc1', 'acc5', 'mean_per_class_recall'}


def test_missing_or_foreign_wnid_folder_is_named(tmp_path):
    wnids = list(IMAGENET_R_WNIDS)
    wnids[5] = 'n99999999'
    write_wnid_folders(tmp_path / 'imagenet-r', wnids)
    with pytest.raises(ConfigError, match=f'missing: {IMAGENET_R_WNIDS[5]}; '
                       'not of imagenet-r: n99999999'):
        find_dataset(DATASETS['imagenet-r'], str(tmp_path))


def test_group_logits_takes_each_groups_best():
    logits = torch.tensor([[1., 5., 2., 0.], [3., 0., 4., 9.]])
    assert group_logits(logits, [(0, 2), (1, ), (3, 1)]).tolist() == [
        [2., 5., 5.], [4., 0., 9.]]


# A small ObjectNet: ImageNet 2012 ids 0-3 are the PyTorch (sorted-wnid)
# classes 3, 7, 1, 9; 'Alarm clock' maps to two of them, 'Toy zebra' to
# none (its folder is not scored).
OBJECTNET_FOLDERS = dict(alarm_clock='Alarm clock', banana='Banana',
                         bucket='Bucket', toy_zebra='Toy zebra')
IMAGENET_2012 = ('analog clock', 'digital clock', 'banana', 'bucket, pail')


def write_objectnet(folder) -> None:
    """``objectnet-1.0``: ``images/<folder>/*.png`` and ``mappings/``."""
    mappings = folder / 'mappings'
    os.makedirs(mappings)
    (mappings / 'folder_to_objectnet_label.json').write_text(
        json.dumps(OBJECTNET_FOLDERS))
    (mappings / 'objectnet_to_imagenet_1k.json').write_text(json.dumps({
        'Alarm clock': 'analog clock; digital clock',
        'Banana': 'banana',
        'Bucket': 'bucket, pail'
    }))
    (mappings / 'pytorch_to_imagenet_2012_id.json').write_text(
        json.dumps({'3': 0, '7': 1, '1': 2, '9': 3}))
    (mappings / 'imagenet_to_label_2012_v2').write_text(
        '\n'.join(IMAGENET_2012) + '\n')
    for label, name in enumerate(sorted(OBJECTNET_FOLDERS)):
        os.makedirs(folder / 'images' / name)
        for i in range(2):
            (folder / 'images' / name / f'{i}.png').write_bytes(
                _png(COLOURS[label], 30 * i))


def test_objectnet_maps_its_classes_to_imagenets(
        model, tmp_path):  # noqa: F811
    write_objectnet(tmp_path / 'data' / 'objectnet-1.0')
    spec = DATASETS['objectnet']
    data = find_dataset(spec, str(tmp_path / 'data'))
    imagenet = resolve_classnames('imagenet')
    # The head: ImageNet's names of the mapped classes 1, 3, 7, 9.
    assert data.classnames == tuple(imagenet[i] for i in (1, 3, 7, 9))
    # alarm_clock -> ImageNet 3 and 7 (columns 1, 2), banana -> 1, bucket
    # -> 9; labels in sorted folder order, toy_zebra left out.
    assert data.class_groups == ((1, 2), (0, ), (3, ))
    assert [(key, label) for key, _, label in data.samples()] == [
        ('alarm_clock/0.png', 0), ('alarm_clock/1.png', 0),
        ('banana/0.png', 1), ('banana/1.png', 1), ('bucket/0.png', 2),
        ('bucket/1.png', 2)]
    out = tmp_path / 'out'
    report = _evaluate(model, [spec], tmp_path / 'data', out,
                       overrides=dict(templates={'*': ['a {}.']}))
    assert report.counts['objectnet'] == dict(samples=6, skipped=0)
    # The metrics are those of the grouped logits (3 classes).
    from mmclip.evaluation.zero_shot_suite import (classification_metrics,
                                                   zero_shot_logits)
    from mmclip.evaluation.zero_shot_suite.suite import zero_shot_classifier
    classifier = zero_shot_classifier(model, data.classnames, ['a {}.'],
                                      None)
    logits = zero_shot_logits(np.load(out / 'objectnet_features.npy'),
                              classifier)
    expected = classification_metrics(group_logits(logits,
                                                   data.class_groups),
                                      np.array([0, 0, 1, 1, 2, 2]))
    metrics = report.records[0]['metrics']
    assert metrics['acc1'] == expected['acc1']
    assert np.isnan(metrics['acc5'])  # 3 classes, not the head's 4


def test_objectnet_photos_lose_their_red_frame(model, tmp_path):  # noqa
    """ObjectNet's photos carry a red frame that its loader and WiSE-FT's
    evaluation crop by 2 pixels: the features are those of the cropped
    photo, not of the framed one."""
    from PIL import Image

    from mmclip.apis.preprocess import build_eval_transform, collate_images
    from mmclip.evaluation.zero_shot_suite.suite import encode_images
    write_objectnet(tmp_path / 'objectnet-1.0')
    inner = np.random.default_rng(0).integers(0, 256, (36, 44, 3), np.uint8)
    framed = np.zeros((40, 48, 3), np.uint8)
    framed[..., 0] = 255  # red
    framed[2:-2, 2:-2] = inner
    for path in (tmp_path / 'objectnet-1.0' / 'images').glob('*/*.png'):
        Image.fromarray(framed).save(path)
    data = find_dataset(DATASETS['objectnet'], str(tmp_path))
    assert data.border == 2
    transform = build_eval_transform(model)

    def encode(packed):
        return model.encode_image(collate_images(model, packed))

    with torch.no_grad():
        feats = encode_images(data, transform, encode, num_workers=1)
        cropped = encode([transform(inner)])
        uncropped = encode([transform(framed)])
    assert len(feats.features) == 6
    np.testing.assert_allclose(np.asarray(feats.features),
                               np.repeat(cropped.numpy(), 6, 0), atol=1e-5)
    assert not np.allclose(cropped.numpy(), uncropped.numpy(), atol=1e-3)


def test_incomplete_objectnet_download_is_refused(tmp_path):
    write_objectnet(tmp_path / 'objectnet-1.0')
    os.rename(tmp_path / 'objectnet-1.0' / 'images' / 'banana',
              tmp_path / 'banana')
    with pytest.raises(ConfigError, match='lacks 1 of the 3 class folders '
                       'that map to ImageNet \\(banana\\)'):
        find_dataset(DATASETS['objectnet'], str(tmp_path))
    os.remove(tmp_path / 'objectnet-1.0' / 'mappings' /
              'imagenet_to_label_2012_v2')
    from mmclip.errors import MissingFileError
    with pytest.raises(MissingFileError, match='imagenet_to_label_2012_v2'):
        find_dataset(DATASETS['objectnet'], str(tmp_path))


def _clip_benchmark():
    pytest.importorskip(
        'requests', reason="clip_benchmark's dataset builder imports requests")
    return pytest.importorskip(
        'clip_benchmark.datasets.builder',
        reason='clip-benchmark is not installed (pip install --no-deps -r '
        'requirements/parity.txt)')


@pytest.mark.parametrize('name', ['imagenet-a', 'imagenet-r'])
def test_imagenet_variants_equal_clip_benchmarks(tmp_path, name):
    builder = _clip_benchmark()
    assert builder.all_imagenet_wordnet_ids == list(IMAGENET_WNIDS)
    spec = DATASETS[name]
    wnids = dict(imagenet_a=IMAGENET_A_WNIDS,
                 imagenet_r=IMAGENET_R_WNIDS)[spec.classnames]
    write_wnid_folders(tmp_path / name, wnids)
    ours = find_dataset(spec, str(tmp_path))
    theirs = builder.build_dataset(name, root=str(tmp_path / name),
                                   download=False)
    # clip_benchmark's 200 names (ImageNet's, masked by its id list) and
    # its ImageFolder labels.
    assert tuple(theirs.classes) == ours.classnames
    assert [(os.path.relpath(path, tmp_path / name), label)
            for path, label in theirs.samples] == [
                (key, label) for key, _, label in ours.samples()]


def test_objectnet_equals_clip_benchmarks_mapping(tmp_path):
    builder = _clip_benchmark()
    from clip_benchmark.datasets.objectnet import get_metadata
    write_objectnet(tmp_path / 'objectnet-1.0')
    ours = find_dataset(DATASETS['objectnet'], str(tmp_path))
    sublist, _, folders_to_ids, _ = get_metadata(
        str(tmp_path / 'objectnet-1.0' / 'mappings'))
    imagenet = resolve_classnames('imagenet')
    assert ours.classnames == tuple(imagenet[i] for i in sublist)
    assert [tuple(ours.classnames[c] for c in group)
            for group in ours.class_groups] == [
                tuple(imagenet[i] for i in folders_to_ids[folder])
                for folder in sorted(folders_to_ids)]
    # clip_benchmark reads the mapping files from the dataset root, beside
    # objectnet-1.0 (its download step copies them there).
    for path in (tmp_path / 'objectnet-1.0' / 'mappings').iterdir():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    theirs = builder.build_dataset('objectnet', root=str(tmp_path),
                                   download=False)
    images = tmp_path / 'objectnet-1.0' / 'images'
    assert [(os.path.relpath(path, images), theirs.label_map[
        os.path.basename(os.path.dirname(path))])
            for path, _ in theirs.samples] == [
                (key, label) for key, _, label in ours.samples()]
