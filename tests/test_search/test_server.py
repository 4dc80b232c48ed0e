"""The search server over a fake searcher: clip-retrieval's /knn-service
shape, the page and thumbnails, every refusal with its status and message,
and a bounded loop of concurrent good and bad requests after which the
server still answers correctly."""
import base64
import http.client
import io
import json
import random
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest
from fake_searcher import FakeSearcher, running_server
from PIL import Image

from mmclip.search.knn_request import IGNORED_FIELDS, parse_knn_request
from mmclip.search.server import make_server


@pytest.fixture
def searcher(tmp_path):
    return FakeSearcher(str(tmp_path))


@pytest.fixture
def url(searcher):
    with running_server(searcher, max_k=25, max_body_bytes=64 * 1024) as u:
        yield u


def request(url: str, method: str, path: str, body=None, headers=None):
    """``(status, headers, body bytes)``; ``body`` is JSON-encoded unless
    it is bytes."""
    host, port = url.rsplit('/', 1)[1].split(':')
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode()
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def knn(url: str, body, **kwargs):
    status, headers, data = request(url, 'POST', '/knn-service', body,
                                    **kwargs)
    return status, headers, json.loads(data)


def b64_file(path: str) -> str:
    with open(path, 'rb') as f:
        return base64.b64encode(f.read()).decode()


def as_hits(expected, with_path=True):
    return [dict(image_path=p, id=i, similarity=pytest.approx(s, abs=1e-6))
            if with_path else dict(id=i, similarity=pytest.approx(s, abs=1e-6))
            for i, p, s in expected]


def test_text_query_in_clip_retrievals_shape(url, searcher):
    """The body clip_retrieval.clip_client.ClipClient sends (unused inputs
    as null): the first ``num_images`` hits carry their path, the rest of
    ``num_result_ids`` only id and similarity, as clip_back answers."""
    body = dict(text='a red bicycle', image=None, image_url=None,
                embedding_input=None, deduplicate=True,
                use_safety_model=False, use_violence_detector=False,
                indice_name='fake-photos', use_mclip=False,
                aesthetic_score='', aesthetic_weight='', modality='image',
                num_images=3, num_result_ids=5)
    status, headers, hits = knn(url, body)
    assert status == 200
    expected = searcher.expected(b'a red bicycle', 5)
    assert hits == as_hits(expected[:3]) + as_hits(expected[3:], False)
    assert headers['X-Ignored-Fields'] == 'deduplicate'
    assert set(IGNORED_FIELDS) <= set(body)


def test_image_query_as_base64_and_as_a_data_url(url, searcher):
    data = b64_file(searcher.paths[4])
    raw = base64.b64decode(data)
    for image in (data, 'data:image/png;base64,' + data,
                  base64.encodebytes(raw).decode()):  # with newlines
        status, _, hits = knn(url, dict(image=image, num_images=4))
        assert status == 200
        assert hits == as_hits(searcher.expected(raw, 4))


def test_k_is_clipped_to_max_k(url, searcher):
    status, _, hits = knn(url, dict(text='cat', num_images=10**6))
    assert status == 200 and len(hits) == 25
    assert hits == as_hits(searcher.expected(b'cat', 25))


def test_parse_knn_request_priority_and_defaults():
    parsed = parse_knn_request(dict(text='cat', image='!!'), 'x', 100)
    assert parsed['kind'] == 'text' and parsed['k'] == 10  # text wins
    parsed = parse_knn_request(dict(text='', embedding_input=[1, 0.5]), 'x',
                               100)
    assert parsed['kind'] == 'embedding' and parsed['query'] == [1, 0.5]


def test_page_info_indices_and_metadata(url, searcher):
    status, headers, page = request(url, 'GET', '/')
    assert status == 200 and headers['Content-Type'].startswith('text/html')
    assert b'id="results"' in page and b'/knn-service' in page
    assert b'http://' not in page and b'https://' not in page  # no CDN
    status, _, data = request(url, 'GET', '/info')
    assert json.loads(data) == dict(name='fake-photos', count=30, max_k=25,
                                    max_body_bytes=64 * 1024)
    assert json.loads(request(url, 'GET', '/indices-list')[2]) == [
        'fake-photos']
    status, _, data = request(url, 'POST', '/metadata',
                              dict(ids=[3, 0], indice_name='fake-photos'))
    assert status == 200
    assert json.loads(data) == [
        dict(id=3, metadata=dict(image_path=searcher.paths[3])),
        dict(id=0, metadata=dict(image_path=searcher.paths[0]))]


