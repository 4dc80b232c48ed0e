"""mmclip's model index: named models with their configs and results.

``model-index.yml`` (mmpretrain's / OpenMIM's format) imports
``configs/clip/metafile.yml``, which has one entry per config, named after
the config file. An installed mmclip carries both in ``mmclip/.mim``; an
editable install reads them from the source tree.

``import mmclip`` adds these entries to mmpretrain's ``ModelHub``
(:func:`register_mmpretrain_models`), so ``mmpretrain.list_models``,
``mmpretrain.get_model`` and ``mmpretrain.inference_model`` know mmclip's
models by name.
"""
import copy
import fnmatch
import os.path as osp
import warnings
from functools import lru_cache
from typing import Dict, List, Optional

INDEX_FILE = 'model-index.yml'
CONVERTER = 'tools/model_converters/clip_to_mmclip.py'


def model_index_path() -> str:
    """Path of ``model-index.yml``: the installed package's copy
    (``mmclip/.mim``) first, then the source tree's.

    Returns:
        str: An existing file.
    """
    pkg = osp.dirname(osp.abspath(__file__))
    candidates = [osp.join(pkg, '.mim', INDEX_FILE),
                  osp.join(osp.dirname(pkg), INDEX_FILE)]
    for path in candidates:
        if osp.isfile(path):
            return path
    raise FileNotFoundError(
        f'mmclip\'s {INDEX_FILE} is in none of {candidates}. Reinstall '
        'mmclip (`pip install .` copies it into mmclip/.mim; `pip install -e '
        '.` reads it from the source tree).')


@lru_cache(maxsize=None)
def _parse(path: str) -> Dict[str, object]:
    from modelindex.load_model_index import load
    index = load(path)
    index.build_models_with_collections()
    root = osp.dirname(path)
    models = {}
    for info in index.models:
        # As mmpretrain's ModelHub: config paths relative to the index root.
        if info.config and not osp.isabs(info.config):
            info.config = osp.abspath(osp.join(root, info.config))
        models[info.name.lower()] = info
    return models


def model_index() -> Dict[str, object]:
    """All of mmclip's index entries by lower-case name.

    Returns:
        dict[str, modelindex.models.Model.Model]: Parsed once and shared: do
        not modify; :func:`get_model_info` returns copies.
    """
    return _parse(model_index_path())


def get_model_info(name: str) -> Optional[object]:
    """The index entry called ``name`` (case-insensitive), or None.

    Args:
        name (str): A name from :func:`list_models`.

    Returns:
        modelindex.models.Model.Model | None: A copy; ``config`` is the
        absolute config path.
    """
    info = model_index().get(name.lower())
    return copy.deepcopy(info) if info is not None else None


def find_model_info(config_path: Optional[str]) -> Optional[object]:
    """The index entry whose config is the file ``config_path``, or None.

    Args:
        config_path (str, optional): A config file path.

    Returns:
        modelindex.models.Model.Model | None: A copy of the entry.
    """
    if not config_path:
        return None
    target = osp.realpath(config_path)
    for info in model_index().values():
        if info.config and osp.realpath(info.config) == target:
            return copy.deepcopy(info)
    return None


def list_models(pattern: Optional[str] = None,
                exclude_patterns: Optional[List[str]] = None,
                task: Optional[str] = None) -> List[str]:
    """mmclip's model names, as :func:`mmpretrain.list_models` lists them.

    Args:
        pattern (str, optional): Wildcard pattern the names must start with
            (``'clip_vit-base*in1k'``); any suffix matches. Defaults to None
            (all names).
        exclude_patterns (list[str], optional): Wildcard patterns (also
            matching any suffix) of names to leave out. Defaults to None.
        task (str, optional): Keep models with a result for this task
            (``'Image Classification'``, ``'Image-To-Text Retrieval'``,
            ``'Text-To-Image Retrieval'``); ``'null'`` keeps the models
            without results. Defaults to None (any).

    Returns:
        list[str]: Sorted names.
    """
    index = model_index()
    names = set(index)
    if pattern is not None:
        names = set(fnmatch.filter(names, pattern + '*'))
    for exclude in exclude_patterns or []:
        names -= set(fnmatch.filter(names, exclude + '*'))
    if task is not None:
        names = {n for n in names if task in _tasks(index[n])}
    return sorted(names)


def _tasks(info) -> set:
    if info.results is None:
        return {'null'}
    return {result.task for result in info.results}


def original_weights(info) -> Optional[str]:
    """URL of the original weights an index entry is converted from.

    Args:
        info (modelindex.models.Model.Model): An index entry.

    Returns:
        str | None: None for models that mmclip trains from scratch.
    """
    return (info.data.get('Converted From') or {}).get('Weights')


def no_published_weights(info) -> str:
    """The error message for ``pretrained=True``: where weights come from.

    Args:
        info (modelindex.models.Model.Model): An index entry.

    Returns:
        str: What to download and convert, or that the model is trained
        from scratch.
    """
    url = original_weights(info)
    if url is None:
        return (f'No weights are published for {info.name!r}: mmclip trains '
                f'it from scratch (see the comment at the top of '
                f'{info.config}). Pass pretrained=PATH of your own '
                'checkpoint.')
    return (f'mmclip publishes no converted weights for {info.name!r}. '
            f'Download the original from {url} and convert it with '
            f'`python {CONVERTER} {osp.basename(url)} OUT.pth`, then pass '
            "pretrained='OUT.pth'.")


def register_mmpretrain_models() -> None:
    """Add mmclip's index entries to mmpretrain's ``ModelHub``.

    Uses the hub's public API: ``ModelHub.register_model_index`` with config
    paths relative to the index's folder, as mmpretrain registers its own.
    That method raises on a name the hub already has (its duplicate check
    compares the name as written with the lower-case keys, which works for
    mmclip's lower-case names), so ``ModelHub.has`` is asked first:

    - all of mmclip's names already there (``import mmclip`` ran before, or
      the module was reloaded): nothing to do, so this is idempotent;
    - some there (another package took a name): nothing is registered and
      a warning names them; mmclip's models stay reachable through
      :func:`mmclip.apis.get_model`.

    mmpretrain registers its own models lazily on the first ``get_model`` /
    ``list_models``; mmclip's names do not clash with them.
    """
    from mmpretrain.apis.model import ModelHub
    names = list(model_index())
    taken = [name for name in names if ModelHub.has(name)]
    if len(taken) == len(names):
        return
    if taken:
        warnings.warn(
            f'mmpretrain already has models named {taken}; mmclip\'s model '
            'index is not added to mmpretrain.list_models/get_model. Use '
            'mmclip.apis.get_model for mmclip\'s models.')
        return
    path = model_index_path()
    ModelHub.register_model_index(path, config_prefix=osp.dirname(path))
