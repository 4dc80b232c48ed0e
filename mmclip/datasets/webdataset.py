"""Streaming image-text samples from webdataset tar shards (img2dataset).

The reading is the ``webdataset`` package's (the one open_clip uses): its
``gopen`` opens local paths, ``pipe:`` commands and ``http(s)://`` URLs, its
``tarfile_to_samples`` groups the members of a tar into samples by key, and
``shuffle``, ``split_by_worker`` and ``DataPipeline.with_epoch`` give the
buffer shuffle, the worker split and a fixed epoch length. This module only
adds what mmengine needs around it: the rank from ``mmengine.dist``, a
``len()`` for the ``EpochBasedTrainLoop``, and mmclip's bad-sample accounting
(:mod:`mmclip.datasets.bad_samples`) as webdataset's ``handler=``.

**Shards**: ``'data/{00000..00331}.tar'`` (brace expansion), ``::``-joined
patterns (open_clip's ``--train-data``), local globs, lists of any of these,
``'pipe:aws s3 cp s3://bucket/{000..099}.tar -'`` and
``'https://host/{000..099}.tar'``. Local shards are checked to exist at build
time; ``pipe:`` and URLs are opened only when read.

**Splitting** (no overlap, no loss): there are ``R = world_size *
num_workers`` readers; rank ``r`` keeps every ``world_size``-th shard from
``r`` (mmengine's rank), and each DataLoader worker of it every
``num_workers``-th of those (``webdataset.split_by_worker``). With fewer
shards than readers the same two splits apply to the samples instead: every
reader reads every shard, in list order, and keeps 1 in ``R`` samples
(correct, but each reader decompresses all shards; prefer at least ``R``
shards). With ``resampled=True`` each reader instead draws shards at random
with replacement (``webdataset.ResampledShards``, open_clip's
``--dataset-resampled``): no split, some samples repeat within an epoch.

**Epoch length**: with ``num_samples=None`` a pass reads every assigned
shard once and the dataset has no ``len()`` (fine for a plain DataLoader or an
``IterBasedTrainLoop``). With ``num_samples=N`` each rank yields exactly
``len(dataset) = (N // world_size) // batch_size * batch_size`` samples per
epoch, split over its workers in whole batches (``with_epoch``), and every
worker cycles over its shards (reshuffled each pass) as long as needed, like
open_clip's ``--train-num-samples``. Set ``batch_size`` to the DataLoader's
so no worker ends on a partial batch.

**Shuffling**: shard order per reader and a ``shuffle_buffer`` of raw
(undecoded, so cheap) samples, seeded from ``seed``, rank, worker id, the
DataLoader's per-epoch worker seed and a per-process pass counter, so each
epoch differs (also with ``persistent_workers=True``) and runs are
reproducible. A worker yields its first sample once its buffer is full.

**Bad data**: samples without an image or caption member, samples the
pipeline rejects and damaged shards (truncated tar, missing file, failing
``pipe:`` command) are skipped, counted, named in the log and limited like in
the map-style datasets. A damaged shard counts as one bad sample however many
of its members fail; the samples read before the damage are used. With
``resampled=True`` a reader that has drawn every shard since its last sample
(all damaged or empty) raises instead of drawing forever.

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
from functools import partial
from itertools import islice
from typing import Iterable, Iterator, Optional, Sequence, Union

import webdataset as wds
from mmengine.dist import get_dist_info
from mmengine.logging import MMLogger
from torch.utils.data import IterableDataset, get_worker_info

from mmclip.registry import DATASETS
from .bad_samples import (BAD_REASON_KEY, BadSampleTracker,
                          TooManyBadSamplesError)
from .pipelines import build_pipeline
from .shard_list import list_shards


class _EvaluationSampleError(RuntimeError):
    """A bad sample in test mode, where skipping would shift the metric."""


def _split_by_rank(items: Iterable, rank: int, world_size: int) -> Iterator:
    """Every ``world_size``-th item from ``rank`` (webdataset's
    ``split_by_node`` with the rank mmengine's Runner set up)."""
    return islice(items, rank, None, world_size)


@DATASETS.register_module()
class WebDatasetShards(IterableDataset):
    """Image-caption samples streamed from webdataset tar shards.

    Each sample holds an image member (first of ``image_exts`` present) and a
    caption member (``text_ext``), optionally a ``.json`` with metadata. The
    pipeline receives ``dict(img_bytes=..., img_path='shard.tar:key.jpg',
    text=str, key=str, json=dict)`` and should start with ``LoadImageRGB``
    (which decodes ``img_bytes``). Samples the pipeline rejects, samples
    missing a member and damaged shards are counted, named in the log and
    limited exactly like in the map-style datasets (per process, see
    :mod:`mmclip.datasets.bad_samples`). See the module docstring for the
    splitting, epoch and shuffling rules.

    Args:
        shards (str | Sequence[str]): Shard pattern(s), see
            :func:`~mmclip.datasets.list_shards`: brace expansion
            ``'data/{00000..00099}.tar'``, ``::``-joined patterns, local
            globs, ``pipe:`` commands, URLs or a list of these.
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
        check_shards (bool): Check at build time that every local shard
            exists. Defaults to True.
        resampled (bool): Draw shards at random with replacement in every
            reader instead of splitting them (needs ``num_samples``).
            Defaults to False.
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
                 check_shards: bool = True,
                 resampled: bool = False):
        self.shards = list_shards(shards, check_exists=check_shards)
        self.pipeline = build_pipeline(pipeline)
        if num_samples is not None and num_samples < 1:
            raise ValueError(
                f'num_samples must be positive, got {num_samples}')
        if resampled and (num_samples is None or test_mode):
            raise ValueError(
                'resampled=True draws shards endlessly: set num_samples '
                '(samples per epoch) and use it for training only.')
        self.num_samples = num_samples
        self.batch_size = int(batch_size)
        self.test_mode = test_mode
        self.resampled = resampled
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
        self._shard_now, self._shard_failed = None, False
        # resampled: shards drawn since the last sample read, of how many
        self._unread_shards, self._num_distinct = set(), len(set(self.shards))

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

    def _stages(self, rank: int, world: int, worker_id: int,
                num_workers: int, rng: random.Random) -> list:
        """The webdataset pipeline of one reader for one pass."""
        by_reader = [partial(_split_by_rank, rank=rank, world_size=world),
                     wds.split_by_worker]
        num_shards, readers = len(self.shards), world * num_workers
        by_sample = []
        if self.resampled:  # every reader draws from all shards: no split
            source = [wds.ResampledShards(
                self.shards, seed=self.seed, deterministic=True,
                worker_seed=partial(rng.getrandbits, 31))]
        elif num_shards >= readers:
            source = [wds.SimpleShardList(self.shards), *by_reader]
            if self.shuffle_shards:
                source.append(wds.shuffle(num_shards, num_shards, rng=rng))
        else:  # split the samples; the same shard order in every reader
            source, by_sample = [wds.SimpleShardList(self.shards)], by_reader
            if self._passes == 1 and rank == worker_id == 0:
                MMLogger.get_current_instance().warning(
                    f'{num_shards} shards for {readers} readers (ranks x '
                    'workers): every reader reads every shard and keeps 1 in '
                    f'{readers} samples. Use at least {readers} shards.')
        stages = [*source, self._note_shard,
                  wds.tarfile_to_samples(handler=self._on_read_error),
                  *([self._note_read] if self.resampled else []),
                  *by_sample]
        if self.shuffle_buffer > 1:
            stages.append(wds.shuffle(self.shuffle_buffer,
                                      self.shuffle_buffer, rng=rng))
        stages.append(self._prepared)
        return stages

    def _note_shard(self, shards: Iterable[dict]) -> Iterator[dict]:
        """Remember the shard being opened, to name it in read errors
        (webdataset opens the next one only when this one is done); when
        resampling, raise once every shard was drawn without a sample.
        """
        for shard in shards:
            if self.resampled:
                if len(self._unread_shards) == self._num_distinct:
                    raise RuntimeError(
                        f'WebDatasetShards: all {self._num_distinct} shards '
                        'were drawn (resampled=True) and none gave a sample: '
                        f'all damaged or empty, e.g. {self.shards[:3]} (see '
                        'the bad-sample warnings). Fix the shards pattern or '
                        'replace the broken shards.')
                self._unread_shards.add(shard['url'])
            self._shard_now, self._shard_failed = shard['url'], False
            yield shard

    def _note_read(self, samples: Iterable[dict]) -> Iterator[dict]:
        """A sample read: the shards drawn so far were not all broken."""
        for sample in samples:
            self._unread_shards.clear()
            yield sample

    def _on_read_error(self, exn: Exception) -> bool:
        """webdataset's ``handler``: count a damaged shard once, go on."""
        if isinstance(exn, (TooManyBadSamplesError, _EvaluationSampleError)):
            # Raised by this handler for a member; the tar reader around it
            # calls the handler again, with the shard appended to args.
            exn.args = exn.args[:1]
            raise exn
        if not self._shard_failed:
            self._shard_failed = True
            detail = getattr(exn, 'strerror', None) or (
                exn.args[0] if exn.args else '')
            self._bad(self._shard_now, 'damaged tar, rest of shard skipped: '
                      f'{type(exn).__name__}: {detail}')
        return True  # skip to what is still readable

    def _bad(self, name: str, reason: str) -> None:
        if self.test_mode:
            raise _EvaluationSampleError(
                f'WebDatasetShards: evaluation sample {name} is bad: {reason}.'
                ' Evaluation cannot skip samples; fix or remove it.')
        self.bad_samples.record_bad(name, reason)

    def _prepare(self, sample: dict) -> Optional[dict]:
        name = f"{sample['__url__']}:{sample['__key__']}"
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

    def _prepared(self, samples: Iterable[dict]) -> Iterator[dict]:
        """The mmclip pipeline as the last stage (not ``wds.map``, which
        would add ``__key__`` to the packed dict the model receives)."""
        for sample in samples:
            data = self._prepare(sample)
            if data is not None:
                yield data

    def __iter__(self) -> Iterator[dict]:
        rank, world = self._dist()
        # webdataset's view of the worker, as its split_by_worker sees it
        _, _, worker_id, num_workers = wds.utils.pytorch_worker_info()
        info = get_worker_info()
        self._passes += 1
        self._unread_shards.clear()
        rng = random.Random(f'{self.seed}-{rank}-{worker_id}-'
                            f'{info.seed if info else 0}-{self._passes}')
        quota = None if self.num_samples is None else \
            self._worker_quota(worker_id, num_workers)
        if quota == 0:
            return
        pipeline = wds.DataPipeline(
            *self._stages(rank, world, worker_id, num_workers, rng))
        if quota is not None:
            # repeats passes over this reader's shards until quota samples
            pipeline = pipeline.with_epoch(quota)
        count = 0
        for count, data in enumerate(pipeline, 1):
            yield data
        if quota is not None and count < quota:
            raise RuntimeError(
                f'WebDatasetShards: rank {rank} worker {worker_id} found '
                f'{count} usable samples, not {quota}: its shards (of '
                f'{self.shards[:3]}...) hold no readable samples; check them '
                '(see the bad-sample warnings).')

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(num_shards={len(self.shards)}, '
                f'num_samples={self.num_samples}, batch_size='
                f'{self.batch_size}, shuffle_buffer={self.shuffle_buffer})')
