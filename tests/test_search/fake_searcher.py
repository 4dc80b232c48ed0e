"""A stand-in for :class:`mmclip.apis.search.ImageSearch` over random
vectors (no model), and a running server around it, for the server's
tests."""
import hashlib
import os.path as osp
import threading
import time
from contextlib import contextmanager

import numpy as np
from PIL import Image

from mmclip.search.server import make_server


class FakeSearcher:
    """``count`` small PNGs in ``folder``, each with a random unit vector;
    a query's vector comes from a hash of the text or the image bytes, and
    hits are the exact top-k by inner product (ties to the lower id).

    ``query_text('boom')`` raises, as a searcher with a bug would.
    ``calls_in_flight_max`` records the most calls that overlapped.
    """

    name = 'fake-photos'

    def __init__(self, folder: str, count: int = 30, dim: int = 8,
                 delay_s: float = 0.0):
        rng = np.random.default_rng(0)
        emb = rng.standard_normal((count, dim)).astype(np.float32)
        self.embeddings = emb / np.linalg.norm(emb, axis=1, keepdims=True)
        self.paths = []
        for i in range(count):
            path = osp.join(folder, f'photo_{i:03d}.png')
            color = tuple(int(c) for c in rng.integers(0, 256, 3))
            Image.new('RGB', (64 + i, 48), color).save(path)
            self.paths.append(path)
        self.count = count
        self.delay_s = delay_s  # per query: lets concurrent calls overlap
        self._lock = threading.Lock()
        self._in_flight = 0
        self.calls_in_flight_max = 0

    def vector(self, data: bytes) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(data).digest()[:8], 'little')
        q = np.random.default_rng(seed).standard_normal(
            self.embeddings.shape[1]).astype(np.float32)
        return q / np.linalg.norm(q)

    def expected(self, data: bytes, k: int) -> list:
        """The hits as ``(id, image_path, similarity)``, best first."""
        scores = self.embeddings @ self.vector(data)
        order = np.lexsort((np.arange(self.count), -scores))[:k]
        return [(int(i), self.paths[i], float(scores[i])) for i in order]

    def _hits(self, data: bytes, k: int) -> list:
        with self._lock:
            self._in_flight += 1
            self.calls_in_flight_max = max(self.calls_in_flight_max,
                                           self._in_flight)
        try:
            time.sleep(self.delay_s)
            return [dict(id=i, image_path=p, similarity=s)
                    for i, p, s in self.expected(data, k)]
        finally:
            with self._lock:
                self._in_flight -= 1

    def query_text(self, text: str, k: int = 10) -> list:
        if text == 'boom':
            raise RuntimeError('the model fell over')
        return self._hits(text.encode(), k)

    def query_image(self, image: bytes, k: int = 10) -> list:
        return self._hits(image, k)

    def image_path(self, image_id: int) -> str:
        return self.paths[image_id]


@contextmanager
def running_server(searcher, **kwargs):
    """A :func:`make_server` on a free loopback port, answering from a
    thread; yields its base URL."""
    server = make_server(searcher, port=0, **kwargs)
    thread = threading.Thread(target=server.serve_forever, daemon=True,
                              kwargs=dict(poll_interval=0.05))
    thread.start()
    try:
        yield 'http://127.0.0.1:%d' % server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
