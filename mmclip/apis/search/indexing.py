"""Embed a folder (or a CSV list, or webdataset shards) into an index
folder in clip-retrieval's layout: :func:`index_images`, as
``tools/search/index.py`` runs it."""
import os.path as osp
from typing import List, Optional, Union

import numpy as np
import torch
from mmengine.logging import MMLogger

from mmclip.search import (IndexFolder, SearchIndexError, build_index_file,
                           make_manifest)
from mmclip.search.knn import new_faiss_index
from mmclip.search.sources import (iter_shard, list_shards, read_list,
                                   source_kind, walk_folder)
from ..inference import (_eval_mode, _ordered_map, default_num_workers,
                         extract_features)
from ..preprocess import build_eval_transform, collate_images

#: What a manifest must agree on for a re-run to add to an index (and for
#: queries to be embedded by the same model).
IDENTITY_KEYS = ('model', 'checkpoint', 'encoder')


def _model_identity(model, checkpoint: Optional[str], encoder: str) -> dict:
    """The manifest's record of the model: a config path made absolute (the
    index is usable from any folder), a model/config name as given."""
    if not isinstance(model, str):
        cfg = getattr(model, 'cfg', None)
        model = getattr(cfg, 'filename', None) or type(model).__name__
    if osp.isfile(model):
        model = osp.abspath(model)
    return dict(model=model,
                checkpoint=osp.abspath(checkpoint) if checkpoint else None,
                encoder=encoder)


def check_same_model(manifest: dict, identity: dict, index_dir: str) -> None:
    """Refuse to mix embeddings of two models in one index.

    Raises:
        SearchIndexError: Naming what differs and the two ways out.
    """
    differ = [k for k in IDENTITY_KEYS if manifest.get(k) != identity[k]]
    if 'checkpoint' in differ and _moved(manifest.get('checkpoint'),
                                         identity['checkpoint']):
        MMLogger.get_current_instance().warning(
            f"{index_dir} was built with {manifest['checkpoint']}, which is "
            f"gone; taking {identity['checkpoint']} (same file name) as "
            'that checkpoint, moved.')
        differ.remove('checkpoint')
    if differ:
        built = ', '.join(f'{k}={manifest.get(k)!r}' for k in differ)
        asked = ', '.join(f'{k}={identity[k]!r}' for k in differ)
        raise SearchIndexError(
            f'{index_dir} was built with {built}, not {asked}: embeddings '
            'of different models cannot be compared. Use the same --model / '
            '--checkpoint (and --int8 or not) as the index, or write a new '
            'index to another --out folder.')


def _moved(recorded: Optional[str], given: Optional[str]) -> bool:
    """Whether ``given`` is the checkpoint ``recorded`` after a move: the
    recorded file is gone and the given one has its file name."""
    return bool(recorded and given and not osp.exists(recorded)
                and osp.basename(recorded) == osp.basename(given))


def _records(source: str, img_key: str, caption_key: Optional[str],
             problems: List[str]):
    """``(records iterator, total or None, not_images)`` of ``source``."""
    kind = source_kind(source)
    if kind == 'folder':
        images, others = walk_folder(source)
        return (iter([dict(image_path=osp.abspath(p), image=p)
                      for p in images]), len(images), others)
    if kind == 'list':
        records = read_list(source, img_key, caption_key)
        return iter(records), len(records), []

    def shard_records():
        for shard in list_shards(source):
            yield from iter_shard(osp.abspath(shard), problems)

    return shard_records(), None, []


def _image_encoder(model, int8_dir: Optional[str]):
    """``inputs (B, 3, S, S) -> (B, D)`` float32 normalised numpy, by the
    fp32 model or the int8 ONNX image tower in ``int8_dir``."""
    if int8_dir is None:
        return lambda inputs: model.encode_image(
            inputs, normalize=True).float().cpu().numpy()
    from mmclip.deployment.quantize import Int8ImageEncoder
    encoder = Int8ImageEncoder(int8_dir)
    return lambda inputs: encoder.encode(inputs.float().cpu().numpy())


