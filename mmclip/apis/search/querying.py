"""Query an index built by :func:`~.indexing.index_images` by text or by
image, in Python (:class:`ImageSearch`, :func:`search_images`), as
``tools/search/query.py`` and ``tools/search/serve.py`` do."""
import os
import os.path as osp
from typing import List, Optional, Union

import numpy as np
import torch
from mmengine.logging import MMLogger

from mmclip.search import IndexFolder, KnnIndex, SearchIndexError
from mmclip.search.sources import open_image_bytes
from ..inference import _eval_mode
from ..preprocess import ImageLike, build_eval_transform, collate_images
from .indexing import _model_identity, check_same_model


class ImageSearch:
    """An index folder (:func:`index_images`) with the model that built it,
    ready for text and image queries.

    Args:
        index_dir (str): The index folder.
        model (str | nn.Module, optional): The model to embed queries with.
            Defaults to None: the one the index's manifest names; a
            different one is refused (its embeddings would not compare).
        checkpoint (str, optional): Its weights. Defaults to None: the
            manifest's.
        device (str): Where the model runs. Defaults to ``'cpu'``.
        nprobe (int, optional): Lists an IVF index visits per query (more:
            better recall, slower). Defaults to None (the index's own).

    Attributes:
        name (str): The index folder's name.
        count (int): Images in the index.
    """

    def __init__(self,
                 index_dir: str,
                 model: Union[str, torch.nn.Module, None] = None,
                 checkpoint: Optional[str] = None,
                 device: str = 'cpu',
                 nprobe: Optional[int] = None):
        from ..model import get_model
        self.folder = IndexFolder(index_dir)
        manifest = self.folder.read_manifest()
        if manifest is None:  # e.g. clip-retrieval inference's output
            if model is None:
                raise SearchIndexError(
                    f'{index_dir} has no mmclip_search.json naming the model '
                    'that embedded its images (clip-retrieval writes none): '
                    'pass that model with --model / --checkpoint, or build '
                    'the index with tools/search/index.py.')
            MMLogger.get_current_instance().warning(
                f'{index_dir} has no mmclip_search.json: queries are '
                f'embedded by {model}, which must be the model that embedded '
                'the images (only the width can be checked).')
            manifest = _model_identity(model, checkpoint, 'fp32')
        self.manifest = manifest
        if model is None:
            model = manifest['model']
            checkpoint = checkpoint or manifest.get('checkpoint')
        if isinstance(model, str):
            check_same_model(
                manifest,
                _model_identity(model, checkpoint, manifest['encoder']),
                index_dir)
            if not checkpoint:
                MMLogger.get_current_instance().warning(
                    f'{index_dir} was built without a checkpoint: the model '
                    'has new random weights, unrelated to those that '
                    'embedded the images, so the results are meaningless. '
                    'Index with --checkpoint.')
            model = get_model(model, checkpoint, device)
        self.model = model.eval()
        self.name = osp.basename(osp.normpath(index_dir))
        self.transform = build_eval_transform(model)
        self.paths = self.folder.metadata(['image_path'])['image_path']
        self.count = len(self.paths)
        self.index = self._load_index(nprobe)
        dim = self._embed_text(['a photo']).shape[1]
        if dim != self.index.dim:
            raise SearchIndexError(
                f'{index_dir} holds {self.index.dim}-d embeddings but the '
                f'model embeds in {dim} dimensions: query it with the model '
                f'it was built with ({manifest["model"]}).')

    def _load_index(self, nprobe: Optional[int]) -> KnnIndex:
        """``image.index``; when it is missing or does not cover every part
        (an indexing run was stopped before writing it), an exact search
        over the embeddings instead, with a warning."""
        embeddings = self.folder.embeddings()
        index_type = (self.manifest.get('index') or {}).get('type')
        try:
            index = KnnIndex.load(self.folder.index_path, embeddings,
                                  index_type=index_type)
        except SearchIndexError as err:
            MMLogger.get_current_instance().warning(
                f'{err}. Searching all {len(embeddings)} embeddings exactly '
                'meanwhile.')
            index = KnnIndex.build(embeddings, 'exact')
        if nprobe is not None:
            index.set_search_params(nprobe=nprobe)
        return index

    def _embed_text(self, texts: List[str]) -> np.ndarray:
        with _eval_mode(self.model):
            tokens = self.model.tokenizer(texts, truncate=True)
            return self.model.encode_text(
                tokens, normalize=True).float().cpu().numpy()

    def embed_image(self, image: Union[ImageLike, bytes]) -> np.ndarray:
        """``(1, D)`` normalised embedding of one image (path, bytes, array
        or PIL image), by the fp32 model."""
        packed = self.transform(image)
        with _eval_mode(self.model):
            return self.model.encode_image(
                collate_images(self.model, [packed]),
                normalize=True).float().cpu().numpy()

    def _hits(self, query: np.ndarray, k: int) -> List[dict]:
        scores, ids = self.index.search(query.astype(np.float32), k)
        return [dict(id=int(i), image_path=self.paths[i],
                     similarity=float(s))
                for s, i in zip(scores[0], ids[0]) if i >= 0]

    def query_text(self, text: str, k: int = 10) -> List[dict]:
        """The ``k`` images closest to ``text``.

        Returns:
            list[dict]: Best first: ``id`` (row in the index),
            ``image_path`` and ``similarity`` (cosine).

        Raises:
            ValueError: For an empty text.
        """
        if not isinstance(text, str) or not text.strip():
            raise ValueError('The query text is empty: give words to '
                             'search for, e.g. "a red bicycle".')
        return self._hits(self._embed_text([text]), k)

    def query_image(self, image: Union[ImageLike, bytes],
                    k: int = 10) -> List[dict]:
        """The ``k`` images closest to ``image`` (a path, its bytes, an RGB
        array or a PIL image); as :meth:`query_text`."""
        return self._hits(self.embed_image(image), k)

    def query_embedding(self, embedding, k: int = 10) -> List[dict]:
        """The ``k`` images closest to an embedding of the model's width
        (clip-retrieval's ``embedding_input``), L2-normalised here.

        Raises:
            SearchIndexError: For another width than the index's.
        """
        vector = np.asarray(embedding, np.float32).reshape(1, -1)
        norm = np.linalg.norm(vector)
        if not norm:
            raise ValueError('The query embedding is all zeros.')
        return self._hits(vector / norm, k)

    def query(self, text: Optional[str] = None,
              image: Union[ImageLike, bytes, None] = None,
              k: int = 10) -> List[dict]:
        """:meth:`query_text` or :meth:`query_image`: give one of them."""
        if (text is None) == (image is None):
            raise ValueError('Give a text or an image to search with '
                             '(exactly one of them).')
        return self.query_text(text, k) if text is not None else \
            self.query_image(image, k)

    def image_path(self, id: int) -> str:
        """The path of the image in row ``id`` (shard members:
        ``'shard.tar::member'``)."""
        if not 0 <= int(id) < self.count:
            raise KeyError(
                f'No image {id} in {self.name} (ids 0-{self.count - 1}).')
        return self.paths[int(id)]

    def image_bytes(self, id: int) -> bytes:
        """The encoded file of the image in row ``id``."""
        return open_image_bytes(self.image_path(id))

    def open_image(self, hit: dict):
        """A hit's image as a PIL image (for contact sheets)."""
        import io

        from PIL import Image
        return Image.open(io.BytesIO(self.image_bytes(hit['id'])))


