"""Bad samples are skipped, counted, named in the log and limited."""
import pytest
import torch
from mmengine.dataset import pseudo_collate
from torch.utils.data import DataLoader

from imgtext_helpers import (broken_files, logger_to, odd_mode_files, read_log,
                             write_csv, write_image)
from mmclip.datasets import (BadSampleTracker, ImageTextDataset,
                             TooManyBadSamplesError, clip_train_pipeline)


def make_dataset(tmp_path, num_good, bad_kinds=(), odd=True, **kwargs):
    root = str(tmp_path)
    rows = []
    for i in range(num_good):
        rows.append((write_image(f'{root}/good/{i}.jpg', seed=i), f'good {i}'))
    if odd:
        rows += [(p, f'odd {k}') for k, p in odd_mode_files(root).items()]
    broken = broken_files(root)
    for kind in bad_kinds:
        if kind == 'empty_caption':
            rows.append((write_image(f'{root}/nocap.jpg'), '   '))
        else:
            rows.append((broken[kind], f'broken {kind}'))
    write_csv(tmp_path / 'ann.csv', rows)
    kwargs.setdefault('pipeline', clip_train_pipeline(img_size=16))
    return ImageTextDataset(str(tmp_path / 'ann.csv'), **kwargs), rows


ALL_BAD = ('missing', 'truncated', 'random', 'empty', 'empty_caption')


def test_odd_modes_load_and_broken_files_are_skipped(tmp_path):
    log = logger_to(tmp_path, f'bad-{tmp_path.name}')
    ds, rows = make_dataset(tmp_path, 10, ALL_BAD, max_bad_fraction=0.5)
    num_ok = len(rows) - len(ALL_BAD)
    outputs = [ds.prepare_data(i) for i in range(len(ds))]
    assert all(o is not None for o in outputs[:num_ok])  # odd modes load
    assert all(o is None for o in outputs[num_ok:])
    summary = ds.bad_samples.summary()
    assert summary['seen'] == len(rows) and summary['bad'] == len(ALL_BAD)
    text = read_log(log)
    for path, _ in rows[num_ok:]:
        assert f'skipped bad sample {path}' in text
    for reason in ('file not found', 'cannot decode image', 'empty file',
                   'empty caption'):
        assert reason in text
    assert f'{len(ALL_BAD)} bad of {len(rows)} seen' in text


def test_training_iteration_continues(tmp_path):
    # Refetches may draw a bad index again, so leave room above 5/51.
    ds, rows = make_dataset(tmp_path, 40, ALL_BAD, max_bad_fraction=0.5)
    loader = DataLoader(ds, batch_size=8, shuffle=False,
                        collate_fn=pseudo_collate)
    batches = list(loader)
    assert sum(len(b['inputs']) for b in batches) == len(rows)
    for batch in batches:
        for img, sample in zip(batch['inputs'], batch['data_samples']):
            assert img.shape == (3, 16, 16)
            assert sample.text.strip() and sample.text_ids.shape == (77, )
    # Each bad index was skipped at least once (refetches may hit it again).
    assert ds.bad_samples.bad >= len(ALL_BAD)


def test_too_many_bad_samples_raises(tmp_path):
    ds, _ = make_dataset(
        tmp_path, 15, ('missing', 'truncated', 'random', 'empty'),
        odd=False, min_samples=10, max_bad_fraction=0.1)
    with pytest.raises(TooManyBadSamplesError) as e:
        for i in range(len(ds)):
            ds.prepare_data(i)
    msg = str(e.value)
    assert '2 of 17 samples (11.8%)' in msg
    assert 'does_not_exist.jpg' in msg and 'truncated.jpg' in msg
    assert 'max_bad_fraction=0.1' in msg


def test_limit_raises_through_dataloader_workers(tmp_path):
    ds, _ = make_dataset(tmp_path, 4, ('missing', 'random', 'empty'),
                         odd=False, min_samples=5, max_bad_fraction=0.2)
    loader = DataLoader(ds, batch_size=2, num_workers=1,
                        collate_fn=pseudo_collate)
    iterator = iter(loader)
    with pytest.raises(TooManyBadSamplesError, match='worker 0'):
        list(iterator)
    iterator._shutdown_workers()  # now, not at garbage collection


def test_limit_disabled_and_min_samples(tmp_path):
    tracker = BadSampleTracker('t', max_bad_fraction=None, min_samples=1)
    for i in range(5):
        tracker.record_bad(f'f{i}', 'broken')
    assert tracker.bad == 5
    tracker = BadSampleTracker('t', max_bad_fraction=0.1, min_samples=20)
    for i in range(19):
        tracker.record_bad(f'f{i}', 'broken')  # below min_samples: no raise
    with pytest.raises(TooManyBadSamplesError, match='20 of 20'):
        tracker.record_bad('f19', 'broken')
    with pytest.raises(ValueError):
        BadSampleTracker('t', max_bad_fraction=2)


def test_eval_mode_raises_on_bad_sample(tmp_path):
    ds, _ = make_dataset(tmp_path, 2, ('truncated', ), odd=False,
                         test_mode=True)
    assert ds[0]['inputs'].shape == (3, 16, 16)
    with pytest.raises(RuntimeError, match='truncated.jpg'):
        ds[2]
    assert torch.is_tensor(ds[1]['inputs'])
