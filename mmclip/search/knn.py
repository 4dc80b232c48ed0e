"""k-nearest-neighbour search by inner product over L2-normalised
embeddings (cosine similarity).

- ``'exact'``: every row scored; faiss's ``IndexFlatIP``, or NumPy when
  faiss is not installed (or ``backend='numpy'``). Both return what a brute
  force ``np.argsort`` of ``queries @ embeddings.T`` returns: scores
  descending, **equal scores by lower id**, also across the k-th place (the
  k kept are the lowest ids among those tied there).
- any faiss ``index_factory`` string (``'IVF1024,Flat'``, ``'HNSW32'``,
  ``'IVF1024,PQ64'``): approximate, trained on the embeddings, inner-product
  metric; :func:`build_index_file` reports its recall@10 against exact.
  clip-retrieval's users found compressed indices lose text-to-image recall
  (clip-retrieval #76), hence exact by default.
"""
import os.path as osp
import re
from typing import Optional, Tuple

import numpy as np

from .layout import SearchIndexError, atomic_path

EXACT = 'exact'
#: Score matrices of the NumPy path stay under this many entries (64 MiB).
_SCORE_BLOCK = 1 << 24
#: Exact faiss searches of this many queries or more run as one NumPy
#: matrix product over the index's vectors (see :meth:`KnnIndex.search`).
_BATCH_IN_NUMPY = 16


def import_faiss(required: bool = False):
    """faiss, or None when it is not installed (``required``: raise)."""
    try:
        import faiss
    except ImportError:
        if required:
            raise SearchIndexError(
                'faiss is not installed: pip install faiss-cpu (see '
                "requirements/search.txt), or use backend='numpy' (exact "
                'search only)') from None
        return None
    return faiss


def _top_k_row(scores: np.ndarray, ids: np.ndarray,
               k: int) -> Tuple[np.ndarray, np.ndarray]:
    """The k best of one query's ``scores`` by (score descending, id
    ascending); ``ids`` are the rows the scores belong to."""
    if k < len(scores):
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        above = np.flatnonzero(scores > kth)
        tied = np.flatnonzero(scores == kth)
        tied = tied[np.argsort(ids[tied], kind='stable')][:k - len(above)]
        keep = np.concatenate([above, tied])
    else:
        keep = np.arange(len(scores))
    order = np.lexsort((ids[keep], -scores[keep]))
    return scores[keep[order]], ids[keep[order]]


def _sort_rows(scores: np.ndarray, ids: np.ndarray):
    """Sort each row by (score descending, id ascending), in place."""
    for row in range(len(ids)):
        order = np.lexsort((ids[row], -scores[row]))
        scores[row], ids[row] = scores[row][order], ids[row][order]


