"""Searching a collection of images by embedding: the index folder in
clip-retrieval's layout (:mod:`.layout`), the k-NN index over it
(:mod:`.knn`), what an index is built from (:mod:`.sources`) and the HTTP
server with its page (:mod:`.server`). No model code:
:mod:`mmclip.apis.search` embeds images and queries and builds on this."""
from .index_file import build_index_file, recall_at_k, topk_overlap
from .knn import KnnIndex
from .layout import IndexFolder, SearchIndexError, make_manifest

__all__ = [
    'IndexFolder', 'KnnIndex', 'SearchIndexError', 'build_index_file',
    'make_manifest', 'recall_at_k', 'topk_overlap'
]
