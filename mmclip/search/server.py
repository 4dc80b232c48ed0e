"""A small HTTP server for an image index: clip-retrieval's ``/knn-service``
request/response shape and one HTML page (:file:`page.html`).

Routes (JSON in and out unless noted):

- ``GET /``: the search page.
- ``POST /knn-service``: ``{"text": str}`` or ``{"image": base64}`` (a data
  URL is accepted too) or ``{"embedding_input": [float, ...]}`` (when the
  searcher has ``query_embedding``), with ``num_images`` (default 10),
  ``num_result_ids`` (default ``num_images``), ``modality`` (``"image"``
  only) and ``indice_name`` (optional; must be this index's name). Answers
  clip-retrieval's list ``[{"image_path", "id", "similarity"}, ...]``, best
  first; as there, hits past ``num_images`` carry only ``id`` and
  ``similarity`` (clip_back also inlines each image as base64 JPEG in
  ``image``; here the page loads ``/image/<id>``). ``image_url`` is
  refused (nothing remote is fetched); ``deduplicate``,
  ``use_safety_model``, ``use_violence_detector``, ``use_mclip``,
  ``aesthetic_score`` and ``aesthetic_weight`` are accepted and ignored
  (the ones set are named in the ``X-Ignored-Fields`` header).
- ``GET /indices-list``: ``[name]``.
- ``POST /metadata``: ``{"ids": [int, ...]}`` -> ``[{"id", "metadata":
  {"image_path"}}, ...]``.
- ``GET /image/<id>``: a JPEG thumbnail of the indexed file ``id`` (by id
  only: no path is ever taken from a request).
- ``GET /info``: ``{"name", "count", "max_k", "max_body_bytes"}`` (mmclip's
  own, for the page).

Errors are ``{"error": message}`` with status 400 (bad field), 404, 405,
411, 413 (body over ``max_body_bytes``, refused from its Content-Length
before it is read) or 500 (the searcher raised; logged, the server goes on).
"""
import io
import ipaddress
import json
import logging
import re
import socket
import sys
import threading
from contextlib import nullcontext
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import BinaryIO, Optional, Union

from PIL import Image, ImageOps

from .knn_request import RequestError, parse_knn_request
from .sources import SourceError, open_image_bytes

logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 16 * 2**20
DEFAULT_MAX_K = 1000
SEARCHER_API = ('query_text', 'query_image', 'image_path', 'name', 'count')
_IMAGE_ROUTE = re.compile(r'/image/(\d+)')