def index_images(source: str,
                 out: str,
                 model: Union[str, torch.nn.Module],
                 checkpoint: Optional[str] = None,
                 batch_size: int = 32,
                 num_workers: Optional[int] = None,
                 part_size: int = 10000,
                 index_type: str = 'exact',
                 int8_dir: Optional[str] = None,
                 int8_recall_images: int = 256,
                 img_key: str = 'filepath',
                 caption_key: Optional[str] = 'title',
                 device: str = 'cpu',
                 progress: bool = True) -> dict:
    """Embed every image of ``source`` not yet in the index ``out`` and
    (re)write its faiss index.

    Images are decoded by ``num_workers`` threads beside the encoder and
    written in parts of ``part_size`` (``img_emb/img_emb_N.npy`` +
    ``metadata/metadata_N.parquet``, each written whole or not at all), so a
    run stopped midway keeps what it finished and a re-run embeds only the
    files the index lacks. Unreadable images are skipped, counted and named
    in the log; nothing is skipped silently.

    Args:
        source (str): A folder of images (walked recursively; hidden files
            left out; files without an image extension counted as not
            images), a ``.csv`` / ``.tsv`` / ``.jsonl`` list of image paths
            (``img_key`` column), or webdataset ``.tar`` shards (one file, a
            folder of them, or a brace pattern).
        out (str): The index folder (created; an existing one is added to).
        model (str | nn.Module): A model name, config name or config path
            (see :func:`get_model`), or a built model.
        checkpoint (str, optional): The weights. Defaults to None (random:
            only for trying the tools).
        batch_size (int): Images per forward pass. Defaults to 32.
        num_workers (int, optional): Decoding threads. Defaults to
            :func:`~mmclip.apis.inference.default_num_workers`.
        part_size (int): Images per written part. Defaults to 10000.
        index_type (str): ``'exact'`` (faiss ``IndexFlatIP``) or a faiss
            ``index_factory`` string such as ``'IVF1024,Flat'`` or
            ``'HNSW32'``, whose recall@10 against exact is reported.
            Defaults to ``'exact'``.
        int8_dir (str, optional): An ONNX export with an int8 image tower
            (``tools/deployment/pytorch2onnx.py --int8``) to embed with
            instead of the fp32 model. Defaults to None.
        int8_recall_images (int): With ``int8_dir``, re-embed this many of
            the indexed images in fp32 to measure the int8 results' recall
            (:func:`int8_recall`); 0 skips it. Defaults to 256.
        img_key (str): Image path column of a list file. Defaults to
            ``'filepath'``.
        caption_key (str, optional): Caption column of a list file, kept in
            the metadata. Defaults to ``'title'``.
        device (str): Where the model runs. Defaults to ``'cpu'``.
        progress (bool): Show a progress bar. Defaults to True.

    Returns:
        dict: ``added``, ``already_indexed``, ``count`` (images in the index
        now), ``skipped`` (list of ``'path: reason'``), ``not_images``
        (paths), ``problems`` (shard-level lines) and ``index`` (type and,
        for approximate ones, recall@10 against exact).
    """
    from tqdm import tqdm

    from ..model import get_model
    logger = MMLogger.get_current_instance()
    folder = IndexFolder(out, create=True)
    identity = _model_identity(model, checkpoint,
                               'int8' if int8_dir else 'fp32')
    manifest = folder.read_manifest()
    if manifest is not None:
        check_same_model(manifest, identity, out)
    problems: List[str] = []
    records, total, not_images = _records(source, img_key, caption_key,
                                          problems)
    known = folder.known_paths()
    already = 0

    def new_only(records):
        nonlocal already
        for record in records:
            if record['image_path'] in known:
                already += 1
            else:
                yield record

    todo = new_only(records)
    if total is not None:
        todo = list(todo)
        total = len(todo)
    net = get_model(model, checkpoint, device) if isinstance(
        model, str) else model
    if index_type != 'exact':  # a mistyped type fails before embedding
        with _eval_mode(net):
            dim = net.encode_text(net.tokenizer(['a'], truncate=True)).shape[1]
        new_faiss_index(index_type, dim)
    encode = _image_encoder(net, int8_dir)
    transform = build_eval_transform(net)

    def load(record):
        try:
            return record, transform(record['image']), None
        except ValueError as err:
            return record, None, str(err)

    bar = tqdm(total=total, desc='Indexing', unit='img',
               disable=not progress)
    skipped, added = [], 0
    rows, meta, batch, batch_meta = [], [], [], []

    def flush_batch():
        if batch:
            rows.append(encode(collate_images(net, batch)))
            meta.extend(batch_meta)
            bar.update(len(batch))
            batch.clear()
            batch_meta.clear()

    def write_part():
        nonlocal added
        if rows:
            columns = {'image_path': [m['image_path'] for m in meta]}
            if any('caption' in m for m in meta):
                columns['caption'] = [m.get('caption', '') for m in meta]
            folder.write_part(np.concatenate(rows).astype(np.float32),
                              columns)
            added += len(meta)
            rows.clear()
            meta.clear()

    with _eval_mode(net):
        outcomes = _ordered_map(load, todo, default_num_workers()
                                if num_workers is None else num_workers,
                                window=2 * batch_size)
        try:
            for (record, packed, err), _ in outcomes:
                if err is not None:
                    skipped.append(err)
                    bar.update(1)
                    continue
                batch.append(packed)
                batch_meta.append({k: v for k, v in record.items()
                                   if k != 'image'})
                if len(batch) == batch_size:
                    flush_batch()
                    if len(meta) >= part_size:
                        write_part()
            flush_batch()
        finally:
            # What was embedded is kept, also on Ctrl-C or an error.
            write_part()
            bar.close()
    if skipped or not_images or problems:
        _log_skipped(logger, skipped, not_images, problems)
    if folder.count() == 0:
        raise SearchIndexError(
            f'No image of {source} could be indexed (see the reasons '
            'above): the index would be empty.')
    index = build_index_file(folder, index_type)
    if int8_dir is not None and int8_recall_images > 0:
        index['int8_recall@10'] = int8_recall(folder, net,
                                              int8_recall_images)
    folder.write_manifest(make_manifest(folder, index=index, **identity))
    logger.info(f'Indexed {added} new images into {out} ({already} were '
                f'already there; {folder.count()} in all; '
                f'{len(skipped)} unreadable skipped).')
    return dict(added=added, already_indexed=already, count=folder.count(),
                skipped=skipped, not_images=not_images, problems=problems,
                index=index)


