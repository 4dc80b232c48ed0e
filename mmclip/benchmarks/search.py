"""The search table of ``tools/benchmarks/benchmark.py`` (``--rows
search``): query latency of :class:`mmclip.search.KnnIndex` over
``--search-vectors`` random L2-normalised 512-d float32 vectors.

Per index type: the build time (approximate indices train on a random
sample of ``train_size`` rows: k-means over all of 1M rows takes many
minutes), the milliseconds per query one query at a time (median over
``single_queries``) and in batches of ``batch`` (best of ``repeats``
batches), the recall@10 against the exact index on the same queries, and
the memory the index holds (the process's resident set after the build
minus before it; the vectors themselves are allocated before).

Random vectors are the approximate indices' worst case: no clusters, and
every query's neighbours barely closer than the rest; real CLIP embeddings
score a higher recall at the same settings.
"""
import gc
import math
import statistics
import time
from typing import List, Optional, Sequence, Tuple

import numpy as np

from mmclip.search import KnnIndex, recall_at_k
from .accumulation import status_bytes


def default_index_types(vectors: int) -> List[Tuple[str, dict]]:
    """Exact, IVF with ~sqrt(N) lists visiting 1/64 of them, HNSW32.

    Args:
        vectors (int): Rows in the index.

    Returns:
        list: ``(faiss index type, KnnIndex.build keyword args)``.
    """
    nlist = 2**max(2, round(math.log2(math.sqrt(vectors))))
    return [('exact', {}),
            (f'IVF{nlist},Flat', {'nprobe': max(1, nlist // 64)}),
            ('HNSW32', {'ef_search': 64})]


def random_unit_vectors(n: int, dim: int, seed: int) -> np.ndarray:
    """``(n, dim)`` float32 rows uniform on the sphere, made in blocks so
    that no float64 copy of the whole array exists."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), np.float32)
    for start in range(0, n, 65536):
        block = out[start:start + 65536]
        block[:] = rng.standard_normal(block.shape, dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
    return out


def _ms_per_query(index: KnnIndex, queries: np.ndarray, k: int, batch: int,
                  single_queries: int, repeats: int) -> Tuple[float, float]:
    """(median ms of one query alone, best ms per query in a batch)."""
    index.search(queries[:batch], k)  # warm-up
    singles = []
    for query in queries[:single_queries]:
        start = time.perf_counter()
        index.search(query[None], k)
        singles.append(time.perf_counter() - start)
    best = float('inf')
    for _ in range(repeats):
        start = time.perf_counter()
        index.search(queries[:batch], k)
        best = min(best, time.perf_counter() - start)
    return 1e3 * statistics.median(singles), 1e3 * best / batch


def measure_query_latency(vectors: int = 1_000_000, dim: int = 512,
                          queries: int = 256, k: int = 10,
                          index_types: Optional[Sequence[Tuple[str, dict]]]
                          = None, batch: int = 64, single_queries: int = 20,
                          repeats: int = 3, train_size: int = 65536,
                          seed: int = 0) -> List[dict]:
    """Build each index over the same random vectors and time its queries.

    Args:
        vectors (int): Rows ``N``. Defaults to 1,000,000.
        dim (int): Width ``D``. Defaults to 512 (ViT-B's embedding).
        queries (int): Random unit queries for the recall (the first
            ``batch`` and ``single_queries`` of them are timed). Defaults
            to 256.
        k (int): Neighbours per query. Defaults to 10.
        index_types (Sequence, optional): ``(index type, KnnIndex.build
            keyword args)`` pairs, ``'exact'`` first (the recall's
            reference). Defaults to None: :func:`default_index_types`.
        batch (int): Queries per batched search. Defaults to 64.
        single_queries (int): Queries timed one at a time. Defaults to 20.
        repeats (int): Timed batches (the best counts). Defaults to 3.
        train_size (int): Rows approximate indices train on. Defaults to
            65536.
        seed (int): Seed of the vectors, queries and training sample.
            Defaults to 0.

    Returns:
        list[dict]: Per index type ``{'index', 'build_s',
        'ms_per_query_single', 'ms_per_query_batch', 'recall@10',
        'memory_mb'}`` (``recall@10`` None for exact).
    """
    import faiss
    index_types = list(index_types or default_index_types(vectors))
    if index_types[0][0] != 'exact':
        index_types.insert(0, ('exact', {}))
    embeddings = random_unit_vectors(vectors, dim, seed)
    query_rows = random_unit_vectors(max(queries, batch, single_queries),
                                     dim, seed + 1)
    rows, exact_ids = [], None
    for index_type, options in index_types:
        gc.collect()
        before = status_bytes('VmRSS')
        start = time.perf_counter()
        index = KnnIndex.build(embeddings, index_type, backend='faiss',
                               train_size=train_size, seed=seed, **options)
        build_s = time.perf_counter() - start
        memory_mb = (status_bytes('VmRSS') - before) / 2**20
        single, batched = _ms_per_query(index, query_rows, k, batch,
                                        single_queries, repeats)
        ids = index.search(query_rows, k)[1]
        recall = None
        if exact_ids is None:
            exact_ids = ids
        else:
            recall = recall_at_k(ids, exact_ids, k)
        settings = ', '.join(f'{key} {value}'
                             for key, value in options.items())
        rows.append({'index': index_type + (f' ({settings})'
                                            if settings else ''),
                     'build_s': build_s, 'ms_per_query_single': single,
                     'ms_per_query_batch': batched, 'recall@10': recall,
                     'memory_mb': memory_mb,
                     'threads': faiss.omp_get_max_threads()})
        del index
    return rows


def format_search_table(rows: List[dict], vectors: int, dim: int = 512,
                        batch: int = 64) -> str:
    """The rows of :func:`measure_query_latency` as a markdown table."""
    threads = rows[0]['threads'] if rows else '?'
    lines = [
        f'| search: {vectors:,} x {dim} random unit vectors, k=10, faiss '
        f'threads {threads} | build (s) | ms/query alone | ms/query in '
        f'batches of {batch} | recall@10 vs exact | index memory (MB) |',
        '|---|---|---|---|---|---|'
    ]
    for row in rows:
        recall = ('exact' if row['recall@10'] is None else
                  f"{row['recall@10']:.3f}")
        lines.append(
            f"| {row['index']} | {row['build_s']:.1f} | "
            f"{row['ms_per_query_single']:.2f} | "
            f"{row['ms_per_query_batch']:.3f} | {recall} | "
            f"{row['memory_mb']:.0f} |")
    return '\n'.join(lines)
