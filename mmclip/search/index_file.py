"""An index file over an index folder, and how well a search agrees with
another: :func:`build_index_file` writes ``image.index`` and measures an
approximate index's recall@10 against the exact search; :func:`recall_at_k`
and :func:`topk_overlap` compare two searches."""
from typing import Optional

import numpy as np

from .knn import EXACT, KnnIndex
from .layout import IndexFolder, SearchIndexError


def recall_at_k(found_ids: np.ndarray, exact_ids: np.ndarray, k: int) -> float:
    """Mean share of each query's exact top-k that a search found.

    Args:
        found_ids (np.ndarray): ``(Q, >=k)`` ids from the search under test
            (-1 for none).
        exact_ids (np.ndarray): ``(Q, >=k)`` ids from the exact search.
        k (int): Neighbours compared (the first k of each).

    Returns:
        float: In [0, 1].
    """
    shares = []
    for found, exact in zip(found_ids[:, :k], exact_ids[:, :k]):
        exact = set(exact[exact >= 0].tolist())
        if exact:
            shares.append(len(exact & set(found.tolist())) / len(exact))
    return float(np.mean(shares)) if shares else 1.0


def build_index_file(folder: IndexFolder, index_type: str = EXACT,
                     backend: Optional[str] = None,
                     nprobe: Optional[int] = None,
                     ef_search: Optional[int] = None,
                     train_size: Optional[int] = None,
                     recall_queries: int = 500, seed: int = 0) -> dict:
    """(Re)build ``image.index`` over all of ``folder``'s parts.

    Args:
        folder (IndexFolder): The index folder.
        index_type, backend, nprobe, ef_search, train_size, seed: As in
            :meth:`KnnIndex.build`.
        recall_queries (int): An approximate index is searched with this
            many of its own rows (drawn at random) and compared with the
            exact search. Defaults to 500.

    Returns:
        dict: ``{'type': index_type, 'recall@10': float or None (exact),
        'file': path written, or None with the NumPy backend (no faiss:
        nothing to write, the search reads the embeddings)}``.
    """
    embeddings = folder.embeddings()
    if not len(embeddings):
        raise SearchIndexError(f'{folder.root} has no embeddings to index')
    knn = KnnIndex.build(embeddings, index_type, backend=backend,
                         nprobe=nprobe, ef_search=ef_search,
                         train_size=train_size, seed=seed)
    recall = None
    if index_type != EXACT:
        rows = np.random.default_rng(seed).choice(
            len(embeddings), min(recall_queries, len(embeddings)),
            replace=False)
        queries = embeddings[np.sort(rows)]
        _, exact = KnnIndex.build(embeddings, backend='numpy').search(
            queries, 10)
        recall = recall_at_k(knn.search(queries, 10)[1], exact, 10)
    if knn.backend == 'numpy':
        return {'type': index_type, 'recall@10': recall, 'file': None}
    knn.save(folder.index_path)
    return {'type': index_type, 'recall@10': recall,
            'file': folder.index_path}


def topk_overlap(queries: np.ndarray, reference: np.ndarray,
                 candidate: np.ndarray, k: int = 10) -> float:
    """Recall@k of a search over ``candidate`` embeddings against the same
    search over ``reference`` ones: the mean share of each query's exact
    top-k (by inner product) over ``reference`` that the top-k over
    ``candidate`` also finds.

    Args:
        queries (np.ndarray): ``(Q, D)`` query embeddings.
        reference (np.ndarray): ``(N, D)`` e.g. float32 image embeddings.
        candidate (np.ndarray): ``(N, D)`` e.g. int8 ones of the same
            images, same row order.
        k (int): Results per query, clipped to ``N``. Defaults to 10.

    Returns:
        float: In ``[0, 1]``.
    """
    k = min(k, len(reference))
    exact, found = (KnnIndex.build(emb, backend='numpy').search(queries, k)[1]
                    for emb in (reference, candidate))
    return recall_at_k(found, exact, k)
