"""The index folder: clip-retrieval's layout plus one mmclip manifest.

::

    INDEX/
      img_emb/img_emb_0.npy        (N0, D) embeddings, one row per image
      metadata/metadata_0.parquet  column ``image_path``; row i <-> row i
      img_emb/img_emb_1.npy        ... one part per indexing run
      metadata/metadata_1.parquet
      image.index                  faiss index over all parts
      mmclip_search.json           the manifest (model, count, index type)

This is what ``clip-retrieval inference`` writes (its
``clip_inference/writer.py``: ``img_emb/img_emb_{n}.npy`` saved with
``np.save``, ``metadata/metadata_{n}.parquet`` with ``image_path`` first,
``text_emb/`` and caption/extra columns when it embedded texts too, ``n``
zero-filled to the digits of its partition count) and what ``clip-retrieval
index`` (``clip_index.py``: autofaiss writes ``image.index`` and
``image.json`` and copies ``metadata/``) and ``clip-retrieval back``
(``clip_back.py``: ``image.index``, ``metadata/*.parquet``) read.

clip-retrieval's readers order the parts by *file name as text*
(``sorted(glob('*.parquet'))`` in clip_back, ``sorted`` in autofaiss's
embedding reader), so a row's global id is its position when the parts are
concatenated in that order, and mmclip names new parts so that this order
is also the order they were written in (:meth:`IndexFolder.write_part`).
``text_emb/`` and metadata columns other than ``image_path`` are kept and
ignored by the search.

Writes are atomic: each file is written under a temporary name (``.NAME.tmp``,
which no reader's ``*.npy``/``*.parquet`` pattern matches) and
``os.replace``\\ d into place, the embeddings before the metadata, and a part
counts only when both files exist, so a run killed at any point leaves the
folder readable and the next run resumes.
"""
import contextlib
import json
import os
import os.path as osp
import re
from typing import Dict, Iterator, List, Optional, Sequence, Set

import numpy as np

EMBEDDINGS_DIR = 'img_emb'
METADATA_DIR = 'metadata'
INDEX_FILE = 'image.index'
MANIFEST_FILE = 'mmclip_search.json'
#: The metadata column with each row's image (clip-retrieval's name).
PATH_COLUMN = 'image_path'
#: Version of the manifest's keys.
MANIFEST_FORMAT = 1

_EMBEDDINGS_NAME = re.compile(r'img_emb_(\d+)\.npy$')
_METADATA_NAME = re.compile(r'metadata_(\d+)\.parquet$')
_TEMP_SUFFIX = '.tmp'


class SearchIndexError(ValueError):
    """An index folder that cannot be read or extended as asked; the
    message names the folder (or file) and what to do."""


