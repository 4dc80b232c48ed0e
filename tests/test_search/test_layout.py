"""mmclip.search.layout: clip-retrieval's index folder, atomic parts that
resume after an interrupted run, the manifest, and one clear error per
broken folder.

clip-retrieval 2.45.0's own code cannot be imported here (its package
``__init__`` imports ``clip_back``, which needs flask, flask_restful,
flask_cors, h5py, prometheus_client, fire and pandas at import), so the
interop tests write and read the layout as its source does
(``clip_inference/writer.py``: ``np.save`` parts, ``image_path`` plus
caption/extra columns in the parquet, numbers zero-filled to the digits of
the partition count; ``clip_back.py``: metadata parts in
``sorted(glob('*.parquet'))`` order; autofaiss's embedding reader: ``.npy``
files in sorted order).
"""
import glob
import json
import os
import os.path as osp

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mmclip.search import IndexFolder, SearchIndexError, make_manifest


def unit_rows(n, dim, seed=0):
    rows = np.random.default_rng(seed).standard_normal((n, dim))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(
        np.float32)


def paths(part, n):
    return {'image_path': [f'photos/{part}/{i}.jpg' for i in range(n)]}


def clip_retrieval_order(root):
    """Rows as clip-retrieval's readers order them: the embedding files and
    the metadata files each sorted by path as text."""
    npys = sorted(glob.glob(osp.join(root, 'img_emb', '*.npy')))
    parquets = sorted(glob.glob(osp.join(root, 'metadata', '*.parquet')))
    embeddings = np.concatenate([np.load(p) for p in npys])
    image_paths = [p for f in parquets
                   for p in pq.read_table(f).column('image_path').to_pylist()]
    return embeddings, image_paths


def test_parts_keep_write_order_for_clip_retrievals_readers(tmp_path):
    folder = IndexFolder(str(tmp_path / 'index'), create=True)
    rows = unit_rows(12 * 3, 8)
    numbers = [folder.write_part(rows[3 * p:3 * p + 3], paths(p, 3))
               for p in range(12)]
    # Part 10 would sort before part 2 as text ('img_emb_10' <
    # 'img_emb_2'), which clip-retrieval's readers use: 9 is followed by 90.
    assert numbers == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 90, 91]
    assert folder.parts() == numbers
    assert osp.exists(tmp_path / 'index' / 'img_emb' / 'img_emb_0.npy')
    assert osp.exists(tmp_path / 'index' / 'metadata' / 'metadata_0.parquet')
    assert folder.count() == 36 and folder.embed_dim() == 8
    expected_paths = [p for part in range(12) for p in paths(part, 3)[
        'image_path']]
    assert np.array_equal(folder.embeddings(), rows)
    assert folder.metadata()['image_path'] == expected_paths
    assert folder.known_paths() == set(expected_paths)
    theirs_embeddings, theirs_paths = clip_retrieval_order(folder.root)
    assert np.array_equal(theirs_embeddings, rows)
    assert theirs_paths == expected_paths
    assert np.load(tmp_path / 'index' / 'img_emb' / 'img_emb_0.npy'
                   ).dtype == np.float32


def write_like_clip_retrieval(root, parts, dim, rows=4):
    """A folder as ``clip-retrieval inference`` leaves it with ``parts``
    partitions, texts enabled: float16 image embeddings, text embeddings,
    and a caption plus an extra metadata column."""
    width = len(str(parts))  # int(log10(parts)) + 1 digits
    for sub in ('img_emb', 'text_emb', 'metadata'):
        os.makedirs(osp.join(root, sub), exist_ok=True)
    embeddings = unit_rows(parts * rows, dim)
    for part in range(parts):
        number = str(part).zfill(width)
        chunk = embeddings[part * rows:(part + 1) * rows]
        np.save(osp.join(root, 'img_emb', f'img_emb_{number}.npy'),
                chunk.astype(np.float16))
        np.save(osp.join(root, 'text_emb', f'text_emb_{number}.npy'), chunk)
        pq.write_table(pa.table({
            'image_path': [f'{part}/{i}.jpg' for i in range(rows)],
            'caption': [f'caption {part} {i}' for i in range(rows)],
            'width': list(range(rows))}),
            osp.join(root, 'metadata', f'metadata_{number}.parquet'))
    return embeddings


