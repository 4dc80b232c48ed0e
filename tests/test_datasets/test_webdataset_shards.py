"""WebDatasetShards: shard lists, samples, splitting, epochs, bad data, Runner.

Workers are simulated with webdataset's own worker variables (``WORKER``,
``NUM_WORKERS``) or run for real in a ``DataLoader(num_workers=2)``; ranks by
the constructor arguments or by patching the module's ``get_dist_info``.
"""
import glob
import itertools
import os.path as osp
import tarfile

import pytest
import torch
import torch.nn as nn
import webdataset as wds
from mmengine.dataset import pseudo_collate
from mmengine.model import BaseModel
from torch.utils.data import DataLoader

import mmclip.datasets.webdataset as wds_module
from imgtext_helpers import encode, logger_to, read_log, rgb_image, write_shard
from mmclip.datasets import (TooManyBadSamplesError, WebDatasetShards,
                             clip_train_pipeline, list_shards)

PER_SHARD = 6


def make_shards(root, num_shards=2, per_shard=PER_SHARD, extra=None):
    """Shards 00000.tar.. with keys 'sSS_KKK', jpg/png + txt (+ json)."""
    paths = []
    for s in range(num_shards):
        samples = []
        for k in range(per_shard):
            key = f's{s:02d}_{k:03d}'
            img = encode(rgb_image(20, 16, seed=s * 100 + k),
                         'PNG' if k % 2 else 'JPEG')
            samples.append((key, {'png' if k % 2 else 'jpg': img,
                                  'txt': f'caption {key}',
                                  'json': '{"key": "%s"}' % key}))
        if extra and s == 0:
            samples += extra
        paths.append(write_shard(osp.join(root, f'{s:05d}.tar'), samples))
    return paths


def all_keys(num_shards=2):
    return sorted(f's{s:02d}_{k:03d}' for s in range(num_shards)
                  for k in range(PER_SHARD))


def keys_of(dataset):
    return [d['data_samples'].key for d in dataset]


def build(root, shards=None, **kwargs):
    kwargs.setdefault('pipeline', clip_train_pipeline(img_size=16))
    pipeline = kwargs.pop('pipeline')
    # keep the webdataset key in the data sample, to check splitting
    pipeline[-1] = dict(type='PackImageText', meta_keys=('key', 'img_path'))
    if shards is None:
        shards = osp.join(root, '{00000..%05d}.tar' % (kwargs.pop('n', 2) - 1))
    return WebDatasetShards(shards, pipeline=pipeline, **kwargs)


def test_list_shards(tmp_path):
    paths = make_shards(str(tmp_path), 3)
    root = str(tmp_path)
    assert list_shards(osp.join(root, '{00000..00002}.tar')) == paths
    assert list_shards(osp.join(root, '*.tar')) == paths
    assert list_shards(paths[:1] + [osp.join(root, '0000{1,2}.tar')]) == paths
    assert list_shards(f'{paths[2]}::{paths[0]}') == [paths[2], paths[0]]
    with pytest.raises(FileNotFoundError, match='1 of 4 shards'):
        list_shards(osp.join(root, '{00000..00003}.tar'))
    with pytest.raises(FileNotFoundError, match='matches no file'):
        list_shards(osp.join(root, '*.tgz'))
    # pipe: commands and URLs are brace-expanded, neither globbed nor checked
    assert list_shards('pipe:curl -s https://h/{0..1}.tar?x=1') == [
        'pipe:curl -s https://h/0.tar?x=1', 'pipe:curl -s https://h/1.tar?x=1'
    ]
    assert list_shards(f'https://h/d/{{08..10}}.tar::{paths[0]}') == [
        'https://h/d/08.tar', 'https://h/d/09.tar', 'https://h/d/10.tar',
        paths[0]
    ]


def test_samples_handed_to_the_pipeline(tmp_path):
    path = make_shards(str(tmp_path), 1, 3)[0]
    samples = list(WebDatasetShards(path, shuffle_buffer=0,
                                    shuffle_shards=False))
    assert [s['key'] for s in samples] == ['s00_000', 's00_001', 's00_002']
    assert sorted(samples[1]) == ['img_bytes', 'img_path', 'json', 'key',
                                  'text']
    assert samples[1]['img_path'] == f'{path}:s00_001.png'
    assert samples[1]['img_bytes'][:4] == b'\x89PNG'
    assert samples[0]['text'] == 'caption s00_000'
    assert samples[0]['json'] == {'key': 's00_000'}