def import_pyarrow():
    """``(pyarrow, pyarrow.parquet)``, which read and write the metadata.

    Raises:
        SearchIndexError: pyarrow is not installed (it says what to
            install).
    """
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise SearchIndexError(
            'pyarrow is not installed, and the index keeps its metadata in '
            'parquet files: pip install pyarrow (or pip install -e .[search]'
            ', see requirements/search.txt)') from None
    return pyarrow, pyarrow.parquet


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yield a temporary path beside ``path``; when the block succeeds, the
    file written there is synced to disk and moved onto ``path`` in one
    ``os.replace``; when it fails, the temporary file is removed.

    Args:
        path (str): The file to (re)write.
    """
    tmp = osp.join(osp.dirname(path), f'.{osp.basename(path)}{_TEMP_SUFFIX}')
    try:
        yield tmp
        with open(tmp, 'rb+') as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


class IndexFolder:
    """An index folder in clip-retrieval's layout (see the module).

    Args:
        root (str): The folder.
        create (bool): Create the folder (and ``img_emb/``, ``metadata/``)
            when missing, for a writer; also removes what an interrupted
            writer left (temporary files, an embedding part whose metadata
            was never written). A reader leaves it False: the folder must
            then exist with ``img_emb/``. Defaults to False.

    Raises:
        SearchIndexError: ``root`` is not an index folder (and ``create``
            is False), or ``create`` names an existing folder with other
            content.
    """

    def __init__(self, root: str, create: bool = False):
        self.root = root
        self.embeddings_dir = osp.join(root, EMBEDDINGS_DIR)
        self.metadata_dir = osp.join(root, METADATA_DIR)
        self.index_path = osp.join(root, INDEX_FILE)
        self.manifest_path = osp.join(root, MANIFEST_FILE)
        if create:
            if (osp.isdir(root) and os.listdir(root)
                    and not osp.isdir(self.embeddings_dir)):
                raise SearchIndexError(
                    f'{root} exists and is not an index folder (no '
                    f'{EMBEDDINGS_DIR}/); write the index to a new or empty '
                    'folder')
            os.makedirs(self.embeddings_dir, exist_ok=True)
            os.makedirs(self.metadata_dir, exist_ok=True)
            self._remove_leftovers()
        elif not osp.isdir(self.embeddings_dir):
            raise SearchIndexError(
                f'{root} is not an index folder: it has no {EMBEDDINGS_DIR}/ '
                '(build one with tools/search/index.py, or point to the '
                'output folder of clip-retrieval inference)')

    # -- parts --------------------------------------------------------------

    def _names(self, folder: str, pattern) -> Dict[str, str]:
        """``{number as written: file name}`` of ``folder``'s part files."""
        if not osp.isdir(folder):
            return {}
        matches = map(pattern.match, os.listdir(folder))
        return {m.group(1): m.group(0) for m in matches if m}

    def _part_files(self) -> List[tuple]:
        """``(number as written, .npy path, .parquet path)`` of every whole
        part, in clip-retrieval's order (file names sorted as text)."""
        embeddings = self._names(self.embeddings_dir, _EMBEDDINGS_NAME)
        metadata = self._names(self.metadata_dir, _METADATA_NAME)
        # 'metadata_0.parquet' < 'metadata_00.parquet' < 'metadata_1...':
        # the number followed by '.' sorts as the whole name does.
        numbers = sorted(set(embeddings) & set(metadata),
                         key=lambda number: number + '.')
        return [(n, osp.join(self.embeddings_dir, embeddings[n]),
                 osp.join(self.metadata_dir, metadata[n])) for n in numbers]

    def _remove_leftovers(self):
        """Delete what an interrupted writer left: temporary files and
        embedding parts without metadata (clip-retrieval's index would
        otherwise count their rows)."""
        whole = {n for n, _, _ in self._part_files()}
        for folder in (self.root, self.embeddings_dir, self.metadata_dir):
            for name in os.listdir(folder):
                if name.startswith('.') and name.endswith(_TEMP_SUFFIX):
                    os.remove(osp.join(folder, name))
        for number, name in self._names(self.embeddings_dir,
                                        _EMBEDDINGS_NAME).items():
            if number not in whole:
                os.remove(osp.join(self.embeddings_dir, name))

    def _checked_parts(self) -> List[tuple]:
        """:meth:`_part_files` plus each part's ``(rows, dim)``, checked:
        2-d embeddings, rows equal to the metadata's, one width."""
        _, pq = import_pyarrow()
        parts, dims = [], {}
        for number, npy, parquet in self._part_files():
            shape = np.load(npy, mmap_mode='r').shape
            if len(shape) != 2:
                raise SearchIndexError(
                    f'{npy} holds an array of shape {shape}, not (rows, dim)'
                    ': the part is damaged; delete it and its metadata and '
                    'index again')
            rows = pq.read_metadata(parquet).num_rows
            if rows != shape[0]:
                raise SearchIndexError(
                    f'{npy} has {shape[0]} rows but {parquet} has {rows}: '
                    'the part is damaged; delete both files and index again')
            dims.setdefault(shape[1], npy)
            parts.append((number, npy, parquet, shape[0], shape[1]))
        if len(dims) > 1:
            found = ', '.join(f'{d} in {path}' for d, path in dims.items())
            raise SearchIndexError(
                f'the parts of {self.root} disagree in embedding width '
                f'({found}): they come from different models; index each '
                'model into its own folder')
        return parts

    def parts(self) -> List[int]:
        """The numbers of the whole parts, in row order."""
        return [int(part[0]) for part in self._checked_parts()]

    def count(self) -> int:
        """Rows (images) over all parts."""
        return sum(part[3] for part in self._checked_parts())

    def embed_dim(self) -> Optional[int]:
        """The embedding width ``D``, or None while there are no parts."""
        parts = self._checked_parts()
        return parts[0][4] if parts else None

    def embeddings(self, mmap: bool = True) -> np.ndarray:
        """All rows of all parts, in order.

        Args:
            mmap (bool): Memory-map the ``.npy`` files instead of reading
                them. A single float32 part is then returned as its
                (read-only) map, without a copy; several parts, or float16
                ones, are copied once into one float32 array. Defaults to
                True.

        Returns:
            np.ndarray: ``(N, D)`` float32 (``(0, 0)`` with no parts).
        """
        parts = self._checked_parts()
        if not parts:
            return np.zeros((0, 0), np.float32)
        arrays = [np.load(part[1], mmap_mode='r' if mmap else None)
                  for part in parts]
        if len(arrays) == 1 and arrays[0].dtype == np.float32:
            return arrays[0]
        out = np.empty((sum(len(a) for a in arrays), parts[0][4]), np.float32)
        start = 0
        for array in arrays:
            out[start:start + len(array)] = array
            start += len(array)
        return out

    def metadata(self,
                 columns: Optional[Sequence[str]] = None
                 ) -> Dict[str, list]:
        """Metadata columns of all parts, in row order.

        Args:
            columns (Sequence[str], optional): The columns to read; every
                part must have them. Defaults to None: every column any part
                has (None in the rows of parts without it).

        Returns:
            dict: ``{column: list of N values}``.
        """
        _, pq = import_pyarrow()
        parts = self._checked_parts()
        schemas = [pq.read_schema(part[2]).names for part in parts]
        for part, names in zip(parts, schemas if columns else ()):
            missing = [c for c in columns if c not in names]
            if missing:
                raise SearchIndexError(
                    f'{part[2]} has no column {missing[0]!r} (it has '
                    f'{names}); was the part written by another tool?')
        if columns is None:
            columns = list(dict.fromkeys(c for names in schemas
                                         for c in names))
        out = {column: [] for column in columns}
        for part, names in zip(parts, schemas):
            present = [c for c in columns if c in names]
            table = pq.read_table(part[2], columns=present)
            for column in columns:
                out[column].extend(
                    table.column(column).to_pylist() if column in names
                    else [None] * part[3])
        return out

    def known_paths(self) -> Set[str]:
        """The ``image_path`` of every indexed row (what a resumed run
        skips)."""
        return set(self.metadata([PATH_COLUMN])[PATH_COLUMN])

    def _next_number(self) -> str:
        """The next part's number as written in its file names: one more
        than the last part's, zero-filled to its digits; when that would sort
        before the last part as text (clip-retrieval's order; after '9' or
        '99'), the last part's number with a 0 appended."""
        whole = self._part_files()
        if not whole:
            return '0'
        last = whole[-1][0]
        number = str(int(last) + 1).zfill(len(last))
        return number if number + '.' > last + '.' else last + '0'

    def write_part(self, embeddings: np.ndarray,
                   metadata: Dict[str, list]) -> int:
        """Add one part: the embeddings first, then the metadata, each
        written to a temporary name and renamed into place.

        Args:
            embeddings (np.ndarray): ``(N, D)`` rows, L2-normalised (the
                exact search ranks by inner product); stored as float32.
            metadata (dict): ``{column: list of N values}`` with
                ``image_path``.

        Returns:
            int: The new part's number.

        Raises:
            SearchIndexError: ``D`` differs from the folder's parts.
            ValueError: Empty or ragged input, or no ``image_path``.
        """
        pa, pq = import_pyarrow()
        embeddings = np.asarray(embeddings)
        if embeddings.ndim != 2 or not len(embeddings):
            raise ValueError('write_part needs embeddings of shape (N, D) '
                             f'with N > 0, got {embeddings.shape}')
        if PATH_COLUMN not in metadata:
            raise ValueError(f'write_part needs a {PATH_COLUMN!r} column')
        ragged = {k: len(v) for k, v in metadata.items()
                  if len(v) != len(embeddings)}
        if ragged:
            raise ValueError(f'metadata columns {ragged} differ from the '
                             f'{len(embeddings)} embedding rows')
        dim = self.embed_dim()
        if dim is not None and dim != embeddings.shape[1]:
            raise SearchIndexError(
                f'{self.root} holds {dim}-d embeddings, these are '
                f'{embeddings.shape[1]}-d: another model; index it into a '
                'new folder')
        number = self._next_number()
        npy = osp.join(self.embeddings_dir, f'img_emb_{number}.npy')
        with atomic_path(npy) as tmp, open(tmp, 'wb') as f:
            np.save(f, np.ascontiguousarray(embeddings, np.float32))
        parquet = osp.join(self.metadata_dir, f'metadata_{number}.parquet')
        with atomic_path(parquet) as tmp:
            pq.write_table(pa.table(metadata), tmp)
        return int(number)

    # -- manifest -----------------------------------------------------------

    def read_manifest(self) -> Optional[dict]:
        """The manifest, or None when the folder has none (e.g. written by
        clip-retrieval)."""
        if not osp.exists(self.manifest_path):
            return None
        try:
            with open(self.manifest_path) as f:
                return json.load(f)
        except ValueError as e:
            raise SearchIndexError(
                f'{self.manifest_path} is not valid JSON ({e}); delete it '
                'and index again to rewrite it') from None

    def write_manifest(self, manifest: dict):
        """Write the manifest atomically (see :func:`make_manifest`)."""
        with atomic_path(self.manifest_path) as tmp, open(tmp, 'w') as f:
            json.dump(manifest, f, indent=2)


