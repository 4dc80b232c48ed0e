"""Image-text pairs listed in a CSV / TSV / JSONL file (open_clip's format)."""
import csv
import itertools
import json
import os.path as osp
from contextlib import contextmanager
from typing import Iterator, List, Optional, Sequence, TextIO, Tuple, Union

from mmengine.fileio import get_local_path, join_path
from mmengine.logging import MMLogger

from mmclip.errors import ConfigError
from mmclip.registry import DATASETS
from .base_dataset import ImageTextBaseDataset
from .transforms.text import clean_caption

#: Separator implied by the annotation file's extension when ``sep=None``.
#: ``.tsv``/``.txt`` are tab-separated like open_clip's ``--csv-separator``
#: default; ``.jsonl``/``.ndjson``/``.json`` hold one JSON object per record.
EXT_SEPARATORS = {'.csv': ',', '.tsv': '\t', '.txt': '\t'}
JSON_EXTS = ('.jsonl', '.ndjson', '.json')


def _records(f: TextIO, sep: Optional[str]
             ) -> Tuple[List[str], Iterator[Union[dict, list, None]]]:
    """Columns and records of an open annotation file, read lazily (a
    JSON list of objects is read whole).

    Args:
        f (TextIO): The file, opened with ``newline=''``.
        sep (str, optional): Field separator; None reads JSON lines (or one
            JSON list of objects).

    Returns:
        tuple: The column names (for JSON: the first record's keys) and an
        iterator of the records (for CSV: lists of fields, header excluded,
        None for a blank line, so that line numbers stay right; for JSON:
        the parsed values).
    """
    if sep is not None:
        reader = csv.reader(f, delimiter=sep)
        header = [h.strip() for h in next(reader, [])]
        return header, (r if r else None for r in reader)
    lines = (line for line in f if line.strip())
    first = next(lines, None)
    if first is None:
        return [], iter(())
    if first.lstrip().startswith('['):
        records = iter(json.loads(first + f.read()))
    else:
        records = map(json.loads, itertools.chain([first], lines))
    head = next(records, None)
    columns = list(head) if isinstance(head, dict) else []
    return columns, itertools.chain([head], records)


@contextmanager
def open_records(path: str, sep: Optional[str]):
    """``with open_records(path, sep) as (columns, records)``:
    :func:`_records` of the local file ``path``."""
    # utf-8-sig: spreadsheet programs prepend a BOM to the first column name.
    with open(path, newline='', encoding='utf-8-sig') as f:
        yield _records(f, sep)


