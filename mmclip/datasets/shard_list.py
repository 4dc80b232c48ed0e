"""Resolving a shard specification into the list of shards to read.

A specification is what :class:`mmclip.datasets.WebDatasetShards` takes as
``shards``: brace patterns, ``::``-joined patterns (open_clip's
``--train-data``), local globs, ``pipe:`` commands and URLs, or a list of
these.
"""
import glob
import os
import os.path as osp
from typing import List, Sequence, Union
from urllib.parse import urlparse

from webdataset.shardlists import expand_urls


def _is_local(url: str) -> bool:
    """Whether ``gopen`` reads ``url`` as a plain local path."""
    return urlparse(url).scheme == ''


def list_shards(shards: Union[str, Sequence[str]],
                check_exists: bool = True) -> List[str]:
    """Resolve a shard specification into the list webdataset opens.

    Args:
        shards (str | Sequence[str]): One pattern or a list of them. A
            pattern may join several with ``::``, use brace expansion
            (``data/{00000..00099}.tar``, webdataset's ``expand_urls``, which
            also substitutes ``${NAME}`` from the ``WDS_NAME`` environment
            variable), and, for local paths, globs (``data/*.tar``, sorted)
            and ``~``. ``pipe:`` commands and URLs pass through unchanged.
        check_exists (bool): Fail if a local shard is missing. Defaults to
            True.

    Returns:
        List[str]: Shards in the order given.
    """
    patterns = [shards] if isinstance(shards, str) else list(shards)
    urls: List[str] = []
    for url in (u for p in patterns for u in expand_urls(str(p))):
        if not _is_local(url):
            urls.append(url)
            continue
        path = osp.expanduser(url)
        if any(c in path for c in '*?['):
            found = sorted(glob.glob(path))
            if not found:
                raise FileNotFoundError(
                    f'Shard pattern {path!r} matches no file.')
            urls += found
        else:
            urls.append(path)
    if not urls:
        raise ValueError(f'No shards in {shards!r}.')
    if check_exists:
        missing = [u for u in urls if _is_local(u) and not osp.isfile(u)]
        if missing:
            raise FileNotFoundError(
                f'{len(missing)} of {len(urls)} shards do not exist, e.g. '
                f'{missing[:3]}; check the shards pattern and the working '
                'directory.')
    return urls


def tar_is_complete(path: str) -> bool:
    """Whether the tar file ``path`` ends as every tar writer ends one:
    whole 512-byte blocks, the last two zero. A shard cut at a member
    boundary reads without an error in tarfile and webdataset (measured
    with webdataset 1.0.2), so this is how a truncated shard is noticed."""
    try:
        size = os.path.getsize(path)
        with open(path, 'rb') as f:
            f.seek(max(0, size - 1024))
            tail = f.read()
    except OSError:  # missing: webdataset's error names it
        return True
    return size % 512 == 0 and size >= 1024 and not tail.strip(b'\0')