def test_image_route_serves_a_bounded_thumbnail_by_id(tmp_path):
    searcher = FakeSearcher(str(tmp_path), count=3)
    Image.new('RGB', (900, 300), 'red').save(searcher.paths[1])
    with running_server(searcher, thumbnail_size=128) as url:
        status, headers, data = request(url, 'GET', '/image/1')
        assert status == 200 and headers['Content-Type'] == 'image/jpeg'
        assert Image.open(io.BytesIO(data)).size == (128, 43)
        for path in ('/image/3', '/image/-1', '/image/..%2Fetc%2Fpasswd',
                     '/image/' + searcher.paths[0], '/image/1/../../x'):
            status, _, data = request(url, 'GET', path)
            assert status == 404, path
            assert 'error' in json.loads(data)


def test_thumbnails_stand_upright(tmp_path):
    """A phone photo stored sideways with EXIF orientation 6 (rotate 90
    degrees clockwise to view) is served upright."""
    searcher = FakeSearcher(str(tmp_path), count=1)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = str(tmp_path / 'phone.jpg')
    Image.new('RGB', (300, 100), 'blue').save(path, exif=exif)
    searcher.paths[0] = path
    with running_server(searcher) as url:
        status, _, data = request(url, 'GET', '/image/0')
    assert status == 200 and Image.open(io.BytesIO(data)).size == (85, 256)


BAD_REQUESTS = [
    # (method, path, body, status, words of the error)
    ('POST', '/knn-service', {}, 400, "'text' or 'image'"),
    ('POST', '/knn-service', dict(num_images=3), 400, 'Missing field'),
    ('POST', '/knn-service', dict(text='   '), 400, "'text' is empty"),
    ('POST', '/knn-service', dict(text=5), 400, "'text' must be a string"),
    ('POST', '/knn-service', b'{"text": "cat"', 400, 'not valid JSON'),
    ('POST', '/knn-service', b'\xff\xfe', 400, 'not valid JSON'),
    ('POST', '/knn-service', [1, 2], 400, 'JSON object'),
    ('POST', '/knn-service', dict(image='***not base64***'), 400,
     'not valid base64'),
    ('POST', '/knn-service', dict(image=base64.b64encode(
        b'hello, not an image').decode()), 400, 'not an image'),
    ('POST', '/knn-service', dict(image_url='http://example.com/a.jpg'),
     400, 'does not fetch remote URLs'),
    ('POST', '/knn-service', dict(text='cat', modality='text'), 400,
     "'modality' must be 'image'"),
    ('POST', '/knn-service', dict(text='cat', indice_name='laion5B'), 400,
     "Unknown indice_name 'laion5B'"),
    ('POST', '/knn-service', dict(text='cat', num_images=0), 400,
     "'num_images' must be a positive integer"),
    ('POST', '/knn-service', dict(text='cat', num_result_ids='9'), 400,
     "'num_result_ids'"),
    ('POST', '/knn-service', dict(embedding_input=[0.1] * 8), 400,
     'has no query_embedding'),
    ('POST', '/knn-service', dict(text='boom'), 500,
     'RuntimeError: the model fell over'),
    ('POST', '/metadata', dict(indice_name='fake-photos'), 400, "'ids'"),
    ('POST', '/metadata', dict(ids=[30]), 400, 'Unknown id 30'),
    ('GET', '/nowhere', None, 404, "No such page: '/nowhere'"),
    ('GET', '/knn-service', None, 405, 'takes POST, not GET'),
    ('PUT', '/', b'x', 405, 'takes GET, not PUT'),
    ('DELETE', '/image/1', None, 405, 'takes GET'),
]


def check_bad_request(url, method, path, body, status, words):
    got, headers, data = request(url, method, path, body)
    assert got == status, (path, body, data)
    assert words in json.loads(data)['error'], data
    if status == 405:
        assert headers['Allow'] in ('GET', 'POST')


@pytest.mark.parametrize('method,path,body,status,words', BAD_REQUESTS)
def test_bad_requests_get_a_json_error(url, method, path, body, status,
                                       words):
    check_bad_request(url, method, path, body, status, words)