@DATASETS.register_module()
class ImageTextDataset(ImageTextBaseDataset):
    """Image-caption pairs from a CSV, TSV or JSONL annotation file.

    Each record names an image (column ``img_key``) and its caption (column
    ``caption_key``), like open_clip's ``CsvDataset``::

        filepath,title
        images/0001.jpg,"a dog, running on the beach"

    Image paths are relative to ``data_root`` + ``data_prefix['img_path']``,
    or absolute. A file lacking one of the columns fails when the dataset is
    built, naming the column, the file and the columns it has. Malformed
    records (too few fields, empty image path, a JSON record without the keys)
    are dropped with a warning naming their line numbers; if they exceed
    ``max_bad_fraction`` of the file the build fails. Empty captions are kept
    here and rejected by ``TokenizeText`` / ``SampleCaption``, so they are
    counted with the other bad samples; but a file without a single caption
    (or without records) fails at build with a
    :class:`~mmclip.errors.ConfigError` naming the fix, as does
    :meth:`check_captions`, which the tools run before any work.

    Data info of each entry: ``img_path`` (str), ``text`` (str caption),
    ``sample_idx`` (int, added by mmengine).

    Args:
        ann_file (str): CSV / TSV / TXT / JSONL / JSON annotation file,
            relative to ``data_root`` unless absolute.
        data_root (str): Root of ``ann_file`` and the images. Defaults to ''.
        img_key (str): Image path column / JSON key. Defaults to
            ``'filepath'``.
        caption_key (str): Caption column / JSON key. Defaults to ``'title'``.
        sep (str, optional): Field separator. None picks it from the
            extension: ``.csv`` -> ``','``, ``.tsv``/``.txt`` -> tab; JSON
            files need none. Defaults to None.
        data_prefix (dict): ``dict(img_path=...)``, folder of the images
            relative to ``data_root``. Defaults to ``dict(img_path='')``.
        pipeline (Sequence[dict]): Transforms. Defaults to ().
        test_mode (bool): Evaluation mode: a bad sample raises instead of
            being skipped. Defaults to False.
        max_bad_fraction (float, optional): See
            :class:`~mmclip.datasets.base_dataset.ImageTextBaseDataset`.
            Defaults to 0.1.
        min_samples (int): Defaults to 20.
        **kwargs: Other ``mmengine.dataset.BaseDataset`` arguments
            (``metainfo``, ``indices``, ``lazy_init``, ``max_refetch``, ...).
    """

    def __init__(self,
                 ann_file: str,
                 data_root: str = '',
                 img_key: str = 'filepath',
                 caption_key: str = 'title',
                 sep: Optional[str] = None,
                 data_prefix: dict = dict(img_path=''),
                 pipeline: Sequence = (),
                 test_mode: bool = False,
                 **kwargs):
        self.img_key = img_key
        self.caption_key = caption_key
        self.sep = sep
        super().__init__(
            ann_file=ann_file,
            data_root=data_root,
            data_prefix=dict(data_prefix),
            pipeline=pipeline,
            test_mode=test_mode,
            **kwargs)

    def _separator(self) -> Optional[str]:
        """The field separator, None for JSON files."""
        if self.sep is not None:
            return self.sep
        ext = osp.splitext(self.ann_file)[1].lower()
        if ext in JSON_EXTS:
            return None
        if ext not in EXT_SEPARATORS:
            raise ValueError(
                f'Cannot infer the separator of {self.ann_file} from its '
                f'extension {ext!r}; pass sep=\',\' or sep=\'\\t\', or use '
                f'one of {sorted(EXT_SEPARATORS) + list(JSON_EXTS)}.')
        return EXT_SEPARATORS[ext]

    def load_data_list(self) -> List[dict]:
        """Read the annotation file into ``[dict(img_path, text), ...]``."""
        sep = self._separator()
        with get_local_path(self.ann_file) as path, \
                open_records(path, sep) as (columns, records):
            self._check_columns(columns, sep)
            records = list(self._keyed(columns, records))
        # Line numbers for the log: CSV data starts on line 2.
        data_list = self._to_data_list(records, 1 if sep is None else 2)
        if not any(clean_caption(d['text']) for d in data_list):
            raise self._no_caption_error(len(data_list), columns)
        return data_list

    def check_captions(self) -> None:
        """Refuse an annotation file in which no record has a caption (or
        that has no record), reading it only up to the first caption: the
        check a full build makes, cheap enough to run before a run starts
        (:func:`mmclip.apis.preflight.check_data_files` does).

        Raises:
            ConfigError: Naming the file, the caption column and the fix.
            ValueError: The file lacks the image or caption column.
        """
        sep = self._separator()
        with get_local_path(self.ann_file) as path, \
                open_records(path, sep) as (columns, records):
            self._check_columns(columns, sep)
            count = 0
            for rec in self._keyed(columns, records):
                if isinstance(rec, dict):
                    count += 1
                    if clean_caption(rec.get(self.caption_key)):
                        return
        raise self._no_caption_error(count, columns)

    def _check_columns(self, columns: List[str], sep: Optional[str]) -> None:
        """Refuse a file without the image or the caption column."""
        missing = [k for k in (self.img_key, self.caption_key)
                   if k not in columns]
        if not missing:
            return
        hint = ''
        if len(columns) == 1 and any(c in columns[0] for c in ',\t;|'):
            hint = (' The header was read as a single column: is the '
                    f'separator {sep!r} right? Pass sep=...')
        raise ValueError(
            f'{self.ann_file} has no column {missing[0]!r} (missing: '
            f'{missing}); its columns are {columns}. Set img_key / '
            'caption_key to the right names.' + hint)

    def _keyed(self, columns: List[str], records: Iterator) -> Iterator:
        """CSV records (lists of fields) as dicts of the image and caption
        columns (a missing field: None); JSON records and blank lines
        (None) pass as they are."""
        img_i = columns.index(self.img_key)
        cap_i = columns.index(self.caption_key)
        for rec in records:
            if isinstance(rec, list):
                rec = {
                    self.img_key: rec[img_i] if len(rec) > img_i else None,
                    self.caption_key: rec[cap_i] if len(rec) > cap_i else None
                }
            yield rec

    def _no_caption_error(self, num_records: int,
                          columns: List[str]) -> ConfigError:
        """The error for a file without any caption (or record)."""
        if not num_records:
            return ConfigError(
                f'{self.ann_file} holds no image-caption records: write one '
                f'line per image below the header ({self.img_key!r} and '
                f'{self.caption_key!r} columns).')
        others = [c for c in columns
                  if c not in (self.img_key, self.caption_key)]
        hint = f' (its other columns: {others})' if others else ''
        return ConfigError(
            f'{self.ann_file} has no caption: column {self.caption_key!r} is '
            f'empty in all its {num_records} records. Write each image\'s '
            'caption in that column, or set caption_key to the column that '
            f'holds the captions{hint}.')

    def _to_data_list(self, records: list, line_offset: int) -> List[dict]:
        img_prefix = self.data_prefix.get('img_path', '')
        data_list, malformed = [], []
        for i, rec in enumerate(records):
            if rec is None:  # blank line
                continue
            img = rec.get(self.img_key) if isinstance(rec, dict) else None
            if img is None or not str(img).strip() or \
                    self.caption_key not in rec or \
                    rec[self.caption_key] is None:
                malformed.append(i + line_offset)
                continue
            img = str(img).strip()
            data_list.append(
                dict(
                    img_path=join_path(img_prefix, img)
                    if img_prefix else img,
                    text=rec[self.caption_key]))
        self._report_malformed(malformed, len(data_list) + len(malformed))
        return data_list

    def _report_malformed(self, lines: List[int], total: int) -> None:
        if not lines:
            return
        msg = (f'{self.ann_file}: dropped {len(lines)} of {total} records '
               f'without an image path or caption (lines/records '
               f'{lines[:10]}{" ..." if len(lines) > 10 else ""}).')
        if self.max_bad_fraction is not None and \
                len(lines) > self.max_bad_fraction * total:
            raise ValueError(msg + f' That is more than max_bad_fraction='
                             f'{self.max_bad_fraction}; is sep / img_key / '
                             'caption_key right?')
        MMLogger.get_current_instance().warning(msg)

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(ann_file={self.ann_file!r}, '
                f'num_samples={len(self) if self._fully_initialized else "?"},'
                f' img_key={self.img_key!r}, caption_key='
                f'{self.caption_key!r})')