class SearchRequestHandler(BaseHTTPRequestHandler):
    """Answers one connection of a :class:`SearchServer`."""

    server_version = 'mmclip-search'
    timeout = 30  # seconds a silent client may hold a thread
    ROUTES = {'/': 'GET', '/info': 'GET', '/indices-list': 'GET',
              '/knn-service': 'POST', '/metadata': 'POST', '/image/': 'GET'}

    def do_GET(self):
        self._dispatch('GET')

    def do_POST(self):
        self._dispatch('POST')

    def do_PUT(self):
        self._dispatch('PUT')

    def do_DELETE(self):
        self._dispatch('DELETE')

    def do_PATCH(self):
        self._dispatch('PATCH')

    def do_HEAD(self):
        self._dispatch('HEAD')

    def do_OPTIONS(self):
        self._dispatch('OPTIONS')

    def log_message(self, format, *args):
        logger.debug('%s %s', self.address_string(), format % args)

    def _dispatch(self, method: str) -> None:
        path = self.path.split('?', 1)[0]
        route = '/image/' if _IMAGE_ROUTE.fullmatch(path) else path
        self._body_read = False
        try:
            if route not in self.ROUTES:
                raise RequestError(404, f'No such page: {path!r}.')
            if method != self.ROUTES[route]:
                raise RequestError(405, f'{path} takes {self.ROUTES[route]}, '
                                   f'not {method}.')
            name = route.strip('/').replace('-', '_') or 'page'
            getattr(self, '_' + name)(path)
        except RequestError as err:
            self._send_error(err.status, str(err), route)
            if not self._body_read:
                self._discard_body()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as err:  # a bug or a searcher failure: keep serving
            logger.exception('%s %s failed', method, path)
            self._send_error(500, f'{path} failed: {type(err).__name__}: '
                             f'{err}', route)

    # ------------------------------------------------------------ replies
    def _send(self, status: int, body: bytes, content_type: str,
              headers: Optional[dict] = None) -> None:
        self.send_response(status)
        self.send_header('Content-Type', content_type)
        self.send_header('Content-Length', str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, value, status: int = 200, headers=None) -> None:
        self._send(status, json.dumps(value).encode(), 'application/json',
                   headers)

    def _send_error(self, status: int, message: str, route: str) -> None:
        headers = {'Allow': self.ROUTES[route]} if status == 405 else {}
        if status == 413:
            headers['Connection'] = 'close'
        self._send_json({'error': message}, status, headers)

    def _read_json(self):
        """The request's JSON body; refuses one without a length or over
        the server's limit before reading it."""
        length = self.headers.get('Content-Length')
        if length is None:
            raise RequestError(411, 'Send a Content-Length header (chunked '
                               'bodies are not accepted).')
        try:
            length = int(length)
        except ValueError:
            length = -1
        if length < 0:
            raise RequestError(400, 'Content-Length is not a number.')
        limit = self.server.max_body_bytes
        if length > limit:
            raise RequestError(413, f'The body has {length} bytes; this '
                               f'server takes at most {limit}.')
        self._body_read = True
        try:
            return json.loads(self.rfile.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise RequestError(400, f'The body is not valid JSON: {err}.') \
                from None

    def _discard_body(self) -> None:
        """Read and drop (at most ``max_body_bytes`` of) a body the request
        was refused before it was read, then close: a client still sending
        it then reads the error instead of a connection reset."""
        self.close_connection = True
        size = self.server.max_body_bytes
        length = self.headers.get('Content-Length', '')
        if length.isdigit():
            size = min(size, int(length))
        elif 'Transfer-Encoding' not in self.headers:
            return
        self.connection.settimeout(1.0)
        try:
            while size > 0:
                chunk = self.rfile.read1(min(size, 65536))
                if not chunk:
                    break
                size -= len(chunk)
        except OSError:
            pass

    # ------------------------------------------------------------- routes
    def _page(self, path):
        self._send(200, self.server.page, 'text/html; charset=utf-8')

    def _info(self, path):
        srv = self.server
        self._send_json(dict(name=srv.searcher.name, count=srv.searcher.count,
                             max_k=srv.max_k,
                             max_body_bytes=srv.max_body_bytes))

    def _indices_list(self, path):
        self._send_json([self.server.searcher.name])

    def _knn_service(self, path):
        srv = self.server
        request = parse_knn_request(self._read_json(), srv.searcher.name,
                                    srv.max_k)
        method = dict(text='query_text', image='query_image',
                      embedding='query_embedding')[request['kind']]
        if not hasattr(srv.searcher, method):
            raise RequestError(400, f"This index's searcher has no "
                               f'{method}: send text or an image.')
        with srv.searcher_lock:
            try:
                hits = getattr(srv.searcher, method)(request['query'],
                                                     k=request['k'])
            except ValueError as err:  # the searcher's word for a bad query
                raise RequestError(400, str(err)) from None
        results = []
        for rank, hit in enumerate(hits):
            result = dict(id=int(hit['id']),
                          similarity=float(hit['similarity']))
            if rank < request['num_images']:
                result = dict(image_path=str(hit['image_path']), **result)
            results.append(result)
        ignored = ','.join(request['ignored'])
        self._send_json(results, headers={'X-Ignored-Fields': ignored}
                        if ignored else None)

    def _metadata(self, path):
        payload = self._read_json()
        ids = payload.get('ids') if isinstance(payload, dict) else None
        if not isinstance(ids, list) or not all(
                isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise RequestError(400, "Missing field: 'ids' must be a list of "
                               'integers.')
        if len(ids) > self.server.max_k:
            raise RequestError(400, f"'ids' has {len(ids)} entries; at most "
                               f'{self.server.max_k} per request.')
        self._send_json([dict(id=i, metadata=dict(
            image_path=self._path_of(i))) for i in ids])

    def _image(self, path):
        image_id = int(_IMAGE_ROUTE.fullmatch(path).group(1))
        file = self._path_of(image_id, unknown_status=404)
        try:
            jpeg = thumbnail_jpeg(io.BytesIO(open_image_bytes(file)),
                                  self.server.thumbnail_size)
        except (OSError, SourceError) as err:
            raise RequestError(404, f'Image {image_id} ({file}) cannot be '
                               f'read any more: {err}.') from None
        self._send(200, jpeg, 'image/jpeg', {'Cache-Control': 'max-age=3600'})

    def _path_of(self, image_id: int, unknown_status: int = 400) -> str:
        searcher = self.server.searcher
        if not 0 <= image_id < searcher.count:
            raise RequestError(unknown_status, f'Unknown id {image_id}: ids '
                               f'run from 0 to {searcher.count - 1}.')
        with self.server.searcher_lock:
            return searcher.image_path(image_id)


def thumbnail_jpeg(file: Union[str, BinaryIO], size: int) -> bytes:
    """``file`` (a path or a file object) as a JPEG whose longest side is
    at most ``size``, turned upright as its EXIF orientation says (photos
    from phones)."""
    with Image.open(file) as img:
        img.draft('RGB', (size, size))  # JPEGs: decode at a reduced scale
        img = ImageOps.exif_transpose(img)
        img.thumbnail((size, size))
        out = io.BytesIO()
        img.convert('RGB').save(out, 'JPEG', quality=85)
    return out.getvalue()


class SearchServer(ThreadingHTTPServer):
    """A :class:`ThreadingHTTPServer` that holds the searcher and the
    limits (see :func:`make_server`)."""

    daemon_threads = True
    request_queue_size = 64


def page_html() -> bytes:
    """The search page shipped next to this module."""
    return resources.files(__package__).joinpath('page.html').read_bytes()


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` names is this machine's own."""
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return all(ipaddress.ip_address(info[4][0]).is_loopback
               for info in infos)


def make_server(searcher, host: str = '127.0.0.1', port: int = 8000,
                max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                max_k: int = DEFAULT_MAX_K, thumbnail_size: int = 256,
                serialize: bool = True) -> SearchServer:
    """Bind a search server (call ``serve_forever()`` on it, or
    :func:`serve`).

    Args:
        searcher: An object with ``query_text(text, k)``,
            ``query_image(image_bytes, k)`` (each returning hits ``{'id',
            'image_path', 'similarity'}``, best first), ``image_path(id)``,
            ``name`` and ``count``, e.g.
            :class:`mmclip.apis.search.ImageSearch`; an optional
            ``query_embedding(vector, k)`` serves ``embedding_input``.
        host (str): The address to listen on. Defaults to ``'127.0.0.1'``;
            any other than a loopback address prints a warning, as anyone
            on the network can then search and see the images.
        port (int): The TCP port; 0 picks a free one (read
            ``server.server_address``). Defaults to 8000.
        max_body_bytes (int): Larger request bodies are refused with 413.
            Defaults to 16 MiB (a base64 photo of about 12 MB).
        max_k (int): Requests for more results get this many. Defaults to
            1000.
        thumbnail_size (int): The longest side of ``/image/<id>``'s JPEG.
            Defaults to 256.
        serialize (bool): Run one searcher call at a time (requests are
            still read and answered in parallel). Defaults to True: a
            PyTorch model on CPU already uses every core for one query,
            and this makes no thread-safety demand on the searcher.

    Returns:
        SearchServer: The bound server.

    Raises:
        TypeError: ``searcher`` lacks one of the methods above.
    """
    missing = [name for name in SEARCHER_API if not hasattr(searcher, name)]
    if missing:
        raise TypeError(f'{type(searcher).__name__} is not a searcher: it '
                        f'has no {", ".join(missing)}.')
    if not is_loopback(host):
        print(f'WARNING: serving on {host}, not a loopback address: anyone '
              'who can reach this machine can search the index and see its '
              'images.', file=sys.stderr)
    server_cls = SearchServer
    if ':' in host:
        server_cls = type('SearchServer6', (SearchServer, ),
                          dict(address_family=socket.AF_INET6))
    server = server_cls((host, port), SearchRequestHandler)
    server.searcher = searcher
    server.searcher_lock = threading.Lock() if serialize else nullcontext()
    server.max_body_bytes = max_body_bytes
    server.max_k = max_k
    server.thumbnail_size = thumbnail_size
    server.page = page_html()
    return server


def serve(searcher, host: str = '127.0.0.1', port: int = 8000,
          **kwargs) -> None:
    """:func:`make_server` and answer requests until Ctrl-C.

    Args:
        searcher: See :func:`make_server`.
        host (str): See :func:`make_server`. Defaults to ``'127.0.0.1'``.
        port (int): See :func:`make_server`. Defaults to 8000.
        **kwargs: The other arguments of :func:`make_server`.
    """
    server = make_server(searcher, host, port, **kwargs)
    bound_host, bound_port = server.server_address[:2]
    shown = f'[{bound_host}]' if ':' in bound_host else bound_host
    print(f'searching {searcher.name} ({searcher.count} images) on '
          f'http://{shown}:{bound_port}/ (Ctrl-C stops)', flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print('stopped')
    finally:
        server.server_close()
