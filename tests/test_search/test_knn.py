"""mmclip.search.knn: the exact search returns what a brute-force NumPy
argsort returns (ties by lower id) on faiss and on NumPy; approximate
indices report their recall; bad requests get one clear error."""
import sys

import numpy as np
import pytest

from mmclip.search import (IndexFolder, KnnIndex, SearchIndexError,
                           build_index_file, recall_at_k)

BACKENDS = ('faiss', 'numpy')


def normalised(rows):
    rows = np.asarray(rows, np.float64)
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(
        np.float32)


def brute_force(queries, embeddings, k):
    """The reference: every score, stable argsort (ties by lower id)."""
    scores = queries @ embeddings.T
    ids = np.argsort(-scores, axis=1, kind='stable')[:, :k]
    return np.take_along_axis(scores, ids, axis=1), ids


@pytest.fixture(scope='module')
def embeddings():
    return normalised(np.random.default_rng(0).standard_normal((3000, 64)))


def queries_like(kind, embeddings, n):
    rng = np.random.default_rng(1)
    if kind == 'image':  # near rows of the index (an image query)
        rows = embeddings[rng.choice(len(embeddings), n)]
        return normalised(rows + 0.3 * rng.standard_normal(rows.shape) / 8)
    # A text query: a direction of its own, far from every row.
    return normalised(rng.standard_normal((n, embeddings.shape[1])))


@pytest.mark.parametrize('backend', BACKENDS)
@pytest.mark.parametrize('kind', ['text', 'image'])
@pytest.mark.parametrize('n_queries', [1, 12, 40])  # faiss's / NumPy's
def test_exact_equals_brute_force(embeddings, backend, kind, n_queries):
    queries = queries_like(kind, embeddings, n_queries)
    index = KnnIndex.build(embeddings, backend=backend)
    assert index.backend == backend and index.index_type == 'exact'
    for k in (1, 10, 100):
        scores, ids = index.search(queries, k)
        ref_scores, ref_ids = brute_force(queries, embeddings, k)
        assert ids.dtype == np.int64 and scores.dtype == np.float32
        assert np.array_equal(ids, ref_ids)
        assert np.allclose(scores, ref_scores, atol=1e-5)


def tied_rows(n, dim, seed):
    """Rows of 16 entries +-1/4: every inner product is exact in float32,
    so equal vectors score exactly equal in any summation order."""
    rng = np.random.default_rng(seed)
    rows = np.zeros((n, dim), np.float32)
    for row in rows:
        row[rng.choice(dim, 16, replace=False)] = rng.choice([-.25, .25], 16)
    return rows


@pytest.mark.parametrize('backend', BACKENDS)
def test_ties_are_broken_by_lower_id_across_the_kth_place(backend):
    distinct = tied_rows(30, 24, seed=0)
    # Every distinct row five times, shuffled: many exact ties, and the
    # k-th place falls inside a run of ties.
    embeddings = np.repeat(distinct, 5, axis=0)[
        np.random.default_rng(1).permutation(150)]
    queries = np.concatenate([distinct[:10], tied_rows(30, 24, seed=2)])
    index = KnnIndex.build(embeddings, backend=backend)
    for k in (1, 3, 7, 12, 149, 150):
        for batch in (queries[:8], queries):  # faiss: its search / NumPy's
            scores, ids = index.search(batch, k)
            ref_scores, ref_ids = brute_force(batch, embeddings, k)
            assert np.array_equal(ids, ref_ids), k
            assert np.array_equal(scores, ref_scores), k
    # All rows the same: the tie runs through the whole index.
    same = np.repeat(distinct[:1], 50, axis=0)
    _, ids = KnnIndex.build(same, backend=backend).search(distinct[:2], 4)
    assert ids.tolist() == [[0, 1, 2, 3]] * 2


@pytest.mark.parametrize('backend', BACKENDS)
def test_k_beyond_the_index_is_clipped(embeddings, backend):
    index = KnnIndex.build(embeddings[:7], backend=backend)
    scores, ids = index.search(embeddings[:3], 10)
    assert ids.shape == scores.shape == (3, 7)
    assert sorted(ids[0].tolist()) == list(range(7))
    assert ids[:, 0].tolist() == [0, 1, 2]
    with pytest.raises(ValueError, match='k must be at least 1'):
        index.search(embeddings[:1], 0)


def test_numpy_and_faiss_agree(embeddings):
    queries = queries_like('text', embeddings, 25)
    faiss_scores, faiss_ids = KnnIndex.build(
        embeddings, backend='faiss').search(queries, 20)
    numpy_scores, numpy_ids = KnnIndex.build(
        embeddings, backend='numpy').search(queries[::-1], 20)
    assert np.array_equal(faiss_ids, numpy_ids[::-1])
    assert np.allclose(faiss_scores, numpy_scores[::-1], atol=1e-5)


