"""Streaming image-text samples from webdataset tar shards (img2dataset).

Why our own reader instead of the ``webdataset`` package: the format is a
plain tar with one naming rule (:mod:`mmclip.datasets.shards`, ~100 lines
over :mod:`tarfile`); we need only local shards, a shard split, a shuffle
buffer and a sample quota, and we need them to cooperate with mmengine
(rank from ``mmengine.dist``, bad-sample accounting, ``len()`` for the
``EpochBasedTrainLoop``). The package adds a dependency with its own
pipeline DSL, URL / ``pipe:`` handling and changing APIs across versions,
which is harder to audit than this file. For remote shards, mount or copy
them (or add an opener); that is the only feature we give up.

**Splitting** (no overlap, no loss): there are ``S = world_size *
num_workers`` readers; reader ``s = rank * num_workers + worker_id`` reads
shards ``s, s + S, s + 2S, ...``. With fewer shards than readers every
reader opens every shard and keeps the samples ``i`` with
``(i + shard_index) % S == s`` (correct, but each reader decompresses all
shards; prefer at least ``S`` shards).

**Epoch length**: with ``num_samples=None`` a pass reads every assigned
shard once and the dataset has no ``len()`` (fine for a plain DataLoader or an
``IterBasedTrainLoop``). With ``num_samples=N`` each rank yields exactly
``len(dataset) = (N // world_size) // batch_size * batch_size`` samples per
epoch, split over its workers in whole batches, and every worker cycles over
its shards (reshuffled each pass) as long as needed, like open_clip's
``--train-num-samples``. Set ``batch_size`` to the DataLoader's so no worker
ends on a partial batch.

**Shuffling**: shard order per reader and a ``shuffle_buffer`` of raw
(undecoded, so cheap) samples, seeded from ``seed``, rank, worker id, the
DataLoader's per-epoch worker seed and a per-process pass counter, so each
epoch differs (also with ``persistent_workers=True``) and runs are
reproducible. A worker yields its first sample once its buffer is full.

**Evaluation**: mmengine's evaluator needs ``len(dataset)`` and every sample
exactly once; evaluate on a map-style dataset (``ImageTextDataset``,
``CocoCaptionDataset``) instead.

**With mmengine's Runner**: PyTorch forbids a sampler for an
``IterableDataset``, so the dataloader config needs ``sampler=None``::

    train_dataloader = dict(
        batch_size=256, num_workers=8, persistent_workers=True,
        sampler=None,  # IterableDataset: no sampler
        dataset=dict(type='WebDatasetShards',
                     shards='data/cc3m/{00000..00331}.tar',
                     num_samples=2_800_000, batch_size=256,
                     pipeline=train_pipeline))
"""
import json
import random
from typing import Iterator, Optional, Sequence, Union

from mmengine.dist import get_dist_info
from mmengine.logging import MMLogger
from torch.utils.data import IterableDataset, get_worker_info

from mmclip.registry import DATASETS
from .bad_samples import BAD_REASON_KEY, BadSampleTracker
from .base_dataset import build_pipeline
from .shards import iter_tar_samples, list_shards


