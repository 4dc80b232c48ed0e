"""Indexing a folder / list / shards and querying it (mmclip.apis.search):
top-k equal to brute force over the same embeddings, resumable indexing,
bad input counted and named, the model checked against the index."""
import io
import json
import os
import os.path as osp
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

from mmclip.apis import ImageSearch, get_model, index_images, search_images
from mmclip.search import IndexFolder, SearchIndexError

MODEL = 'clip_vit-tiny-p8_zeroshot-cls_digits-32px'
PHOTOS = ('astronaut', 'chelsea', 'coffee', 'rocket', 'camera', 'horse')


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """The tiny model's random weights, saved (index and queries must embed
    with the same weights)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('ckpt') / 'tiny.pth'
    torch.save({'state_dict': get_model(MODEL).state_dict()}, path)
    return str(path)


@pytest.fixture(scope='module')
def photos(tmp_path_factory):
    """scikit-image's photos in nested folders, flipped copies to make 12,
    a corrupt JPEG and a text file."""
    root = tmp_path_factory.mktemp('photos')
    (root / 'trip' / 'day2').mkdir(parents=True)
    for i, name in enumerate(PHOTOS):
        image = np.asarray(Image.fromarray(getattr(skdata, name)()).convert(
            'RGB').resize((96, 72)))
        Image.fromarray(image).save(root / f'{name}.jpg')
        Image.fromarray(image[:, ::-1]).save(
            root / 'trip' / ('day2' if i % 2 else '') / f'{name}_m.png')
    (root / 'trip' / 'broken.jpg').write_bytes(b'\xff\xd8\xff not a JPEG')
    (root / 'notes.txt').write_text('not an image')
    return str(root)


def _index(source, out, checkpoint, **kwargs):
    return index_images(source, str(out), model=MODEL, checkpoint=checkpoint,
                        batch_size=4, progress=False, **kwargs)


def test_folder_index_layout_and_report(photos, checkpoint, tmp_path):
    report = _index(photos, tmp_path / 'idx', checkpoint)
    assert report['added'] == report['count'] == 12
    assert len(report['skipped']) == 1 and 'broken.jpg' in \
        report['skipped'][0]
    assert [osp.basename(p) for p in report['not_images']] == ['notes.txt']
    folder = IndexFolder(str(tmp_path / 'idx'))
    paths = folder.metadata()['image_path']
    assert all(osp.isabs(p) and osp.isfile(p) for p in paths)
    emb = folder.embeddings()
    assert emb.shape == (12, 64) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    manifest = json.load(open(tmp_path / 'idx' / 'mmclip_search.json'))
    assert manifest['model'] == MODEL and manifest['count'] == 12
    assert manifest['checkpoint'] == osp.abspath(checkpoint)
    assert osp.isfile(tmp_path / 'idx' / 'image.index')


def test_top_k_equals_brute_force(photos, checkpoint, tmp_path):
    """Text and image queries: the index's top-k is NumPy's argsort of the
    same embeddings, and an indexed image finds itself first."""
    _index(photos, tmp_path / 'idx', checkpoint)
    search = ImageSearch(str(tmp_path / 'idx'))
    emb = np.asarray(IndexFolder(str(tmp_path / 'idx')).embeddings())
    for text in ('a cat', 'a rocket on a launch pad', 'coffee'):
        hits = search.query_text(text, k=5)
        query = search._embed_text([text])[0]
        expected = np.argsort(-(emb @ query), kind='stable')[:5]
        assert [h['id'] for h in hits] == expected.tolist()
        np.testing.assert_allclose([h['similarity'] for h in hits],
                                   (emb @ query)[expected], atol=1e-5)
    target = osp.join(photos, 'coffee.jpg')
    hits = search.query_image(target, k=12)
    query = search.embed_image(target)[0]
    assert [h['id'] for h in hits] == np.argsort(
        -(emb @ query), kind='stable').tolist()
    assert hits[0]['image_path'] == target
    assert hits[0]['similarity'] == pytest.approx(1, abs=1e-4)
    # bytes query: the same
    with open(target, 'rb') as f:
        assert search.query_image(f.read(), k=1)[0]['id'] == hits[0]['id']


def test_rerun_adds_only_new_files_and_resumes_after_a_crash(
        photos, checkpoint, tmp_path, monkeypatch):
    import mmclip.apis.search.indexing as indexing
    out = tmp_path / 'idx'
    real_encoder = indexing._image_encoder
    calls = []

    def failing_encoder(model, int8_dir):
        encode = real_encoder(model, int8_dir)

        def run(inputs):
            calls.append(len(inputs))
            if len(calls) == 3:
                raise KeyboardInterrupt  # Ctrl-C in the third batch
            return encode(inputs)
        return run

    monkeypatch.setattr(indexing, '_image_encoder', failing_encoder)
    with pytest.raises(KeyboardInterrupt):
        _index(photos, out, checkpoint, part_size=4)
    folder = IndexFolder(str(out))
    assert folder.count() == 8  # two finished batches were kept
    monkeypatch.setattr(indexing, '_image_encoder', real_encoder)
    report = _index(photos, out, checkpoint, part_size=4)
    assert (report['added'], report['already_indexed']) == (4, 8)
    paths = IndexFolder(str(out)).metadata()['image_path']
    assert len(paths) == len(set(paths)) == 12
    # Same embeddings as a run that was never interrupted.
    _index(photos, tmp_path / 'whole', checkpoint)
    whole = IndexFolder(str(tmp_path / 'whole'))
    order = {p: i for i, p in enumerate(whole.metadata()['image_path'])}
    np.testing.assert_allclose(
        np.asarray(IndexFolder(str(out)).embeddings()),
        np.asarray(whole.embeddings())[[order[p] for p in paths]],
        atol=1e-5)
    # A new photo: only it is embedded.
    extra = tmp_path / 'more'
    extra.mkdir()
    Image.fromarray(skdata.astronaut()[::8, ::8]).save(extra / 'new.png')
    report = _index(str(extra), out, checkpoint)
    assert (report['added'], report['count']) == (1, 13)
    assert ImageSearch(str(out)).count == 13


def test_list_and_shard_sources_keep_captions(photos, checkpoint, tmp_path):
    names = ['coffee.jpg', 'rocket.jpg']
    csv = tmp_path / 'list.csv'
    csv.write_text('filepath,title\n' + ''.join(
        f'{osp.join(photos, n)},photo of {n}\n' for n in names))
    report = _index(str(csv), tmp_path / 'from_csv', checkpoint)
    meta = IndexFolder(str(tmp_path / 'from_csv')).metadata()
    assert report['count'] == 2
    assert meta['caption'] == [f'photo of {n}' for n in names]
    shard = tmp_path / '00000.tar'
    with tarfile.open(shard, 'w') as tar:
        for i, name in enumerate(names):
            for ext, payload in (('jpg', open(osp.join(photos, name),
                                              'rb').read()),
                                 ('txt', name.encode())):
                info = tarfile.TarInfo(f'{i:04d}.{ext}')
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    out = tmp_path / 'from_shards'
    report = _index(str(shard), out, checkpoint)
    assert report['count'] == 2 and not report['problems']
    search = ImageSearch(str(out))
    hit = search.query_image(osp.join(photos, 'rocket.jpg'), k=1)[0]
    assert hit['image_path'] == f'{shard}::0001.jpg'
    assert search.image_bytes(hit['id']) == open(
        osp.join(photos, 'rocket.jpg'), 'rb').read()
    _served_by_the_page_server(search, osp.join(photos, 'rocket.jpg'))


def _served_by_the_page_server(search, query_file):
    """The real ImageSearch behind the HTTP server: clip-retrieval's
    request by text and by image, and a thumbnail of a shard member."""
    import base64
    import threading
    import urllib.error
    import urllib.request

    from mmclip.search.server import make_server
    server = make_server(search, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = 'http://127.0.0.1:%d' % server.server_address[1]

    def post(body):
        request = urllib.request.Request(
            url + '/knn-service', json.dumps(body).encode(),
            {'Content-Type': 'application/json'})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.load(response)

    try:
        by_text = post(dict(text='a rocket', num_images=2, modality='image'))
        assert [h['id'] for h in by_text] == [
            h['id'] for h in search.query_text('a rocket', k=2)]
        image = base64.b64encode(open(query_file, 'rb').read()).decode()
        best = post(dict(image=image, num_images=1))[0]
        assert best['image_path'].endswith('::0001.jpg')
        vector = search.embed_image(query_file)[0] * 3  # not normalised
        assert post(dict(embedding_input=vector.tolist(), num_images=1))[
            0]['id'] == best['id']
        with pytest.raises(urllib.error.HTTPError) as err:  # a bad query
            post(dict(embedding_input=[1.0, 2.0, 3.0]))
        assert err.value.code == 400
        assert 'queries are 3-d but the index holds 64-d' in json.load(
            err.value)['error']
        assert post(dict(text='a rocket', num_images=1))  # still answering
        with urllib.request.urlopen(f"{url}/image/{best['id']}",
                                    timeout=60) as response:
            thumb = Image.open(io.BytesIO(response.read()))
        assert thumb.format == 'JPEG' and max(thumb.size) <= 256
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_other_model_or_weights_are_refused(photos, checkpoint, tmp_path):
    out = str(tmp_path / 'idx')
    _index(photos, out, checkpoint)
    with pytest.raises(SearchIndexError,
                       match=r"checkpoint=None.*same --model / --checkpoint"):
        index_images(photos, out, model=MODEL, progress=False)
    with pytest.raises(SearchIndexError, match=r"model='clip_vit-base-p32"):
        ImageSearch(out, model='clip_vit-base-p32_zeroshot-cls_in1k')


def test_bad_queries_and_folders(photos, checkpoint, tmp_path):
    out = str(tmp_path / 'idx')
    _index(photos, out, checkpoint)
    search = ImageSearch(out)
    with pytest.raises(ValueError, match='query text is empty'):
        search.query_text('  ')
    with pytest.raises(ValueError, match='exactly one'):
        search.query()
    with pytest.raises(ValueError, match='not a readable image'):
        search.query_image(b'%PDF-1.4 not an image')
    with pytest.raises(SearchIndexError, match='not an index folder'):
        ImageSearch(photos)
    empty = tmp_path / 'only_junk'
    empty.mkdir()
    (empty / 'x.jpg').write_bytes(b'junk')
    with pytest.raises(SearchIndexError, match='would be empty'):
        _index(str(empty), tmp_path / 'idx2', checkpoint)
    assert not osp.exists(tmp_path / 'idx2' / 'mmclip_search.json')


def test_search_images_writes_a_contact_sheet(photos, checkpoint, tmp_path):
    _index(photos, tmp_path / 'idx', checkpoint)
    sheet = tmp_path / 'out' / 'hits.png'
    hits = search_images(str(tmp_path / 'idx'), text='a cat', k=7,
                         sheet=str(sheet))
    assert len(hits) == 7
    image = Image.open(sheet)
    assert image.size[0] > 5 * 192 and image.size[1] > 2 * 192


def test_contact_sheet_tiles_an_unreadable_hit(tmp_path):
    from mmclip.visualization import draw_contact_sheet

    def load(hit):
        if hit['id'] == 1:
            raise FileNotFoundError('gone.jpg was deleted')
        return Image.new('RGB', (40, 20), (255, 0, 0))

    hits = [dict(id=i, image_path=f'/x/{i}.jpg', similarity=0.5 - i / 10)
            for i in range(3)]
    sheet = np.asarray(draw_contact_sheet(hits, load, title='q',
                                          thumb_size=64))
    tiles = [sheet[8 + 24:8 + 24 + 64, 8 + i * 72:8 + i * 72 + 64]
             for i in range(3)]
    assert (tiles[0] == [255, 0, 0]).all(-1).mean() > 0.4  # letterboxed
    assert (tiles[1] == [225, 225, 225]).all(-1).mean() > 0.5  # grey tile


def test_a_folder_without_manifest_needs_the_model(photos, checkpoint,
                                                   tmp_path):
    """clip-retrieval's inference writes no manifest: the model must be
    named, and only the width can be checked."""
    import shutil
    out = tmp_path / 'idx'
    _index(photos, out, checkpoint)
    os.remove(out / 'mmclip_search.json')
    with pytest.raises(SearchIndexError,
                       match='no mmclip_search.json.*pass that model'):
        ImageSearch(str(out))
    search = ImageSearch(str(out), model=MODEL, checkpoint=checkpoint)
    assert search.query_image(osp.join(photos, 'coffee.jpg'), k=1)[0][
        'image_path'] == osp.join(photos, 'coffee.jpg')
    # Embeddings of another width than the model's.
    wide = tmp_path / 'wide'
    shutil.copytree(out, wide)
    folder = IndexFolder(str(wide))
    for name in os.listdir(folder.embeddings_dir):
        path = osp.join(folder.embeddings_dir, name)
        emb = np.load(path)
        np.save(path, np.concatenate([emb, emb], axis=1) / np.sqrt(2))
    os.remove(wide / 'image.index')
    with pytest.raises(SearchIndexError,
                       match='holds 128-d embeddings but the model embeds '
                       'in 64'):
        ImageSearch(str(wide), model=MODEL, checkpoint=checkpoint)


def test_without_faiss_the_search_runs_in_numpy(photos, checkpoint, tmp_path,
                                                monkeypatch):
    """faiss is optional: the exact index is then NumPy's, with the same
    hits; an approximate type says what to install."""
    import sys
    with_faiss = tmp_path / 'with_faiss'
    _index(photos, with_faiss, checkpoint)
    expected = ImageSearch(str(with_faiss)).query_text('a cat', k=5)
    monkeypatch.setitem(sys.modules, 'faiss', None)
    out = tmp_path / 'numpy'
    report = _index(photos, out, checkpoint)
    assert report['index']['file'] is None
    assert not osp.exists(out / 'image.index')
    search = ImageSearch(str(out))
    assert search.index.backend == 'numpy'
    hits = search.query_text('a cat', k=5)
    assert [h['id'] for h in hits] == [h['id'] for h in expected]
    np.testing.assert_allclose([h['similarity'] for h in hits],
                               [h['similarity'] for h in expected],
                               atol=1e-6)
    with pytest.raises(SearchIndexError, match='pip install faiss-cpu'):
        _index(photos, tmp_path / 'ivf', checkpoint, index_type='IVF2,Flat')


def test_int8_index_reports_its_recall_against_float32(photos, checkpoint,
                                                       tmp_path):
    """tools/search/index.py --int8: the images are embedded by the int8
    image tower of the model's ONNX export; the manifest says so and keeps
    the recall@10 of its results against float32 on the same queries."""
    from mmclip.deployment import export_onnx
    from mmclip.deployment.quantize import quantize_image_tower
    export = str(tmp_path / 'onnx')
    export_onnx(get_model(MODEL, checkpoint), export, verify=False)
    quantize_image_tower(export)
    out = tmp_path / 'idx'
    report = _index(photos, out, checkpoint, int8_dir=export)
    recall = report['index']['int8_recall@10']
    assert recall['images'] == 12
    assert 0.9 <= recall['text'] <= 1 and 0.9 <= recall['image'] <= 1
    manifest = json.load(open(out / 'mmclip_search.json'))
    assert manifest['encoder'] == 'int8'
    assert manifest['index']['int8_recall@10'] == recall
    # Close to the float32 embeddings of the same images.
    _index(photos, tmp_path / 'fp32', checkpoint)
    cosine = np.sum(np.asarray(IndexFolder(str(out)).embeddings()) *
                    np.asarray(IndexFolder(str(tmp_path / 'fp32')
                                           ).embeddings()), axis=1)
    assert cosine.min() > 0.99
    # Adding with the float32 tower is refused (one encoder per index).
    with pytest.raises(SearchIndexError, match="encoder='int8'"):
        _index(photos, out, checkpoint)
    assert ImageSearch(str(out)).query_image(
        osp.join(photos, 'coffee.jpg'), k=1)[0]['image_path'] == osp.join(
            photos, 'coffee.jpg')


def test_a_moved_checkpoint_is_accepted_by_its_file_name(photos, checkpoint,
                                                         tmp_path):
    """The index records the checkpoint's path; once that file is gone, the
    same file name elsewhere is taken as the moved checkpoint. Another
    name, or the old file still in place, is refused."""
    import shutil
    old = tmp_path / 'old' / 'tiny.pth'
    old.parent.mkdir()
    shutil.copy(checkpoint, old)
    out = str(tmp_path / 'idx')
    _index(photos, out, str(old))
    other = tmp_path / 'new' / 'other.pth'
    other.parent.mkdir()
    shutil.copy(checkpoint, other)
    with pytest.raises(SearchIndexError, match='checkpoint='):
        ImageSearch(out, checkpoint=str(other))
    moved = tmp_path / 'new' / 'tiny.pth'
    shutil.copy(checkpoint, moved)
    with pytest.raises(SearchIndexError, match='checkpoint='):  # old exists
        ImageSearch(out, model=MODEL, checkpoint=str(moved))
    os.remove(old)
    search = ImageSearch(out, model=MODEL, checkpoint=str(moved))
    assert search.query_image(osp.join(photos, 'coffee.jpg'), k=1)[0][
        'image_path'] == osp.join(photos, 'coffee.jpg')
    report = _index(photos, out, str(moved))
    assert (report['added'], report['count']) == (0, 12)
