"""What an index is built from: a folder of images (walked recursively), a
CSV / TSV / JSONL file of paths (open_clip's ``filepath`` column), or
webdataset shards (img2dataset's ``.tar`` files).

Each yields records ``dict(image_path=str, image=path_or_bytes[,
caption=str])``: ``image_path`` is the record's identity in the index (what
a re-run skips, what a search returns), ``image`` what
:func:`mmclip.apis.load_image` decodes.
"""
import glob
import os
import os.path as osp
import tarfile
from typing import Dict, Iterator, List, Optional, Tuple

#: File extensions taken as images when a folder is walked (lower case).
#: Other files are counted and listed as not images, never decoded.
IMAGE_EXTS = ('.jpg', '.jpeg', '.jpe', '.jfif', '.png', '.webp', '.bmp',
              '.gif', '.tif', '.tiff', '.ppm', '.pgm')
#: Annotation files read as lists of images, by extension.
LIST_EXTS = ('.csv', '.tsv', '.txt', '.jsonl', '.ndjson', '.json')
#: Separates a shard's path from its member's name in ``image_path``.
SHARD_MEMBER_SEP = '::'
#: Member extensions of a webdataset sample taken as its image, in order.
SHARD_IMAGE_KEYS = ('jpg', 'jpeg', 'png', 'webp')
#: First bytes of gzip, bzip2 and xz files (compressed shards).
_COMPRESSED_MAGIC = (b'\x1f\x8b', b'BZh', b'\xfd7zXZ')
#: Member extensions taken as its caption.
SHARD_CAPTION_KEYS = ('txt', 'caption')


class SourceError(ValueError):
    """A source that cannot be read as images (the message says why)."""


def source_kind(source: str) -> str:
    """``'folder'``, ``'list'`` or ``'shards'`` for ``source``.

    Args:
        source (str): A folder (of images, or of ``.tar`` shards only), an
            annotation file (``.csv``, ``.tsv``, ``.jsonl``, ...), a ``.tar``
            shard or a brace pattern of shards
            (``shards/{00000..00009}.tar``).

    Raises:
        SourceError: When ``source`` does not exist or has another type.
    """
    if '{' in source and source.endswith('.tar'):
        return 'shards'
    if osp.isdir(source):
        names = [n for n in os.listdir(source) if not n.startswith('.')]
        tars = [n for n in names if n.endswith('.tar')]
        return 'shards' if tars and len(tars) == len(names) else 'folder'
    if not osp.exists(source):
        raise SourceError(f'{source!r} does not exist: give a folder of '
                          'images, a CSV/TSV/JSONL file of image paths or '
                          'webdataset .tar shards.')
    ext = osp.splitext(source)[1].lower()
    if ext == '.tar':
        return 'shards'
    if ext in LIST_EXTS:
        return 'list'
    raise SourceError(
        f'{source!r} is a {ext or "extension-less"} file: give a folder of '
        f'images, a list of image paths ({", ".join(LIST_EXTS)}) or '
        'webdataset .tar shards. To index one image, put it in a folder.')


def walk_folder(folder: str) -> Tuple[List[str], List[str]]:
    """Every image file under ``folder`` (recursively, hidden files and
    folders left out, sorted by path) and every other file.

    Returns:
        tuple: ``(images, not_images)``, both lists of paths.
    """
    images, others = [], []
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
        for name in sorted(files):
            if name.startswith('.'):
                continue
            path = osp.join(root, name)
            is_image = osp.splitext(name)[1].lower() in IMAGE_EXTS
            (images if is_image else others).append(path)
    return images, others


def read_list(path: str, img_key: str = 'filepath',
              caption_key: Optional[str] = 'title') -> List[Dict[str, str]]:
    """The records of an annotation file: its ``img_key`` column as
    ``image_path`` (relative paths are relative to the file's folder) and
    ``caption_key``'s as ``caption`` when the file has that column.

    Args:
        path (str): A ``.csv`` (comma), ``.tsv`` / ``.txt`` (tab) or
            ``.jsonl`` / ``.json`` file, read as
            :class:`mmclip.datasets.ImageTextDataset` reads it.
        img_key (str): The image path column. Defaults to ``'filepath'``.
        caption_key (str, optional): The caption column, kept in the index's
            metadata when present. Defaults to ``'title'``.

    Raises:
        SourceError: When the file lacks ``img_key`` (its columns named).
    """
    from mmclip.datasets.image_text import (EXT_SEPARATORS, JSON_EXTS,
                                            open_records)
    ext = osp.splitext(path)[1].lower()
    sep = None if ext in JSON_EXTS else EXT_SEPARATORS[ext]
    base = osp.dirname(osp.abspath(path))
    records = []
    with open_records(path, sep) as (columns, rows):
        if img_key not in columns:
            raise SourceError(
                f'{path} has no column {img_key!r}; its columns are '
                f'{columns}. Pass --img-key with the column of image paths.')
        for row in rows:
            if isinstance(row, list):
                row = dict(zip(columns, row))
            if not isinstance(row, dict) or not row.get(img_key):
                continue
            image = osp.join(base, row[img_key])  # absolute paths stay
            record = dict(image_path=osp.normpath(image), image=image)
            if caption_key and row.get(caption_key):
                record['caption'] = str(row[caption_key])
            records.append(record)
    return records