def test_single_pass_yields_everything(tmp_path):
    make_shards(str(tmp_path))
    ds = build(str(tmp_path), shuffle_buffer=4, rank=0, world_size=1)
    keys = keys_of(ds)
    assert sorted(keys) == all_keys()
    sample = next(iter(ds))
    assert sample['inputs'].shape == (3, 16, 16)
    assert sample['data_samples'].text.startswith('caption s')
    assert sample['data_samples'].text_ids.shape == (77, )
    with pytest.raises(TypeError, match='num_samples'):
        len(ds)
    assert keys_of(ds) != keys  # reshuffled on the next pass
    eval_ds = build(str(tmp_path), test_mode=True)
    assert keys_of(eval_ds) == sorted(keys)  # no shuffling in test mode


def test_shuffle_is_seeded(tmp_path):
    make_shards(str(tmp_path), 4)
    a, b, c = (build(str(tmp_path), n=4, shuffle_buffer=8, seed=seed)
               for seed in (3, 3, 4))
    first, second = keys_of(a), keys_of(a)
    assert sorted(first) == sorted(second) and first != second
    assert [keys_of(b), keys_of(b)] == [first, second]  # same seed, same run
    assert keys_of(c) != first


def test_pipe_shards(tmp_path):
    paths = make_shards(str(tmp_path), 2)
    ds = build(str(tmp_path), shards=f'pipe:cat {tmp_path}/{{00000..00001}}'
               '.tar', rank=0, world_size=1)
    assert ds.shards == [f'pipe:cat {p}' for p in paths]
    samples = list(ds)
    assert sorted(s['data_samples'].key for s in samples) == all_keys()
    assert samples[0]['data_samples'].img_path.startswith('pipe:cat ')


def test_https_shards_go_to_webdatasets_gopen(tmp_path, monkeypatch):
    """No network here: stand in for curl and check the URL reaches it."""
    path = make_shards(str(tmp_path), 1)[0]
    opened = []

    def fake_curl(url, mode, bufsize, **kwargs):
        opened.append(url)
        return open(path, mode)

    monkeypatch.setitem(wds.gopen_schemes, 'https', fake_curl)
    ds = build(str(tmp_path), shards='https://example.com/cc3m/{000..001}.tar',
               rank=0, world_size=1, shuffle_shards=False)
    assert len(keys_of(ds)) == 2 * PER_SHARD
    assert opened == ['https://example.com/cc3m/000.tar',
                      'https://example.com/cc3m/001.tar']


def fake_worker(monkeypatch, wid, num_workers):
    """What webdataset's split_by_worker and the dataset read as worker."""
    monkeypatch.setenv('WORKER', str(wid))
    monkeypatch.setenv('NUM_WORKERS', str(num_workers))


@pytest.mark.parametrize('num_shards', [2, 8])
def test_no_overlap_no_loss_across_ranks_and_workers(tmp_path, monkeypatch,
                                                     num_shards):
    """2 ranks x 2 workers over 2 shards (sample split) or 8 (shard split)."""
    make_shards(str(tmp_path), num_shards)
    seen = []
    for rank, wid in itertools.product(range(2), range(2)):
        fake_worker(monkeypatch, wid, 2)
        ds = build(str(tmp_path), n=num_shards, rank=rank, world_size=2)
        keys = keys_of(ds)
        assert keys, (rank, wid)  # every reader gets its share
        seen += keys
    assert len(seen) == len(set(seen)) == num_shards * PER_SHARD