def _log_skipped(logger, skipped: List[str], not_images: List[str],
                 problems: List[str]) -> None:
    """One warning per kind of skipped input, each naming the files."""
    from mmclip.errors import shorten_list
    if skipped:
        logger.warning(f'Skipped {len(skipped)} unreadable images:\n  '
                       + '\n  '.join(skipped))
    if not_images:
        logger.warning(f'Left out {len(not_images)} files that do not have '
                       'an image extension: '
                       + shorten_list(not_images))
    for line in problems:
        logger.warning(line)


#: Text queries of :func:`int8_recall` for an index without captions:
#: everyday subjects of photo folders.
GENERIC_QUERIES = (
    'a photo of a person', 'a group of people', 'a dog', 'a cat', 'a car',
    'a building', 'a beach', 'a mountain', 'food on a plate', 'a street at '
    'night', 'a child', 'a document', 'a screenshot', 'a flower', 'a bird',
    'a bicycle', 'a river', 'a city skyline', 'an animal', 'a drawing')


def int8_recall(folder: IndexFolder, model,
                sample: int = 256, k: int = 10) -> dict:
    """Recall@k of the int8 embeddings of an index against float32 ones of
    the same images: up to ``sample`` indexed images (drawn with seed 0)
    are embedded again by the float32 model; text queries (the images'
    captions, else :data:`GENERIC_QUERIES`) and image queries (each sampled
    image) search both sets exactly, and the share of the float32 top-k
    that the int8 top-k finds is averaged.

    Returns:
        dict: ``{'text': float, 'image': float, 'images': n}``.
    """
    from mmclip.search import topk_overlap
    from mmclip.search.sources import open_image_bytes
    meta = folder.metadata()
    rows = np.random.default_rng(0).choice(
        folder.count(), min(sample, folder.count()), replace=False)
    rows = np.sort(rows)
    int8 = np.asarray(folder.embeddings())[rows]
    captions = ([meta['caption'][i] for i in rows]
                if 'caption' in meta else [])
    texts = [c for c in captions if c][:64] or list(GENERIC_QUERIES)
    feats = extract_features(
        model, images=[open_image_bytes(meta['image_path'][i]) for i in rows],
        texts=texts, batch_size=32, to_numpy=True, progress=False)
    fp32, text = feats['image_embeds'], feats['text_embeds']
    return dict(images=len(rows),
                text=topk_overlap(text, fp32, int8, k),
                image=topk_overlap(fp32, fp32, int8, k))