@DATASETS.register_module()
class WebDatasetShards(IterableDataset):
    """Image-caption samples streamed from webdataset tar shards.

    Each sample holds an image member (first of ``image_exts`` present) and a
    caption member (``text_ext``), optionally a ``.json`` with metadata. The
    pipeline receives ``dict(img_bytes=..., img_path='shard.tar:key',
    text=str, key=str, json=dict)`` and should start with ``LoadImageRGB``
    (which decodes ``img_bytes``). Samples the pipeline rejects, samples
    missing a member and damaged shards are counted, named in the log and
    limited exactly like in the map-style datasets (per process, see
    :mod:`mmclip.datasets.bad_samples`).

    Args:
        shards (str | Sequence[str]): Shard pattern(s): brace expansion
            ``'data/{00000..00099}.tar'``, globs, ``::``-joined patterns or a
            list of paths.
        pipeline (Sequence[dict]): Transforms. Defaults to ().
        num_samples (int, optional): Samples per epoch over all ranks; None
            reads every shard once per epoch and gives no ``len()``.
            Defaults to None.
        batch_size (int): The DataLoader's batch size, used to give each
            worker whole batches when ``num_samples`` is set. Defaults to 1.
        shuffle_buffer (int): Samples held for shuffling; 0 disables it.
            Defaults to 1000.
        shuffle_shards (bool): Shuffle the shard order of every pass.
            Defaults to True.
        test_mode (bool): Evaluation: no shuffling, and a bad sample raises.
            Defaults to False.
        seed (int): Base seed of the shuffling. Defaults to 0.
        image_exts (Sequence[str]): Image member extensions, by priority.
            Defaults to ``('jpg', 'jpeg', 'png', 'webp')``.
        text_ext (str): Caption member extension. Defaults to ``'txt'``.
        rank (int, optional): This process's rank; None asks
            ``mmengine.dist.get_dist_info()`` when iterating. Defaults to None.
        world_size (int, optional): Number of ranks; None asks mmengine.
            Defaults to None.
        max_bad_fraction (float, optional): Bad-sample limit per process.
            Defaults to 0.1.
        min_samples (int): Samples seen before the limit applies.
            Defaults to 20.
        metainfo (dict, optional): Returned by :attr:`metainfo`.
            Defaults to None.
        check_shards (bool): Check at build time that every shard exists.
            Defaults to True.
    """

    def __init__(self,
                 shards: Union[str, Sequence[str]],
                 pipeline: Sequence = (),
                 num_samples: Optional[int] = None,
                 batch_size: int = 1,
                 shuffle_buffer: int = 1000,
                 shuffle_shards: bool = True,
                 test_mode: bool = False,
                 seed: int = 0,
                 image_exts: Sequence[str] = ('jpg', 'jpeg', 'png', 'webp'),
                 text_ext: str = 'txt',
                 rank: Optional[int] = None,
                 world_size: Optional[int] = None,
                 max_bad_fraction: Optional[float] = 0.1,
                 min_samples: int = 20,
                 metainfo: Optional[dict] = None,
                 check_shards: bool = True):
        self.shards = list_shards(shards, check_exists=check_shards)
        self.pipeline = build_pipeline(pipeline)
        if num_samples is not None and num_samples < 1:
            raise ValueError(
                f'num_samples must be positive, got {num_samples}')
        self.num_samples = num_samples
        self.batch_size = int(batch_size)
        self.test_mode = test_mode
        self.shuffle_buffer = 0 if test_mode else int(shuffle_buffer)
        self.shuffle_shards = shuffle_shards and not test_mode
        self.seed = seed
        self.image_exts = tuple(e.lower().lstrip('.') for e in image_exts)
        self.text_ext = text_ext.lower().lstrip('.')
        self._rank, self._world_size = rank, world_size
        self._metainfo = dict(metainfo or {})
        self.bad_samples = BadSampleTracker(
            f'WebDatasetShards({len(self.shards)} shards)',
            max_bad_fraction=max_bad_fraction, min_samples=min_samples)
        self._passes = 0  # __iter__ calls in this process, for reseeding

    @property
    def metainfo(self) -> dict:
        """dict: Meta information (a copy)."""
        return dict(self._metainfo)

    def _dist(self):
        rank, world = get_dist_info()
        return (rank if self._rank is None else self._rank,
                world if self._world_size is None else self._world_size)

    def __len__(self) -> int:
        """Samples one rank yields per epoch (needs ``num_samples``)."""
        if self.num_samples is None:
            raise TypeError(
                'WebDatasetShards has no length without num_samples; set '
                'num_samples (samples per epoch, all ranks) for an '
                'EpochBasedTrainLoop.')
        per_rank = self.num_samples // self._dist()[1]
        length = per_rank // self.batch_size * self.batch_size
        if length == 0:
            raise ValueError(
                f'num_samples={self.num_samples} gives less than one batch of '
                f'{self.batch_size} per rank; raise num_samples.')
        return length

    def _worker_quota(self, worker_id: int, num_workers: int) -> int:
        batches = len(self) // self.batch_size
        mine = batches // num_workers + (worker_id < batches % num_workers)
        return mine * self.batch_size

    def _reader_shards(self, slot: int, num_slots: int):
        """``(shard_index, path)`` pairs and whether samples are split."""
        indexed = list(enumerate(self.shards))
        if len(indexed) >= num_slots:
            return indexed[slot::num_slots], False
        if self._passes == 1 and slot == 0:
            MMLogger.get_current_instance().warning(
                f'{len(self.shards)} shards for {num_slots} readers (ranks x '
                'workers): every reader reads every shard and keeps 1 in '
                f'{num_slots} samples. Use at least {num_slots} shards.')
        return indexed, True

    def _raw_samples(self, slot: int, num_slots: int,
                     rng: random.Random) -> Iterator[dict]:
        mine, split = self._reader_shards(slot, num_slots)
        while True:
            order = list(mine)
            if self.shuffle_shards:
                rng.shuffle(order)
            found = 0
            for index, path in order:
                try:
                    for i, sample in enumerate(iter_tar_samples(path)):
                        if split and (i + index) % num_slots != slot:
                            continue
                        found += 1
                        sample['__shard__'] = path
                        yield sample
                except Exception as e:  # damaged shard: log, go on
                    self._bad(path, 'damaged tar, rest of shard skipped: '
                              f'{type(e).__name__}: {e}')
            if self.num_samples is None:
                return
            if not found:
                raise RuntimeError(
                    f'Shards {[p for _, p in mine][:3]}... of reader {slot} '
                    'hold no samples; cannot fill num_samples.')

    def _shuffled(self, samples: Iterator[dict],
                  rng: random.Random) -> Iterator[dict]:
        if self.shuffle_buffer <= 1:
            yield from samples
            return
        buffer = []
        for sample in samples:
            if len(buffer) < self.shuffle_buffer:
                buffer.append(sample)
                continue
            i = rng.randrange(len(buffer))
            yield buffer[i]
            buffer[i] = sample
        rng.shuffle(buffer)
        yield from buffer

    def _bad(self, name: str, reason: str) -> None:
        if self.test_mode:
            raise RuntimeError(
                f'WebDatasetShards: evaluation sample {name} is bad: {reason}.'
                ' Evaluation cannot skip samples; fix or remove it.')
        self.bad_samples.record_bad(name, reason)

    def _prepare(self, sample: dict) -> Optional[dict]:
        name = f"{sample['__shard__']}:{sample['__key__']}"
        img_ext = next((e for e in self.image_exts if e in sample), None)
        members = sorted(k for k in sample if not k.startswith('__'))
        if img_ext is None:
            return self._bad(name, f'no image member {self.image_exts}; '
                             f'members: {members}')
        if self.text_ext not in sample:
            return self._bad(name, f'no .{self.text_ext} caption; members: '
                             f'{members}')
        info = dict(
            img_bytes=sample[img_ext],
            img_path=f'{name}.{img_ext}',
            text=sample[self.text_ext].decode('utf-8', errors='replace'),
            key=sample['__key__'])
        if 'json' in sample:
            try:
                info['json'] = json.loads(sample['json'])
            except ValueError:
                pass  # metadata only; the pair itself is fine
        data = self.pipeline(info)
        if data is None:
            return self._bad(info['img_path'], info.get(
                BAD_REASON_KEY, 'a transform returned None without a reason'))
        self.bad_samples.record_good()
        return data

    def __iter__(self) -> Iterator[dict]:
        rank, world = self._dist()
        info = get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        self._passes += 1
        rng = random.Random(f'{self.seed}-{rank}-{wid}-'
                            f'{info.seed if info else 0}-{self._passes}')
        quota = None if self.num_samples is None else \
            self._worker_quota(wid, nw)
        if quota == 0:
            return
        count = 0
        stream = self._shuffled(
            self._raw_samples(rank * nw + wid, world * nw, rng), rng)
        for sample in stream:
            data = self._prepare(sample)
            if data is None:
                continue
            yield data
            count += 1
            if quota is not None and count >= quota:
                return

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(num_shards={len(self.shards)}, '
                f'num_samples={self.num_samples}, batch_size='
                f'{self.batch_size}, shuffle_buffer={self.shuffle_buffer})')