def test_a_searcher_that_raises_is_logged_and_the_server_goes_on(
        url, searcher, caplog):
    status, _, data = knn(url, dict(text='boom'))
    assert status == 500
    assert data == dict(error='/knn-service failed: RuntimeError: the model '
                        'fell over')
    (record, ) = [r for r in caplog.records if r.name.endswith('server')]
    assert record.getMessage() == 'POST /knn-service failed'
    assert 'RuntimeError: the model fell over' in caplog.text
    status, _, hits = knn(url, dict(text='cat', num_images=2))
    assert status == 200
    assert hits == as_hits(searcher.expected(b'cat', 2))


def test_a_post_without_content_length_is_refused(url):
    port = int(url.rsplit(':', 1)[1])
    with socket.create_connection(('127.0.0.1', port), timeout=10) as sock:
        sock.sendall(b'POST /knn-service HTTP/1.1\r\nHost: x\r\n'
                     b'Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n')
        assert sock.recv(4096).startswith(b'HTTP/1.0 411 ')


def test_a_huge_body_is_refused_before_it_is_read(url):
    """A declared gigabyte is answered 413 at once (the server does not
    wait for it), and a body just over the limit gets a readable 413."""
    port = int(url.rsplit(':', 1)[1])
    with socket.create_connection(('127.0.0.1', port), timeout=10) as sock:
        sock.sendall(b'POST /knn-service HTTP/1.1\r\nHost: x\r\n'
                     b'Content-Length: 1000000000\r\n\r\n{"text": "')
        reply = b''
        while b'}' not in reply:
            chunk = sock.recv(4096)
            assert chunk, reply
            reply += chunk
    assert reply.startswith(b'HTTP/1.0 413 ')
    assert b'takes at most 65536' in reply
    status, _, data = knn(url, dict(text='x' * 70_000))
    assert status == 413 and 'at most 65536' in data['error']


def test_non_loopback_host_warns_and_loopback_does_not(searcher, capsys):
    for host, warned in (('127.0.0.1', False), ('localhost', False),
                         ('0.0.0.0', True)):
        server = make_server(searcher, host=host, port=0)
        server.server_close()
        assert ('WARNING: serving on 0.0.0.0' in capsys.readouterr().err) \
            == warned


def test_make_server_refuses_what_is_not_a_searcher():
    with pytest.raises(TypeError, match='has no query_image, image_path'):
        make_server(object.__new__(type('Half', (), dict(
            query_text=None, name='x', count=1))), port=0)


def test_concurrent_queries_and_bad_requests(tmp_path):
    """240 requests from 8 threads: text and image queries (each checked
    against the exact top-k) interleaved with every bad request above; one
    searcher call at a time (the default); afterwards the server still
    answers correctly."""
    searcher = FakeSearcher(str(tmp_path), delay_s=0.005)
    rng = random.Random(0)
    images = {i: b64_file(searcher.paths[i]) for i in range(0, 30, 3)}

    def good_text(n):
        text = f'query {n}'
        status, _, hits = knn(url, dict(text=text, num_images=5))
        assert status == 200
        assert hits == as_hits(searcher.expected(text.encode(), 5))

    def good_image(n):
        data = images[rng.choice(sorted(images))]
        status, _, hits = knn(url, dict(image=data, num_images=7))
        assert status == 200
        assert hits == as_hits(searcher.expected(base64.b64decode(data), 7))

    def huge(n):
        assert knn(url, dict(text='y' * 70_000))[0] == 413

    jobs = [good_text, good_image, huge] + [
        (lambda args: lambda n: check_bad_request(url, *args))(bad)
        for bad in BAD_REQUESTS
    ]
    plan = [(jobs[n % len(jobs)], n) for n in range(240)]
    rng.shuffle(plan)
    with running_server(searcher, max_k=25, max_body_bytes=64 * 1024) as url:
        with ThreadPoolExecutor(8) as pool:
            for future in [pool.submit(job, n) for job, n in plan]:
                future.result(timeout=60)
        good_text(-1)
        good_image(-1)
    assert searcher.calls_in_flight_max == 1


def test_searcher_calls_overlap_when_not_serialized(tmp_path):
    """What the lock of the test above prevents."""
    searcher = FakeSearcher(str(tmp_path), delay_s=0.05)
    with running_server(searcher, serialize=False) as url:
        with ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(
                lambda n: knn(url, dict(text=f'q{n}'))[0], range(8)))
    assert statuses == [200] * 8
    assert searcher.calls_in_flight_max > 1
