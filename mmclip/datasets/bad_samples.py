"""Counting, naming and limiting the bad samples a dataset skips.

Web-scale image-text data always holds some broken files (404 pages saved as
``.jpg``, truncated downloads, empty captions). mmengine's convention is that a
transform returns ``None`` for such a sample and ``BaseDataset.__getitem__``
fetches another index instead -- silently. Here every skip is

* **named**: a warning in the current ``MMLogger`` with the file and the reason
  (the transform that rejected the sample writes the reason into the results
  dict under :data:`BAD_REASON_KEY` before returning ``None``, see
  :func:`mark_bad`);
* **counted**: ``seen`` and ``bad`` per :class:`BadSampleTracker`;
* **limited**: once ``min_samples`` samples were seen, a bad fraction above
  ``max_bad_fraction`` raises :class:`TooManyBadSamplesError`, because that
  many broken files means a broken dataset (wrong ``data_root``, wrong column,
  half-synced bucket), not noise.

Counters are per process. Each DataLoader worker holds its own copy of the
dataset, so with ``num_workers=N`` on ``R`` ranks there are ``N * R``
independent counters, each checking the fraction of the samples *it* read.
Uniformly spread bad files give every worker about the global fraction, so the
limit acts the same; no inter-process communication is needed, and the error
raised in a worker is re-raised by the DataLoader in the main process. Log
lines carry the rank and worker id. On ranks other than 0 mmengine's console
handler only shows errors, so the warnings of those ranks are not printed, but
the limit still applies there.
"""
from typing import List, Optional, Tuple

from mmengine.dist import get_dist_info
from mmengine.logging import MMLogger

#: Key of the results dict where a transform explains why it returned None.
BAD_REASON_KEY = 'bad_sample_reason'


def mark_bad(results: dict, reason: str) -> None:
    """Record why a transform rejects a sample (it then returns None).

    Args:
        results (dict): The results dict the transform was called with.
        reason (str): Short, specific reason, e.g. ``'truncated image file'``.

    Returns:
        None: so transforms can ``return mark_bad(results, reason)``.
    """
    results[BAD_REASON_KEY] = reason
    return None


class TooManyBadSamplesError(RuntimeError):
    """More bad samples than ``max_bad_fraction`` allows (message only, so the
    DataLoader can re-raise it from a worker)."""


def _where() -> str:
    """``'rank R worker W'`` of the calling process, for log lines."""
    import torch.utils.data as tud
    rank, _ = get_dist_info()
    info = tud.get_worker_info()
    worker = 'main' if info is None else str(info.id)
    return f'rank {rank} worker {worker}'


class BadSampleTracker:
    """Counts samples and bad samples of one dataset in one process.

    Args:
        name (str): Dataset name used in messages, e.g. the class name and
            annotation file.
        max_bad_fraction (float, optional): Largest tolerated ``bad / seen``.
            None disables the limit. Defaults to 0.1.
        min_samples (int): The limit is only checked once this many samples
            were seen, so that two bad files among the first three samples do
            not stop a run. Defaults to 20.
        max_examples (int): How many bad files are kept to be named in the
            error. Defaults to 5.
    """

    def __init__(self,
                 name: str,
                 max_bad_fraction: Optional[float] = 0.1,
                 min_samples: int = 20,
                 max_examples: int = 5):
        if max_bad_fraction is not None and not 0 <= max_bad_fraction <= 1:
            raise ValueError('max_bad_fraction must be in [0, 1] or None, '
                             f'got {max_bad_fraction}')
        self.name = name
        self.max_bad_fraction = max_bad_fraction
        self.min_samples = int(min_samples)
        self.max_examples = int(max_examples)
        self.seen = 0
        self.bad = 0
        self.examples: List[Tuple[str, str]] = []

    @property
    def bad_fraction(self) -> float:
        """float: ``bad / seen`` so far (0 before any sample)."""
        return self.bad / self.seen if self.seen else 0.0

    def record_good(self) -> None:
        """Count one sample that went through the pipeline."""
        self.seen += 1

    def record_bad(self, path: str, reason: str) -> None:
        """Count, log and check one skipped sample.

        Args:
            path (str): What was skipped: the image file, or
                ``shard.tar:key`` for a webdataset member.
            reason (str): Why.

        Raises:
            TooManyBadSamplesError: If the bad fraction is now above
                ``max_bad_fraction`` with at least ``min_samples`` seen.
        """
        self.seen += 1
        self.bad += 1
        if len(self.examples) < self.max_examples:
            self.examples.append((path, reason))
        MMLogger.get_current_instance().warning(
            f'{self.name}: skipped bad sample {path} ({reason}); '
            f'{self.bad} bad of {self.seen} seen ({self.bad_fraction:.1%}) '
            f'in {_where()}')
        self.check()

    def check(self) -> None:
        """Raise if too many bad samples were seen (see class docstring)."""
        if (self.max_bad_fraction is None or self.seen < self.min_samples
                or self.bad_fraction <= self.max_bad_fraction):
            return
        listed = '; '.join(f'{p} ({r})' for p, r in self.examples)
        raise TooManyBadSamplesError(
            f'{self.name}: {self.bad} of {self.seen} samples '
            f'({self.bad_fraction:.1%}) read in {_where()} were bad, above '
            f'max_bad_fraction={self.max_bad_fraction}. First bad samples: '
            f'{listed}. Check data_root / the image column / the files, '
            'remove the broken entries from the annotations, or raise '
            'max_bad_fraction (None disables the limit).')

    def summary(self) -> dict:
        """dict: ``seen``, ``bad``, ``bad_fraction`` and ``examples``."""
        return dict(
            seen=self.seen,
            bad=self.bad,
            bad_fraction=self.bad_fraction,
            examples=list(self.examples))
