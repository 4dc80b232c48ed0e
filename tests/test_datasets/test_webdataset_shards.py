"""WebDatasetShards: shard listing, tar reading, splitting, epochs, Runner."""
import itertools
import os.path as osp
import tarfile
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn
from imgtext_helpers import encode, logger_to, read_log, rgb_image, \
    write_shard
from mmengine.dataset import pseudo_collate
from mmengine.model import BaseModel
from torch.utils.data import DataLoader

import mmclip.datasets.webdataset as wds_module
from mmclip.datasets import (WebDatasetShards, clip_train_pipeline,
                             expand_braces, iter_tar_samples, list_shards)

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


def keys_of(dataset):
    return [d['data_samples'].key for d in dataset]


def build(root, **kwargs):
    kwargs.setdefault('pipeline', clip_train_pipeline(img_size=16))
    pipeline = kwargs.pop('pipeline')
    # keep the webdataset key in the data sample, to check splitting
    pipeline[-1] = dict(type='PackImageText', meta_keys=('key', 'img_path'))
    return WebDatasetShards(
        osp.join(root, '{00000..%05d}.tar' % (kwargs.pop('n', 2) - 1)),
        pipeline=pipeline, **kwargs)


def test_expand_braces():
    assert expand_braces('d/{08..11}.tar') == [
        'd/08.tar', 'd/09.tar', 'd/10.tar', 'd/11.tar'
    ]
    assert expand_braces('{a,b}-{1..2}') == ['a-1', 'a-2', 'b-1', 'b-2']
    assert expand_braces('{x,{1..3..2}}') == ['x', '1', '3']
    assert expand_braces('{3..1}') == ['3', '2', '1']
    assert expand_braces('no{brace}s{') == ['no{brace}s{']
    assert len(expand_braces('{00000..00099}.tar')) == 100


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


def test_tar_reader_groups_members_by_key(tmp_path):
    path = make_shards(str(tmp_path), 1, 3)[0]
    samples = list(iter_tar_samples(path))
    assert [s['__key__'] for s in samples] == ['s00_000', 's00_001', 's00_002']
    assert sorted(samples[1]) == ['__key__', 'json', 'png', 'txt']
    assert samples[0]['txt'] == b'caption s00_000'


def test_single_pass_yields_everything(tmp_path):
    make_shards(str(tmp_path))
    ds = build(str(tmp_path), shuffle_buffer=4, rank=0, world_size=1)
    keys = keys_of(ds)
    assert sorted(keys) == sorted(f's{s:02d}_{k:03d}' for s in range(2)
                                  for k in range(PER_SHARD))
    sample = next(iter(ds))
    assert sample['inputs'].shape == (3, 16, 16)
    assert sample['data_samples'].text.startswith('caption s')
    assert sample['data_samples'].text_ids.shape == (77, )
    with pytest.raises(TypeError, match='num_samples'):
        len(ds)
    assert keys_of(ds) != keys  # reshuffled on the next pass
    eval_ds = build(str(tmp_path), test_mode=True)
    assert keys_of(eval_ds) == sorted(keys)  # no shuffling in test mode


def fake_worker(monkeypatch, wid, num_workers):
    info = SimpleNamespace(id=wid, num_workers=num_workers, seed=1234 + wid)
    monkeypatch.setattr(wds_module, 'get_worker_info', lambda: info)


@pytest.mark.parametrize('num_shards', [2, 8])
def test_no_overlap_no_loss_across_ranks_and_workers(tmp_path, monkeypatch,
                                                     num_shards):
    """2 ranks x 2 workers over 2 shards (sample split) or 8 (shard split)."""
    make_shards(str(tmp_path), num_shards)
    seen = []
    for rank, wid in itertools.product(range(2), range(2)):
        fake_worker(monkeypatch, wid, 2)
        ds = build(str(tmp_path), n=num_shards, rank=rank, world_size=2)
        seen += keys_of(ds)
    assert len(seen) == len(set(seen)) == num_shards * PER_SHARD


def test_real_workers_and_mmengine_dist(tmp_path, monkeypatch):
    make_shards(str(tmp_path), 2)
    monkeypatch.setattr(wds_module, 'get_dist_info', lambda: (1, 2))
    ds = build(str(tmp_path))  # rank 1 of 2 from mmengine.dist
    loader = DataLoader(ds, batch_size=2, num_workers=2,
                        collate_fn=pseudo_collate)
    keys = [s.key for b in loader for s in b['data_samples']]
    # Readers 2 and 3 of 4 keep samples i with (i + shard) % 4 in {2, 3}:
    # i = 2, 3 of shard 0 and i = 1, 2, 5 of shard 1.
    assert len(keys) == len(set(keys)) == 5
    assert sorted(keys) == ['s00_002', 's00_003', 's01_001', 's01_002',
                            's01_005']


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
    loader = DataLoader(ds, batch_size=4, collate_fn=pseudo_collate)
    monkeypatch.setattr(wds_module, 'get_worker_info', lambda: None)
    assert len(loader) == 6 and len(list(loader)) == 6
    with pytest.raises(ValueError, match='less than one batch'):
        len(build(str(tmp_path), num_samples=3, batch_size=4, world_size=1))


def test_bad_members_and_damaged_shards(tmp_path):
    log = logger_to(tmp_path, f'wds-{tmp_path.name}')
    extra = [('nocap', {'jpg': encode(rgb_image(), 'JPEG')}),
             ('noimg', {'txt': 'caption only'}),
             ('broken', {'jpg': b'not an image', 'txt': 'a broken image'}),
             ('emptycap', {'jpg': encode(rgb_image(), 'JPEG'), 'txt': ' '})]
    paths = make_shards(str(tmp_path), 2, extra=extra)
    with tarfile.open(paths[1]) as tar:  # cut shard 1 inside its 9th file
        cut = tar.getmembers()[8].offset_data + 10
    with open(paths[1], 'r+b') as f:
        f.truncate(cut)
    ds = build(str(tmp_path), rank=0, world_size=1, max_bad_fraction=0.5)
    keys = keys_of(ds)
    assert len(keys) == len(set(keys))
    # shard 0's good samples and the 2 complete samples before the cut
    assert len(keys) == PER_SHARD + 2
    assert ds.bad_samples.bad == 5
    text = read_log(log)
    for what in ('00000.tar:nocap', 'no .txt caption', '00000.tar:noimg',
                 'no image member', '00000.tar:broken.jpg',
                 'cannot decode', 'emptycap.jpg', 'empty caption',
                 '00001.tar', 'damaged tar'):
        assert what in text, what


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