@pytest.mark.parametrize('num_shards', [2, 5])
def test_real_workers_and_mmengine_dist(tmp_path, monkeypatch, num_shards):
    """Ranks from mmengine.dist, 2 real DataLoader workers per rank."""
    make_shards(str(tmp_path), num_shards)
    per_rank = []
    for rank in range(2):
        monkeypatch.setattr(wds_module, 'get_dist_info',
                            lambda r=rank: (r, 2))
        ds = build(str(tmp_path), n=num_shards)
        loader = DataLoader(ds, batch_size=2, num_workers=2,
                            collate_fn=pseudo_collate)
        per_rank.append([s.key for b in loader for s in b['data_samples']])
    assert all(per_rank)
    seen = per_rank[0] + per_rank[1]
    assert len(seen) == len(set(seen)) and sorted(seen) == all_keys(num_shards)


def test_num_samples_sets_epoch_length(tmp_path, monkeypatch):
    make_shards(str(tmp_path), 2)
    ds = build(str(tmp_path), num_samples=50, batch_size=4, world_size=2,
               rank=0, shuffle_buffer=8)
    assert len(ds) == 24  # 25 per rank, whole batches of 4
    counts = []
    for wid in range(3):
        fake_worker(monkeypatch, wid, 3)
        keys = keys_of(ds)
        counts.append(len(keys))
    assert counts == [8, 8, 8]  # cycles over its shards to fill the quota
    monkeypatch.delenv('WORKER')
    monkeypatch.delenv('NUM_WORKERS')
    loader = DataLoader(ds, batch_size=4, collate_fn=pseudo_collate)
    assert len(loader) == 6 and len(list(loader)) == 6
    with pytest.raises(ValueError, match='less than one batch'):
        len(build(str(tmp_path), num_samples=3, batch_size=4, world_size=1))


def test_resampled_shards(tmp_path):
    make_shards(str(tmp_path), 3)
    ds = build(str(tmp_path), n=3, resampled=True, num_samples=40,
               batch_size=4, world_size=1, rank=0, shuffle_buffer=4)
    keys = keys_of(ds)
    assert len(keys) == len(ds) == 40  # more than the 18 samples: repeats
    assert set(keys) <= set(all_keys(3))
    with pytest.raises(ValueError, match='set num_samples'):
        build(str(tmp_path), resampled=True)


def test_resampled_broken_shards_raise_instead_of_looping(tmp_path):
    """Every shard damaged or empty: a resampling worker drew them forever.
    The DataLoader's timeout makes a regression fail instead of hang."""
    log = logger_to(tmp_path, f'wds-{tmp_path.name}')
    garbage, empty = tmp_path / 'garbage.tar', tmp_path / 'empty.tar'
    garbage.write_bytes(b'not a tar file ' * 100)
    tarfile.open(empty, 'w').close()  # a valid tar without members
    ds = build(str(tmp_path), shards=[str(garbage), str(empty)],
               resampled=True, num_samples=4, batch_size=2,
               max_bad_fraction=None)
    loader = DataLoader(ds, batch_size=2, num_workers=1, timeout=20,
                        collate_fn=pseudo_collate)
    with pytest.raises(RuntimeError,
                       match=r'all 2 shards were drawn \(resampled=True\) '
                       r'and none gave a sample: .*garbage\.tar'):
        list(loader)
    assert 'garbage.tar (damaged tar' in read_log(log)  # counted, named
    # one readable shard among broken ones is enough
    good = make_shards(str(tmp_path), 1)[0]
    ds = build(str(tmp_path), shards=[str(garbage), str(empty), good],
               resampled=True, num_samples=20, batch_size=2,
               max_bad_fraction=None, rank=0, world_size=1, shuffle_buffer=4)
    assert len(keys_of(ds)) == 20