def make_manifest(folder: IndexFolder,
                  model: Optional[str] = None,
                  checkpoint: Optional[str] = None,
                  encoder: str = 'fp32',
                  index: Optional[dict] = None) -> dict:
    """The manifest of ``folder`` as it is now.

    Args:
        folder (IndexFolder): The index folder (gives ``embed_dim``,
            ``count`` and ``parts``).
        model (str, optional): Model name or config path. Defaults to None.
        checkpoint (str, optional): Checkpoint path. Defaults to None.
        encoder (str): ``'fp32'`` or ``'int8'`` (the image tower that
            embedded the images). Defaults to ``'fp32'``.
        index (dict, optional): What :func:`~mmclip.search.index_file.
            build_index_file` returned (``type``, ``recall@10``). Defaults
            to None: ``{'type': 'exact', 'recall@10': None}``.

    Returns:
        dict: ``{'format': 1, 'model', 'checkpoint', 'embed_dim', 'encoder',
        'count', 'parts', 'index': {'type', 'recall@10'[,
        'int8_recall@10']}}``.
    """
    index = index or {'type': 'exact', 'recall@10': None}
    return {'format': MANIFEST_FORMAT, 'model': model,
            'checkpoint': checkpoint, 'embed_dim': folder.embed_dim(),
            'encoder': encoder, 'count': folder.count(),
            'parts': len(folder.parts()),
            'index': {'type': index['type'],
                      'recall@10': index.get('recall@10'),
                      **{k: v for k, v in index.items()
                         if k == 'int8_recall@10'}}}
