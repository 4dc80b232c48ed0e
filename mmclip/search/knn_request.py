"""clip-retrieval's ``/knn-service`` request, checked: which query to run
and how many results, or a :class:`RequestError` naming the field.

The fields are those of ``clip_retrieval/clip_back.py`` (``KnnService.post``)
and ``clip_retrieval/clip_client.py`` 2.45.0; see :mod:`.server` for which
are served, refused and ignored.
"""
import base64
import binascii
import io
import math
import re

from PIL import Image

DEFAULT_NUM_IMAGES = 10
#: clip-retrieval request fields this server takes and does nothing with.
IGNORED_FIELDS = ('deduplicate', 'use_safety_model', 'use_violence_detector',
                  'use_mclip', 'aesthetic_score', 'aesthetic_weight')
_DATA_URL = re.compile(r'data:[\w/+.-]*;base64,')


class RequestError(Exception):
    """A request the server refuses: HTTP ``status`` and a message for the
    client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _int_field(payload: dict, name: str, default: int) -> int:
    value = payload.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RequestError(400, f'{name!r} must be a positive integer, got '
                           f'{value!r}.')
    return value


def decode_image(data) -> bytes:
    """The bytes of a base64 image (a ``data:...;base64,`` URL too),
    checked to be an image PIL can read.

    Args:
        data: The request's ``image`` field; whitespace in it (the line
            breaks of ``base64.encodebytes``) is dropped.

    Returns:
        bytes: The image file's bytes.

    Raises:
        RequestError: 400 when it is not a string, not base64 or not an
            image.
    """
    if not isinstance(data, str):
        raise RequestError(400, "'image' must be a base64 string.")
    text = _DATA_URL.sub('', ''.join(data.split()), count=1)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError(400, "'image' is not valid base64.") from None
    try:
        with Image.open(io.BytesIO(raw)) as img:
            img.verify()
    except Exception as err:  # PIL raises many types for bad files
        raise RequestError(400, "'image' is not an image PIL can read "
                           f'({type(err).__name__}).') from None
    return raw


def parse_knn_request(payload, name: str, max_k: int) -> dict:
    """Check a ``/knn-service`` body and say what to search.

    Args:
        payload: The decoded JSON body.
        name (str): This index's name (``indice_name`` must match it).
        max_k (int): The most results a request may ask for; larger
            ``num_result_ids`` / ``num_images`` are clipped to it.

    Returns:
        dict: ``kind`` (``'text'``, ``'image'`` or ``'embedding'``),
        ``query`` (the text, image bytes or vector), ``k`` (hits to find),
        ``num_images`` (hits that carry their path) and ``ignored`` (the
        ignored fields the request set).

    Raises:
        RequestError: 400 naming the field that is missing or wrong.
    """
    if not isinstance(payload, dict):
        raise RequestError(400, 'The body must be a JSON object.')
    indice = payload.get('indice_name')
    if indice not in (None, '', name):
        raise RequestError(400, f'Unknown indice_name {indice!r}: this '
                           f'server serves {name!r} (see /indices-list).')
    if payload.get('modality', 'image') not in (None, 'image'):
        raise RequestError(400, "'modality' must be 'image': the index "
                           'holds image embeddings only.')
    num_images = _int_field(payload, 'num_images', DEFAULT_NUM_IMAGES)
    k = min(_int_field(payload, 'num_result_ids', num_images), max_k)
    request = dict(k=k, num_images=min(num_images, k), ignored=[
        f for f in IGNORED_FIELDS if payload.get(f) not in (None, '', False)
    ])
    # clip-retrieval's order: text, then image, then image_url, then the
    # embedding; its client sends the unused ones as null.
    text = payload.get('text')
    if text is not None:
        if not isinstance(text, str):
            raise RequestError(400, "'text' must be a string.")
        if text.strip():
            return dict(request, kind='text', query=text)
    if payload.get('image') is not None:
        return dict(request, kind='image', query=decode_image(
            payload['image']))
    if payload.get('image_url') is not None:
        raise RequestError(400, "'image_url' is not supported: this server "
                           'does not fetch remote URLs. Send the image '
                           "itself, base64-encoded, as 'image'.")
    vector = payload.get('embedding_input')
    if vector is not None:
        if not (isinstance(vector, list) and vector and all(
                isinstance(v, (int, float)) and not isinstance(v, bool)
                and math.isfinite(v) for v in vector)):
            raise RequestError(400, "'embedding_input' must be a non-empty "
                               'list of finite numbers.')
        return dict(request, kind='embedding', query=vector)
    if text is not None:
        raise RequestError(400, "'text' is empty: type what to search for.")
    raise RequestError(400, "Missing field: the request needs 'text' or "
                       "'image' (base64) or 'embedding_input'.")
