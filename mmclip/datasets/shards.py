"""Shard lists and a streaming reader of webdataset tar shards.

A webdataset shard is a plain POSIX tar in which the files of one sample are
adjacent and share a key: ``000000012.jpg``, ``000000012.txt``,
``000000012.json`` (img2dataset's layout). The key is the member path up to
the first dot of its file name; the rest is the extension. This module
re-implements just that convention with :mod:`tarfile` instead of depending on
the ``webdataset`` package; see :mod:`mmclip.datasets.webdataset` for why.
"""
import glob
import os.path as osp
import re
import tarfile
from typing import Dict, Iterator, List, Sequence, Union

_RANGE_RE = re.compile(r'^(-?\d+)\.\.(-?\d+)(?:\.\.(-?\d+))?$')
_GLOB_CHARS = ('*', '?', '[')


def _closing_brace(text: str, start: int) -> int:
    """Index of the brace closing the one at ``start``, -1 if unbalanced."""
    depth = 0
    for i in range(start, len(text)):
        if text[i] == '{':
            depth += 1
        elif text[i] == '}':
            depth -= 1
            if depth == 0:
                return i
    return -1


def _split_top_level(text: str) -> List[str]:
    """Split on commas that are not inside nested braces."""
    parts, depth, last = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch == '{'
        depth -= ch == '}'
        if ch == ',' and depth == 0:
            parts.append(text[last:i])
            last = i + 1
    parts.append(text[last:])
    return parts


def _expand_range(match: 're.Match') -> List[str]:
    first, last, step = match.group(1), match.group(2), match.group(3)
    a, b = int(first), int(last)
    step = abs(int(step)) if step else 1
    # Zero padding like bash / braceexpand: {00000..00099} -> '00042'.
    padded = any(len(s.lstrip('-')) > 1 and s.lstrip('-')[0] == '0'
                 for s in (first, last))
    width = max(len(first), len(last)) if padded else 0
    values = range(a, b + 1, step) if a <= b else range(a, b - 1, -step)
    return [str(v).zfill(width) for v in values]


def expand_braces(pattern: str) -> List[str]:
    """Bash-style brace expansion: ranges ``{000..099}`` and lists ``{a,b}``.

    Args:
        pattern (str): E.g. ``'data/{00000..00099}.tar'`` or
            ``'{train,extra}/shard-{0..9}.tar'``. Nested braces work; a brace
            group with neither a range nor a comma stays literal.

    Returns:
        List[str]: The expansions, in order.

    Examples:
        >>> expand_braces('s-{08..10}.tar')
        ['s-08.tar', 's-09.tar', 's-10.tar']
    """
    start = pattern.find('{')
    while start != -1:
        end = _closing_brace(pattern, start)
        if end == -1:
            return [pattern]
        body = pattern[start + 1:end]
        match = _RANGE_RE.match(body)
        parts = _split_top_level(body)
        if match or len(parts) > 1:
            options = _expand_range(match) if match else [
                o for p in parts for o in expand_braces(p)
            ]
            head, tails = pattern[:start], expand_braces(pattern[end + 1:])
            return [head + o + t for o in options for t in tails]
        start = pattern.find('{', end + 1)  # literal group, look further
    return [pattern]


def list_shards(shards: Union[str, Sequence[str]],
                check_exists: bool = True) -> List[str]:
    """Resolve a shard specification into a list of paths.

    Args:
        shards (str | Sequence[str]): One pattern or a list of them. A
            pattern may use brace expansion (``data/{00000..00099}.tar``),
            globs (``data/*.tar``, sorted) and join several patterns with
            ``::`` like open_clip's ``--train-data``.
        check_exists (bool): Fail if a brace-expanded or listed path is
            missing. Defaults to True.

    Returns:
        List[str]: Shard paths, in the order given.
    """
    patterns = [shards] if isinstance(shards, str) else list(shards)
    paths: List[str] = []
    for spec in patterns:
        for pattern in str(spec).split('::'):
            for path in expand_braces(osp.expanduser(pattern)):
                if any(c in path for c in _GLOB_CHARS):
                    found = sorted(glob.glob(path))
                    if not found:
                        raise FileNotFoundError(
                            f'Shard pattern {path!r} matches no file.')
                    paths += found
                else:
                    paths.append(path)
    if not paths:
        raise ValueError(f'No shards in {shards!r}.')
    if check_exists:
        missing = [p for p in paths if not osp.isfile(p)]
        if missing:
            raise FileNotFoundError(
                f'{len(missing)} of {len(paths)} shards do not exist, e.g. '
                f'{missing[:3]}; check the shards pattern and the working '
                'directory.')
    return paths


def split_key(name: str):
    """``'dir/000012.seg.jpg'`` -> ``('dir/000012', 'seg.jpg')``; the key is
    everything before the first dot of the file name (webdataset's rule)."""
    folder, base = osp.split(name)
    dot = base.find('.')
    if dot <= 0:  # no extension, or a hidden file
        return None, None
    return osp.join(folder, base[:dot]) if folder else base[:dot], \
        base[dot + 1:].lower()


def iter_tar_samples(path: str) -> Iterator[Dict[str, Union[str, bytes]]]:
    """Stream the samples of one tar shard.

    Members are read in order (``'r|*'`` streaming mode, also for gzipped
    tars) and consecutive members with the same key are grouped.

    Args:
        path (str): Shard path.

    Yields:
        dict: ``{'__key__': key, ext: bytes, ...}``, e.g. ``{'__key__':
        '000012', 'jpg': b'...', 'txt': b'a dog'}``.

    Raises:
        tarfile.TarError | OSError | EOFError: For a corrupt or truncated
            shard, after yielding the samples read before the damage.
    """
    current: Dict[str, Union[str, bytes]] = {}
    with open(path, 'rb') as f, tarfile.open(fileobj=f, mode='r|*') as tar:
        for member in tar:
            if not member.isfile():
                continue
            key, ext = split_key(member.name)
            if key is None:
                continue
            if current and (current['__key__'] != key or ext in current):
                yield current
                current = {}
            current['__key__'] = key
            current[ext] = tar.extractfile(member).read()
    if current:
        yield current
