"""Search your own images: embed a folder (or a CSV, or webdataset shards)
into an index folder in clip-retrieval's layout, then query it by text or by
image.

    report = index_images('photos/', 'work_dirs/photos_index',
                          model='clip_vit-base-p32_zeroshot-cls_in1k',
                          checkpoint='clip_vit-base-p32_openai.pth')
    search = ImageSearch('work_dirs/photos_index')
    hits = search.query('a red bicycle', k=10)
"""
from .indexing import check_same_model, index_images
from .querying import ImageSearch, search_images

__all__ = ['check_same_model', 'index_images', 'ImageSearch', 'search_images']