def test_bad_members_and_damaged_shards(tmp_path):
    log = logger_to(tmp_path, f'wds-{tmp_path.name}')
    extra = [('nocap', {'jpg': encode(rgb_image(), 'JPEG')}),
             ('noimg', {'txt': 'caption only'}),
             ('broken', {'jpg': b'not an image', 'txt': 'a broken image'}),
             ('emptycap', {'jpg': encode(rgb_image(), 'JPEG'), 'txt': ' '})]
    paths = make_shards(str(tmp_path), 2, extra=extra)
    with tarfile.open(paths[1]) as tar:  # cut shard 1 in its 3rd image
        cut = tar.getmembers()[6].offset_data + 10
    with open(paths[1], 'r+b') as f:
        f.truncate(cut)
    missing = tmp_path / 'gone.tar'
    ds = build(str(tmp_path), shards=paths + [f'pipe:cat {missing}'],
               rank=0, world_size=1, max_bad_fraction=0.5)
    keys = keys_of(ds)
    assert len(keys) == len(set(keys))
    # shard 0's good samples and the 2 complete samples before the cut
    assert len(keys) == PER_SHARD + 2
    assert ds.bad_samples.bad == 6  # 4 members, the cut shard, the pipe
    text = read_log(log)
    for what in ('00000.tar:nocap', 'no .txt caption', '00000.tar:noimg',
                 'no image member', '00000.tar:broken.jpg',
                 'cannot decode', 'emptycap.jpg', 'empty caption',
                 '00001.tar (damaged tar', f'pipe:cat {missing} (damaged tar'):
        assert what in text, what
    with pytest.raises(RuntimeError, match='Evaluation cannot skip'):
        keys_of(build(str(tmp_path), shards=paths[1], test_mode=True))
    # the limit, hit inside webdataset's reader, is raised, not skipped
    with pytest.raises(TooManyBadSamplesError,
                       match=r'^WebDatasetShards\(1 shards\): 1 of 1 '):
        keys_of(build(str(tmp_path), shards=paths[1], min_samples=1))


class ToyModel(BaseModel):
    """Consumes packed image-text batches like a CLIP model would."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.batches = []

    def forward(self, inputs, data_samples=None, mode='tensor'):
        images = torch.stack(inputs).float()
        text_ids = torch.stack([s.text_ids for s in data_samples])
        self.batches.append((tuple(images.shape), tuple(text_ids.shape)))
        loss = (self.weight * images.mean() / 255 - 1)**2
        return dict(loss=loss)


def test_runner_trains_two_iterations(tmp_path):
    from mmengine.runner import Runner
    make_shards(str(tmp_path), 2)
    model = ToyModel()
    runner = Runner(
        model=model,
        work_dir=str(tmp_path / 'work'),
        train_dataloader=dict(
            batch_size=2,
            num_workers=0,
            sampler=None,  # IterableDataset: PyTorch forbids a sampler
            dataset=dict(
                type='WebDatasetShards',
                shards=osp.join(str(tmp_path), '{00000..00001}.tar'),
                num_samples=4,
                batch_size=2,
                pipeline=clip_train_pipeline(img_size=16))),
        train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        default_hooks=dict(checkpoint=None),
        default_scope='mmclip',
        env_cfg=dict(dist_cfg=dict(backend='gloo')),
        log_level='WARNING')
    runner.train()
    assert runner.iter == 2
    assert model.batches == [((2, 3, 16, 16), (2, 77))] * 2
    loader = Runner.build_dataloader(
        dict(batch_size=2, num_workers=2, sampler=None,
             dataset=dict(type='WebDatasetShards',
                          shards=osp.join(str(tmp_path), '*.tar'),
                          num_samples=8, batch_size=2,
                          pipeline=clip_train_pipeline(img_size=16))),
        seed=0)
    batches = list(loader)
    assert len(loader) == len(batches) == 4


def test_cc3m_config_builds(tmp_path):
    """The base config's dataloader, on two local shards instead of CC3M."""
    from mmengine.config import Config
    from mmengine.registry import DefaultScope
    from mmengine.runner import Runner

    from conftest import REPO_ROOT
    make_shards(str(tmp_path), 2)
    path, = glob.glob(osp.join(REPO_ROOT, 'configs', '_base_', 'datasets',
                               'cc3m_wds_clip*.py'))
    cfg = Config.fromfile(path)
    loader_cfg = cfg.train_dataloader
    assert loader_cfg.sampler is None
    loader_cfg.update(batch_size=2, num_workers=0, persistent_workers=False)
    loader_cfg.dataset.update(
        shards=osp.join(str(tmp_path), '{00000..00001}.tar'), num_samples=4,
        batch_size=2)
    with DefaultScope.overwrite_default_scope('mmclip'):
        loader = Runner.build_dataloader(loader_cfg, seed=0)
    batches = list(loader)
    assert len(loader) == len(batches) == 2
    assert batches[0]['inputs'][0].shape == (3, 224, 224)