def search_images(index_dir: str,
                  text: Optional[str] = None,
                  image: Union[ImageLike, bytes, None] = None,
                  k: int = 10,
                  sheet: Optional[str] = None,
                  **kwargs) -> List[dict]:
    """Query an index in one call: :class:`ImageSearch` then
    :meth:`~ImageSearch.query`, and the hits drawn as a contact sheet.

    Args:
        index_dir (str): The index folder.
        text (str, optional): Search by this text.
        image (optional): Or by this image (path, bytes, array, PIL).
        k (int): Hits returned. Defaults to 10.
        sheet (str, optional): Write a contact-sheet PNG of the hits here.
            Defaults to None.
        **kwargs: Passed to :class:`ImageSearch` (``model``, ``checkpoint``,
            ``device``, ``nprobe``).

    Returns:
        list[dict]: As :meth:`ImageSearch.query_text`.
    """
    search = ImageSearch(index_dir, **kwargs)
    hits = search.query(text, image, k)
    if sheet:
        from mmclip.visualization.contact_sheet import save_contact_sheet
        title = (f'"{text}"' if text is not None else
                 f'like {image}' if isinstance(image, (str, os.PathLike))
                 else 'like the query image')
        save_contact_sheet(hits, search.open_image, sheet,
                           title=f'{title}: top {len(hits)} of {search.count}')
    return hits