class KnnIndex:
    """Top-k inner-product search over ``(N, D)`` embeddings.

    Build one with :meth:`build` or :meth:`load`, not the constructor.

    Args:
        index_type (str): ``'exact'`` or the faiss factory string.
        dim (int): Embedding width ``D``.
        faiss_index (faiss.Index, optional): The faiss index (faiss
            backend).
        embeddings (np.ndarray, optional): ``(N, D)`` float32 rows (NumPy
            backend; searched in place, a memory map is fine).
    """

    def __init__(self, index_type: str, dim: int, faiss_index=None,
                 embeddings: Optional[np.ndarray] = None):
        self.index_type = index_type
        self.dim = dim
        self.faiss_index = faiss_index
        self.embeddings = embeddings

    @property
    def ntotal(self) -> int:
        """Rows in the index."""
        if self.faiss_index is not None:
            return self.faiss_index.ntotal
        return len(self.embeddings)

    @property
    def backend(self) -> str:
        """``'faiss'`` or ``'numpy'``."""
        return 'numpy' if self.faiss_index is None else 'faiss'

    @classmethod
    def build(cls, embeddings: np.ndarray, index_type: str = EXACT,
              backend: Optional[str] = None, nprobe: Optional[int] = None,
              ef_search: Optional[int] = None,
              train_size: Optional[int] = None, seed: int = 0) -> 'KnnIndex':
        """Index ``embeddings``.

        Args:
            embeddings (np.ndarray): ``(N, D)`` rows, L2-normalised;
                float32 C-contiguous ones (a memory map too) are used
                without a copy by NumPy (faiss copies them into its index).
            index_type (str): ``'exact'`` or a faiss ``index_factory``
                string. Defaults to ``'exact'``.
            backend (str, optional): ``'faiss'``, ``'numpy'`` (exact only)
                or None: faiss when importable. Defaults to None.
            nprobe (int, optional): IVF lists visited per query. Defaults
                to None (faiss's 1).
            ef_search (int, optional): HNSW candidate list length per
                query. Defaults to None (faiss's 16).
            train_size (int, optional): Train an approximate index on this
                many rows drawn at random (k-means on all of 1M rows takes
                long). Defaults to None: all rows.
            seed (int): Seed of that draw. Defaults to 0.

        Returns:
            KnnIndex: The index, ready to :meth:`search`.

        Raises:
            SearchIndexError: Unknown backend, faiss missing where needed,
                or too few rows to train the index.
        """
        embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2:
            raise ValueError(f'embeddings must be (N, D), got '
                             f'{embeddings.shape}')
        dim = embeddings.shape[1]
        if backend not in (None, 'faiss', 'numpy'):
            raise SearchIndexError(f"backend must be 'faiss', 'numpy' or "
                                   f'None, got {backend!r}')
        faiss = import_faiss(required=backend == 'faiss'
                             or index_type != EXACT)
        if backend == 'numpy' or faiss is None:
            if index_type != EXACT:
                raise SearchIndexError(
                    f"index type {index_type!r} needs faiss; use 'exact' "
                    "with backend='numpy'")
            return cls(EXACT, dim, embeddings=embeddings)
        index = new_faiss_index(index_type, dim)
        if index_type != EXACT:
            if not index.is_trained:
                _train(faiss, index, index_type, embeddings, train_size,
                       seed)
        index.add(embeddings)
        knn = cls(index_type, dim, faiss_index=index)
        knn.set_search_params(nprobe=nprobe, ef_search=ef_search)
        return knn

    def set_search_params(self, nprobe: Optional[int] = None,
                          ef_search: Optional[int] = None):
        """Set an approximate index's search breadth (saved with it).

        Args:
            nprobe (int, optional): IVF lists visited per query.
            ef_search (int, optional): HNSW candidate list length.
        """
        params = {'nprobe': nprobe, 'efSearch': ef_search}
        params = {k: v for k, v in params.items() if v is not None}
        if not params:
            return
        if self.faiss_index is None or self.index_type == EXACT:
            raise SearchIndexError(
                f'{sorted(params)} apply to approximate faiss indices, not '
                f'to {self.index_type!r}')
        faiss = import_faiss(required=True)
        space = faiss.ParameterSpace()
        for name, value in params.items():
            try:
                space.set_index_parameter(self.faiss_index, name, value)
            except RuntimeError:
                raise SearchIndexError(
                    f'{self.index_type!r} has no search parameter {name}'
                ) from None

    def search(self, queries: np.ndarray,
               k: int) -> Tuple[np.ndarray, np.ndarray]:
        """The ``k`` rows of highest inner product with each query.

        Args:
            queries (np.ndarray): ``(Q, D)`` or ``(D,)``, L2-normalised.
            k (int): Neighbours per query; clipped to :attr:`ntotal`.

        Returns:
            tuple: ``scores`` ``(Q, k)`` float32, descending, and ``ids``
            ``(Q, k)`` int64 (row numbers; ties by lower id on the exact
            index; an approximate index may return fewer than k, padded
            with id -1).
        """
        queries = np.ascontiguousarray(np.atleast_2d(queries), np.float32)
        if queries.shape[1] != self.dim:
            raise SearchIndexError(
                f'queries are {queries.shape[1]}-d but the index holds '
                f'{self.dim}-d embeddings: the query was embedded by another '
                'model than the index')
        if k < 1:
            raise ValueError(f'k must be at least 1, got {k}')
        k = min(k, self.ntotal)
        if self.faiss_index is None:
            return self._search_numpy(queries, k, self.embeddings)
        if self.index_type != EXACT:
            return self.faiss_index.search(queries, k)
        if len(queries) >= _BATCH_IN_NUMPY:
            # faiss 1.15 scores batches under 128000 queries pair by pair
            # (its distance_compute_blas_threshold, a process-wide
            # setting): ~10x slower than one matrix product on the flat
            # index's own vectors, viewed without a copy.
            faiss = import_faiss(required=True)
            stored = faiss.rev_swig_ptr(self.faiss_index.get_xb(),
                                        self.ntotal * self.dim)
            return self._search_numpy(queries, k,
                                      stored.reshape(self.ntotal, self.dim))
        return self._search_flat(queries, k)

    def _search_numpy(self, queries, k, embeddings):
        scores = np.empty((len(queries), k), np.float32)
        ids = np.empty((len(queries), k), np.int64)
        rows = np.arange(self.ntotal)
        step = max(1, _SCORE_BLOCK // max(1, self.ntotal))
        for start in range(0, len(queries), step):
            block = queries[start:start + step] @ embeddings.T
            for i, row in enumerate(block, start):
                scores[i], ids[i] = _top_k_row(row, rows, k)
        return scores, ids

    def _search_flat(self, queries, k):
        # faiss orders equal scores as its heap leaves them: ask for one
        # more than k; where that one ties with the k-th, the tie may
        # continue beyond it, so widen that query until it ends.
        wide = min(k + 1, self.ntotal)
        scores, ids = self.faiss_index.search(queries, wide)
        out_scores, out_ids = scores[:, :k].copy(), ids[:, :k].copy()
        for row in range(len(queries)):
            if wide == k or scores[row, k] < scores[row, k - 1]:
                continue
            reach = wide
            while True:
                reach = min(2 * reach, self.ntotal)
                s, i = self.faiss_index.search(queries[row:row + 1], reach)
                if reach == self.ntotal or s[0, -1] < scores[row, k - 1]:
                    break
            out_scores[row], out_ids[row] = _top_k_row(s[0], i[0], k)
        _sort_rows(out_scores, out_ids)
        return out_scores, out_ids

    def save(self, path: str):
        """Write the faiss index to ``path`` atomically (what
        clip-retrieval's back end loads as ``image.index``)."""
        if self.faiss_index is None:
            raise SearchIndexError(
                'a NumPy index has no file to save: install faiss-cpu to '
                'write image.index')
        faiss = import_faiss(required=True)
        with atomic_path(path) as tmp:
            faiss.write_index(self.faiss_index, tmp)

    @classmethod
    def load(cls, path: str, embeddings: Optional[np.ndarray] = None,
             index_type: Optional[str] = None,
             backend: Optional[str] = None) -> 'KnnIndex':
        """Open an index file, or search ``embeddings`` exactly in NumPy.

        Args:
            path (str): ``image.index`` (faiss).
            embeddings (np.ndarray, optional): The folder's ``(N, D)`` rows:
                checked against the file's count and width, and searched
                with NumPy when faiss is absent, ``backend='numpy'`` or the
                file is missing. Defaults to None.
            index_type (str, optional): The factory string the file was
                built with (the manifest has it). Defaults to None:
                ``'exact'`` for a flat index, else faiss's class name.
            backend (str, optional): As in :meth:`build`. Defaults to None.

        Returns:
            KnnIndex: The index.

        Raises:
            SearchIndexError: No file and no embeddings, a file that is not
                an inner-product index, or one that disagrees with the
                embeddings (stale: rebuild it).
        """
        faiss = import_faiss(required=backend == 'faiss')
        use_file = backend != 'numpy' and faiss is not None and osp.exists(
            path)
        if not use_file:
            if embeddings is None:
                raise SearchIndexError(
                    f'cannot open {path}: ' +
                    ('it does not exist' if faiss else 'faiss is not '
                     'installed') + '; pass the embeddings to search them '
                    'exactly with NumPy')
            return cls.build(embeddings, EXACT, backend='numpy')
        index = faiss.read_index(path)
        if index.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise SearchIndexError(
                f'{path} ranks by L2 distance, not inner product; rebuild '
                'it (build_index_file or tools/search/index.py)')
        if embeddings is not None and (len(embeddings), embeddings.shape[1]
                                       ) != (index.ntotal, index.d):
            raise SearchIndexError(
                f'{path} holds {index.ntotal} x {index.d} vectors but the '
                f'folder has {embeddings.shape[0]} x {embeddings.shape[1]}: '
                'the index file is stale; rebuild it (build_index_file or '
                'tools/search/index.py)')
        if index_type is None:
            index_type = (EXACT if isinstance(index, faiss.IndexFlat) else
                          type(index).__name__)
        return cls(index_type, index.d, faiss_index=index)


def new_faiss_index(index_type: str, dim: int):
    """An empty faiss index of ``index_type`` over ``dim``-d vectors ranked
    by inner product: a tool calls it before embedding anything, so that a
    mistyped type fails in a second, not after hours.

    Raises:
        SearchIndexError: faiss is missing, or does not know ``index_type``.
    """
    faiss = import_faiss(required=True)
    if index_type == EXACT:
        return faiss.IndexFlatIP(dim)
    try:
        return faiss.index_factory(dim, index_type,
                                   faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:
        raise SearchIndexError(
            f'faiss does not know the index type {index_type!r} '
            f"({str(e).strip().splitlines()[-1]}); use 'exact' or a "
            "faiss index_factory string such as 'IVF1024,Flat' or "
            "'HNSW32'") from None


def _train(faiss, index, index_type: str, embeddings: np.ndarray,
           train_size: Optional[int], seed: int):
    """Train an approximate index, with a clear message when there are too
    few rows: k-means needs at least one row per centroid."""
    centroids = []
    try:
        centroids.append(faiss.extract_index_ivf(index).nlist)
    except RuntimeError:  # not an IVF index
        pass
    for bits in re.findall(r'PQ\d+(?:x(\d+))?', index_type):
        centroids.append(2**int(bits or 8))
    minimum = max(centroids, default=1)
    if len(embeddings) < minimum:
        raise SearchIndexError(
            f'{index_type!r} needs at least {minimum} embeddings to train '
            f'(one per k-means centroid; ~40x that for good centroids), the '
            f"index has {len(embeddings)}: use 'exact' (best below ~1M "
            'images anyway) or fewer lists')
    sample = embeddings
    if train_size is not None and train_size < len(embeddings):
        rows = np.random.default_rng(seed).choice(
            len(embeddings), max(train_size, minimum), replace=False)
        sample = embeddings[np.sort(rows)]
    index.train(sample)