def list_shards(source: str) -> List[str]:
    """The ``.tar`` shards of ``source`` (a folder of them, one file, or a
    brace pattern such as ``shards/{00000..00009}.tar``), sorted.

    Raises:
        SourceError: When a shard the pattern names does not exist.
    """
    from mmclip.datasets.shard_list import list_shards as expand
    if osp.isdir(source):
        return sorted(glob.glob(osp.join(source, '*.tar')))
    shards = expand(source, check_exists=False)  # webdataset's expansion
    missing = [s for s in shards if not osp.isfile(s)]
    if missing:
        raise SourceError(
            f'{len(missing)} of the {len(shards)} shards of {source!r} '
            f'do not exist (first: {missing[0]}); fix the pattern.')
    return shards


def iter_shard(shard: str, problems: List[str]) -> Iterator[dict]:
    """The samples of one webdataset shard, in order: its image member
    (:data:`SHARD_IMAGE_KEYS`) as bytes, named
    ``'{shard}::{member}'``, and its caption when it has one.

    Samples without an image member are skipped and a truncated or corrupt
    shard ends early; both are appended to ``problems`` (one line each,
    naming the shard), never dropped silently.

    Args:
        shard (str): The ``.tar`` file.
        problems (list[str]): Receives a line per problem.
    """
    def sample_record(key, members):
        image_ext = next((e for e in SHARD_IMAGE_KEYS if e in members), None)
        if image_ext is None:
            problems.append(f'{shard}: sample {key!r} has no image member '
                            f'(it has {sorted(members)})')
            return None
        record = dict(
            image_path=f'{shard}{SHARD_MEMBER_SEP}{key}.{image_ext}',
            image=members[image_ext])
        caption_ext = next((e for e in SHARD_CAPTION_KEYS if e in members),
                           None)
        if caption_ext:
            record['caption'] = members[caption_ext].decode(
                'utf-8', 'replace').strip()
        return record

    from mmclip.datasets.shard_list import tar_is_complete
    key, members, read = None, {}, 0
    try:
        complete = _compressed(shard) or tar_is_complete(shard)
        with tarfile.open(shard, 'r|*') as tar:
            for info in tar:
                if not info.isfile():
                    continue
                base = osp.basename(info.name)
                if base.startswith('.') or '.' not in base:
                    continue
                dirname = osp.dirname(info.name)
                stem, ext = base.split('.', 1)
                sample = osp.join(dirname, stem) if dirname else stem
                if sample != key and members:
                    record = sample_record(key, members)
                    if record:
                        read += 1
                        yield record
                    members = {}
                key = sample
                members[ext.lower()] = tar.extractfile(info).read()
        if members:
            record = sample_record(key, members)
            if record:
                read += 1
                yield record
        if not complete:
            raise tarfile.ReadError('no end-of-archive blocks after its last '
                                    'member')
    except (tarfile.TarError, EOFError, OSError) as err:
        problems.append(f'{shard}: truncated or corrupt after {read} samples '
                        f'({err}); re-create or re-download the shard')


def _compressed(shard: str) -> bool:
    """Whether ``shard`` is gzip/bzip2/xz-compressed (tarfile reads it;
    the end-of-archive check applies to plain tar files only)."""
    with open(shard, 'rb') as f:
        return f.read(6).startswith(_COMPRESSED_MAGIC)


def read_shard_member(image_path: str) -> bytes:
    """The bytes of ``'{shard}::{member}'`` (an ``image_path`` of an index
    built from shards).

    Raises:
        SourceError: When the shard or the member is gone.
    """
    shard, member = image_path.rsplit(SHARD_MEMBER_SEP, 1)
    try:
        with tarfile.open(shard) as tar:
            for info in tar:
                if info.name == member:
                    return tar.extractfile(info).read()
    except (tarfile.TarError, OSError) as err:
        raise SourceError(f'Cannot read shard {shard}: {err}') from None
    raise SourceError(f'{member} is no longer in {shard}.')


def open_image_bytes(image_path: str) -> bytes:
    """The bytes of an indexed image: a file, or a shard member."""
    if SHARD_MEMBER_SEP in image_path and not osp.exists(image_path):
        return read_shard_member(image_path)
    with open(image_path, 'rb') as f:
        return f.read()