def test_reads_and_extends_clip_retrievals_output(tmp_path):
    root = str(tmp_path / 'theirs')
    embeddings = write_like_clip_retrieval(root, parts=12, dim=8)
    folder = IndexFolder(root)
    assert folder.parts() == list(range(12))  # img_emb_00 .. img_emb_11
    got = folder.embeddings()
    assert got.dtype == np.float32 and got.shape == (48, 8)
    assert np.allclose(got, embeddings, atol=1e-3)  # stored as float16
    metadata = folder.metadata()
    assert list(metadata) == ['image_path', 'caption', 'width']
    assert metadata['caption'][4] == 'caption 1 0'
    # A resumed run adds a part that sorts after theirs, zero-filled alike.
    assert IndexFolder(root, create=True).write_part(
        unit_rows(2, 8), paths(12, 2)) == 12
    assert osp.exists(osp.join(root, 'img_emb', 'img_emb_12.npy'))
    assert folder.count() == 50
    _, their_order = clip_retrieval_order(root)
    assert their_order == folder.metadata(['image_path'])['image_path']
    assert folder.metadata()['caption'][-1] is None


def test_single_part_is_memory_mapped_without_a_copy(tmp_path):
    folder = IndexFolder(str(tmp_path), create=True)
    folder.write_part(unit_rows(5, 4), paths(0, 5))
    assert isinstance(folder.embeddings(), np.memmap)
    assert not isinstance(folder.embeddings(mmap=False), np.memmap)


def test_manifest_round_trip(tmp_path):
    folder = IndexFolder(str(tmp_path), create=True)
    assert folder.read_manifest() is None
    folder.write_part(unit_rows(5, 4), paths(0, 5))
    manifest = make_manifest(folder, model='clip_vit-base-p32',
                             checkpoint='ckpt.pth', encoder='int8',
                             index={'type': 'HNSW32', 'recall@10': 0.98,
                                    'file': 'x'})
    folder.write_manifest(manifest)
    assert IndexFolder(str(tmp_path)).read_manifest() == {
        'format': 1, 'model': 'clip_vit-base-p32', 'checkpoint': 'ckpt.pth',
        'embed_dim': 4, 'encoder': 'int8', 'count': 5, 'parts': 1,
        'index': {'type': 'HNSW32', 'recall@10': 0.98}}
    assert sorted(os.listdir(tmp_path)) == ['img_emb', 'metadata',
                                            'mmclip_search.json']
    with open(folder.manifest_path, 'w') as f:
        f.write('{"format": 1,')  # cut short by hand
    with pytest.raises(SearchIndexError, match='not valid JSON'):
        folder.read_manifest()


def test_crash_between_the_two_renames_leaves_no_half_part(
        tmp_path, monkeypatch):
    folder = IndexFolder(str(tmp_path), create=True)
    first = unit_rows(3, 4, seed=1)
    folder.write_part(first, paths(0, 3))

    def crash(table, where, **kwargs):
        with open(where, 'wb') as f:
            f.write(b'PAR1 half')
        raise KeyboardInterrupt  # killed while writing the metadata

    with monkeypatch.context() as patch:
        patch.setattr(pq, 'write_table', crash)
        with pytest.raises(KeyboardInterrupt):
            folder.write_part(unit_rows(3, 4, seed=2), paths(1, 3))
    # The embeddings of part 1 are in place, its metadata is not: readers
    # see part 0 only, nothing temporary is left.
    assert osp.exists(tmp_path / 'img_emb' / 'img_emb_1.npy')
    assert not glob.glob(str(tmp_path / '**' / '.*.tmp'), recursive=True)
    assert IndexFolder(str(tmp_path)).parts() == [0]
    assert np.array_equal(IndexFolder(str(tmp_path)).embeddings(), first)
    # The next run removes the orphan (clip-retrieval's index would count
    # it) and writes part 1 whole.
    resumed = IndexFolder(str(tmp_path), create=True)
    assert not osp.exists(tmp_path / 'img_emb' / 'img_emb_1.npy')
    second = unit_rows(2, 4, seed=3)
    assert resumed.write_part(second, paths(1, 2)) == 1
    assert np.array_equal(resumed.embeddings(), np.concatenate(
        [first, second]))
    assert resumed.known_paths() == set(paths(0, 3)['image_path'] +
                                        paths(1, 2)['image_path'])