def clustered(n, dim, clusters, seed=0):
    """Rows around ``clusters`` centres, as photos of a few subjects."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    return normalised(centres[rng.integers(clusters, size=n)] +
                      0.5 * rng.standard_normal((n, dim)))


def folder_with(tmp_path, rows):
    folder = IndexFolder(str(tmp_path / 'index'), create=True)
    folder.write_part(rows, {'image_path': [f'{i}.jpg' for i in
                                            range(len(rows))]})
    return folder


def test_approximate_index_reports_its_recall(tmp_path):
    rows = clustered(4000, 32, clusters=40)
    folder = folder_with(tmp_path, rows)
    every_list = build_index_file(folder, 'IVF16,Flat', nprobe=16,
                                  recall_queries=200)
    # Visiting every list is an exhaustive search.
    assert every_list == {'type': 'IVF16,Flat', 'recall@10': 1.0,
                          'file': folder.index_path}
    one_list = build_index_file(folder, 'IVF16,Flat', nprobe=1,
                                recall_queries=200)
    assert 0.3 < one_list['recall@10'] < 1.0
    loaded = KnnIndex.load(folder.index_path, folder.embeddings(),
                           index_type='IVF16,Flat')
    assert loaded.faiss_index.nprobe == 1  # saved with the index
    _, found = loaded.search(rows[:200], 10)
    _, exact = brute_force(rows[:200], rows, 10)
    assert 0.3 < recall_at_k(found, exact, 10) < 1.0
    hnsw = build_index_file(folder, 'HNSW16', ef_search=64,
                            recall_queries=200)
    assert hnsw['recall@10'] > 0.9
    assert KnnIndex.load(folder.index_path).index_type == 'IndexHNSWFlat'


def test_exact_index_file_round_trip(tmp_path, embeddings):
    folder = folder_with(tmp_path, embeddings)
    assert build_index_file(folder) == {'type': 'exact', 'recall@10': None,
                                        'file': folder.index_path}
    loaded = KnnIndex.load(folder.index_path, folder.embeddings())
    assert loaded.index_type == 'exact' and loaded.ntotal == 3000
    assert np.array_equal(loaded.search(embeddings[:5], 10)[1],
                          brute_force(embeddings[:5], embeddings, 10)[1])


def test_stale_index_file_is_named(tmp_path, embeddings):
    folder = folder_with(tmp_path, embeddings[:100])
    build_index_file(folder)
    folder.write_part(embeddings[100:110],
                      {'image_path': [str(i) for i in range(10)]})
    with pytest.raises(SearchIndexError,
                       match='holds 100 x 64 vectors but the folder has '
                       '110 x 64: the index file is stale'):
        KnnIndex.load(folder.index_path, folder.embeddings())


def test_too_few_rows_to_train(embeddings):
    with pytest.raises(SearchIndexError,
                       match=r"'IVF256,Flat' needs at least 256 embeddings"
                       r".* has 100: use 'exact'"):
        KnnIndex.build(embeddings[:100], 'IVF256,Flat')
    with pytest.raises(SearchIndexError, match='needs at least 256'):
        KnnIndex.build(embeddings[:100], 'PQ8')
    with pytest.raises(SearchIndexError, match='does not know the index'):
        KnnIndex.build(embeddings[:100], 'NotAnIndex42')


def test_queries_from_another_model(embeddings):
    index = KnnIndex.build(embeddings, backend='numpy')
    with pytest.raises(SearchIndexError,
                       match='queries are 32-d but the index holds 64-d'):
        index.search(np.ones((1, 32), np.float32), 5)


def test_without_faiss_the_exact_search_runs_in_numpy(
        tmp_path, embeddings, monkeypatch):
    folder = folder_with(tmp_path, embeddings[:200])
    build_index_file(folder)
    monkeypatch.setitem(sys.modules, 'faiss', None)  # import faiss fails
    index = KnnIndex.build(embeddings[:200])
    assert index.backend == 'numpy'
    assert np.array_equal(index.search(embeddings[:3], 5)[1],
                          brute_force(embeddings[:3], embeddings[:200], 5)[1])
    loaded = KnnIndex.load(folder.index_path, folder.embeddings())
    assert loaded.backend == 'numpy' and loaded.ntotal == 200
    assert build_index_file(folder)['file'] is None
    with pytest.raises(SearchIndexError, match='pip install faiss-cpu'):
        KnnIndex.build(embeddings, 'HNSW32')
    with pytest.raises(SearchIndexError, match='faiss is not installed'):
        KnnIndex.load(folder.index_path)


def test_approximate_needs_faiss_backend(embeddings):
    with pytest.raises(SearchIndexError, match="needs faiss; use 'exact'"):
        KnnIndex.build(embeddings, 'HNSW32', backend='numpy')
    with pytest.raises(SearchIndexError, match='apply to approximate'):
        KnnIndex.build(embeddings[:50], nprobe=4)


def test_recall_at_k():
    exact = np.array([[1, 2, 3, 4], [5, 6, 7, 8]])
    found = np.array([[4, 3, 9, 9], [5, -1, -1, -1]])
    assert recall_at_k(found, exact, 4) == pytest.approx((2 / 4 + 1 / 4) / 2)
    assert recall_at_k(exact, exact, 2) == 1.0