def test_leftover_temp_files_are_ignored_then_cleaned(tmp_path):
    folder = IndexFolder(str(tmp_path), create=True)
    folder.write_part(unit_rows(3, 4), paths(0, 3))
    leftovers = [tmp_path / 'img_emb' / '.img_emb_1.npy.tmp',
                 tmp_path / 'metadata' / '.metadata_1.parquet.tmp',
                 tmp_path / '.image.index.tmp']
    for leftover in leftovers:
        leftover.write_bytes(b'killed mid-write')
    # No reader's pattern (ours, clip-retrieval's *.npy / *.parquet) sees
    # them.
    assert glob.glob(str(tmp_path / 'img_emb' / '*.npy')) == [
        str(tmp_path / 'img_emb' / 'img_emb_0.npy')]
    assert len(glob.glob(str(tmp_path / 'metadata' / '*.parquet'))) == 1
    assert IndexFolder(str(tmp_path)).count() == 3
    assert all(osp.exists(leftover) for leftover in leftovers)
    IndexFolder(str(tmp_path), create=True)
    assert not any(osp.exists(leftover) for leftover in leftovers)


def test_not_an_index_folder(tmp_path):
    with pytest.raises(SearchIndexError, match='is not an index folder'):
        IndexFolder(str(tmp_path / 'missing'))
    (tmp_path / 'photos').mkdir()
    (tmp_path / 'photos' / 'cat.jpg').write_bytes(b'')
    with pytest.raises(SearchIndexError, match='no img_emb/'):
        IndexFolder(str(tmp_path / 'photos'))
    with pytest.raises(SearchIndexError, match='new or empty folder'):
        IndexFolder(str(tmp_path / 'photos'), create=True)
    assert os.listdir(tmp_path / 'photos') == ['cat.jpg']


def test_parts_of_different_widths(tmp_path):
    folder = IndexFolder(str(tmp_path), create=True)
    folder.write_part(unit_rows(3, 8), paths(0, 3))
    with pytest.raises(SearchIndexError,
                       match='holds 8-d embeddings, these are 4-d'):
        folder.write_part(unit_rows(3, 4), paths(1, 3))
    assert folder.parts() == [0]
    # Another tool dropped a 4-d part beside it.
    np.save(tmp_path / 'img_emb' / 'img_emb_1.npy', unit_rows(2, 4))
    pq.write_table(pa.table(paths(1, 2)),
                   str(tmp_path / 'metadata' / 'metadata_1.parquet'))
    with pytest.raises(SearchIndexError) as error:
        folder.count()
    message = str(error.value)
    assert 'disagree in embedding width' in message
    assert 'img_emb_0.npy' in message and 'img_emb_1.npy' in message


def test_rows_differ_from_metadata(tmp_path):
    folder = IndexFolder(str(tmp_path), create=True)
    folder.write_part(unit_rows(3, 4), paths(0, 3))
    pq.write_table(pa.table(paths(0, 2)),
                   str(tmp_path / 'metadata' / 'metadata_0.parquet'))
    with pytest.raises(SearchIndexError,
                       match=r'img_emb_0.npy has 3 rows but .*'
                       r'metadata_0.parquet has 2'):
        folder.embeddings()


def test_missing_metadata_column(tmp_path):
    folder = IndexFolder(str(tmp_path), create=True)
    folder.write_part(unit_rows(2, 4), paths(0, 2))
    with pytest.raises(SearchIndexError,
                       match="metadata_0.parquet has no column 'caption'"):
        folder.metadata(['caption'])


def test_write_part_rejects_bad_input(tmp_path):
    folder = IndexFolder(str(tmp_path), create=True)
    with pytest.raises(ValueError, match='image_path'):
        folder.write_part(unit_rows(2, 4), {'path': ['a', 'b']})
    with pytest.raises(ValueError, match='differ from the 2 embedding'):
        folder.write_part(unit_rows(2, 4), {'image_path': ['a']})
    with pytest.raises(ValueError, match='N > 0'):
        folder.write_part(np.zeros((0, 4), np.float32), {'image_path': []})
    assert folder.parts() == [] and folder.embed_dim() is None
    assert json.dumps(folder.metadata()) == '{}'


def test_without_pyarrow_the_error_says_what_to_install(tmp_path,
                                                        monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, 'pyarrow', None)
    monkeypatch.setitem(sys.modules, 'pyarrow.parquet', None)
    folder = IndexFolder(str(tmp_path / 'idx'), create=True)
    with pytest.raises(SearchIndexError,
                       match=r'pyarrow is not installed.*pip install pyarrow'):
        folder.write_part(np.ones((1, 4), np.float32),
                          {'image_path': ['a.jpg']})
