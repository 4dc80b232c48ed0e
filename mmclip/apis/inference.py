"""One-call inference: classify images with any labels, or embed them."""
import contextlib
import os
import os.path as osp
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.logging import MMLogger

# model_classes is public API here too (mmclip.apis.model_classes)
from mmclip.deprecation import renamed_argument
from mmclip.models.utils import (build_zero_shot_classifier, model_classes,
                                 resolve_scale)
from mmclip.models.utils.zero_shot import SCALE_RENAMED, Scale
from .preprocess import ImageLike, build_eval_transform, collate_images

Images = Union[ImageLike, Sequence[ImageLike]]


def list_folder(folder: str) -> List[str]:
    """Every non-hidden file directly in ``folder``, sorted by name.

    Files are not filtered by extension: one that is not a readable image is
    reported when it is skipped instead of vanishing silently.
    """
    names = sorted(n for n in os.listdir(folder) if not n.startswith('.'))
    return [
        osp.join(folder, n) for n in names if osp.isfile(osp.join(folder, n))
    ]


def _expand_inputs(images: Images, batch_size: int,
                   progress: Optional[bool], num_workers: Optional[int]
                   ) -> Tuple[List[Tuple[object, bool]], bool, bool, int]:
    """``[(image, from_folder), ...]``, whether a single image was given, and
    the resolved ``progress`` / ``num_workers`` defaults.

    A folder expands to its files (``from_folder`` True: unreadable ones are
    skipped with a warning); anything else is taken as one image each. The
    progress bar defaults to on for folders and for more than one batch.
    """
    single = not isinstance(images, (list, tuple))
    items = [images] if single else list(images)
    expanded = []
    for item in items:
        if isinstance(item, (str, os.PathLike)) and osp.isdir(item):
            files = list_folder(os.fspath(item))
            if not files:
                raise ValueError(f'Folder {os.fspath(item)!r} has no files.')
            expanded += [(f, True) for f in files]
            single = False
        else:
            expanded.append((item, False))
    if not expanded:
        raise ValueError('No images given.')
    if progress is None:
        progress = (len(expanded) > batch_size
                    or any(from_folder for _, from_folder in expanded))
    if num_workers is None:
        num_workers = default_num_workers()
    return expanded, single, progress, num_workers


def default_num_workers() -> int:
    """Decoding threads for :func:`inference_model`: the usable cores, at
    most 4 (Pillow releases the GIL while decoding and resizing)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def _attempt(fn, item):
    try:
        return fn(item), None
    except ValueError as err:
        return None, err


def _ordered_map(fn, items: list, num_workers: int,
                 window: int) -> Iterator[tuple]:
    """``(fn(item), error)`` for each item in order, computed by
    ``num_workers`` threads at most ``window`` items ahead (bounded memory
    for any folder size); ``num_workers=0`` runs in this thread."""
    if num_workers <= 0:
        for item in items:
            yield _attempt(fn, item)
        return
    with ThreadPoolExecutor(num_workers) as pool:
        pending = deque()
        for item in items:
            pending.append(pool.submit(_attempt, fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _prepared_batches(model, items: List[Tuple[object, bool]],
                      batch_size: int, progress: bool,
                      num_workers: int) -> Iterator[Tuple[torch.Tensor,
                                                          list]]:
    """Yield ``(images, img_paths)`` per batch: ``(B, 3, S, S)`` model
    inputs, decoded and transformed by worker threads.

    Unreadable files that came from a folder are skipped and reported in one
    warning at the end (with their count and reasons); any other unreadable
    input raises its :func:`load_image` error.
    """
    from tqdm import tqdm
    transform = build_eval_transform(model)
    skipped = []
    bar = tqdm(total=len(items), desc='Inference', unit='img',
               disable=not progress)
    packed, paths = [], []
    outcomes = _ordered_map(transform, [item for item, _ in items],
                            num_workers, window=2 * batch_size)
    try:
        for (item, from_folder), (result, err) in zip(items, outcomes):
            if err is not None:
                if not from_folder:
                    raise err
                skipped.append(str(err))
                bar.update(1)
                continue
            packed.append(result)
            paths.append(os.fspath(item) if isinstance(
                item, (str, os.PathLike)) else None)
            if len(packed) == batch_size:
                yield collate_images(model, packed), paths
                bar.update(len(packed))
                packed, paths = [], []
        if packed:
            yield collate_images(model, packed), paths
            bar.update(len(packed))
    finally:
        outcomes.close()
        bar.close()
    if skipped:
        MMLogger.get_current_instance().warning(
            f'Skipped {len(skipped)} of {len(items)} files that are not '
            'readable images:\n  ' + '\n  '.join(skipped))
        if len(skipped) == len(items):
            raise ValueError('None of the files given could be read as an '
                             'image; see the reasons above.')


def _text_list(texts: Union[str, Sequence[str]]) -> List[str]:
    """``texts`` as a non-empty list (one string is one text)."""
    texts = [texts] if isinstance(texts, str) else list(texts)
    if not texts:
        raise ValueError('texts is empty: give at least one text.')
    return texts


@contextlib.contextmanager
def _eval_mode(model):
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _config_name(model) -> str:
    cfg = getattr(model, 'cfg', None) or getattr(model, '_config', None)
    name = getattr(cfg, 'filename', None)
    return osp.splitext(osp.basename(name))[0] if name else type(
        model).__name__


def _text_scorer(model, texts, templates, scale: Scale):
    """Scores of preprocessed images against ``texts``: softmax of scaled
    cosine similarities, one column per text."""
    from mmclip.datasets.zero_shot_data import resolve_templates
    if not hasattr(model, 'text_embedder'):
        raise ValueError(f'{type(model).__name__} has no text tower: texts '
                         'need a CLIP model (e.g. get_model('
                         "'clip_vit-base-p32_zeroshot-cls_in1k')).")
    # '{}' alone embeds each text as given; templates make every text a
    # class name of a prompt ensemble.
    prompts = ['{}'] if templates is None else resolve_templates(templates)
    # The text path of the model's own predict heads.
    weights = build_zero_shot_classifier(model.text_embedder(), texts,
                                         prompts)
    scale = resolve_scale(scale, model.logit_scale).to(weights.device)

    def score(inputs):
        img = model.encode_image(inputs, normalize=True).float()
        return (scale * img @ weights).softmax(dim=-1)

    return score


def _head_scorer(model):
    """Scores from the model's own prediction path (``mode='predict'``)."""
    # mmpretrain classifiers have no predict_head and always predict.
    if hasattr(model, 'predict_head') and not hasattr(
            model.predict_head, 'classnames'):
        raise ValueError(
            f'{_config_name(model)} has no classes to predict: pass texts='
            "['a dog', 'a cat', ...] to classify with your own labels, or "
            'use a zero-shot classification config such as '
            "'clip_vit-base-p32_zeroshot-cls_in1k'.")

    def score(inputs):
        samples = model(inputs, mode='predict')
        return torch.stack([s.pred_score for s in samples]).float()

    return score


def inference_model(model,
                    images: Images,
                    texts: Optional[Union[str, Sequence[str]]] = None,
                    templates: Optional[Union[str, Sequence[str]]] = None,
                    batch_size: int = 32,
                    scale: Optional[Scale] = None,
                    progress: Optional[bool] = None,
                    num_workers: Optional[int] = None,
                    logit_scale: Optional[float] = None
                    ) -> Union[Dict, List[Dict]]:
    """Classify images, with your own labels or the model's classes.

    With ``texts``, every image gets a probability for every text: the
    softmax of ``scale * cos(image, text)`` over the texts, as OpenAI's
    ``model(image, text)`` example computes. With ``templates`` too, each
    text is a class name and its embedding is the CLIP paper's prompt
    ensemble over the templates. Without ``texts``, the model predicts its
    configured classes (a zero-shot head's class names, or an mmpretrain
    classifier's head).

    Args:
        model (nn.Module): From :func:`mmclip.apis.get_model` (or an
            mmpretrain classifier when ``texts`` is None).
        images (str | Path | np.ndarray | PIL.Image.Image | list | folder):
            One image (a path, an RGB uint8 array or a PIL image; see
            :func:`load_image`), a list of them, or a folder: every file in
            it is tried, and unreadable ones are skipped with one warning
            that names each and counts them. An unreadable file named
            explicitly raises a ``ValueError`` naming it.
        texts (str | list[str], optional): Labels or captions to score.
            Defaults to None (the model's classes).
        templates (str | list[str], optional): Prompt templates with ``{}``
            (a list, a file, or a name such as ``'openai_imagenet'``), used
            with ``texts``. Defaults to None (texts used verbatim).
        batch_size (int): Images per forward pass. Defaults to 32.
        scale (float | str, optional): Multiplier of the cosine
            similarities with ``texts``; None or ``'learned'`` uses the
            model's learned ``logit_scale.exp()`` (100 for OpenAI's weights).
            Defaults to None.
        progress (bool, optional): Show a progress bar; None shows it for
            folders and for more than one batch of images. Defaults to None.
        num_workers (int, optional): Threads that decode and resize images
            while the model runs; 0 decodes in the calling thread. Defaults
            to None (:func:`default_num_workers`).
        logit_scale (float, optional): Deprecated name of ``scale``
            (warns). Defaults to None.

    Returns:
        dict | list[dict]: One dict for one image, else one per readable
        image in input order, each with ``pred_scores`` (``(C,)`` float32
        probabilities, summing to 1), ``pred_label`` (int), ``pred_score``
        (float), ``pred_class`` (str: the text, or the class name) and, for
        files, ``img_path``.
    """
    scale = renamed_argument('inference_model', 'logit_scale', logit_scale,
                             'scale', scale, SCALE_RENAMED)
    items, single, progress, num_workers = _expand_inputs(
        images, batch_size, progress, num_workers)
    with _eval_mode(model):
        if texts is not None:
            classes = texts = _text_list(texts)
            score = _text_scorer(model, texts, templates,
                                 'learned' if scale is None else scale)
        else:
            classes = model_classes(model)
            score = _head_scorer(model)
        results = []
        for inputs, paths in _prepared_batches(model, items, batch_size,
                                               progress, num_workers):
            probs = score(inputs).cpu()
            for prob, path in zip(probs, paths):
                label = int(prob.argmax())
                result = dict(
                    pred_scores=prob.numpy().astype(np.float32),
                    pred_label=label,
                    pred_score=float(prob[label]),
                    pred_class=(classes[label]
                                if classes is not None else str(label)))
                if path is not None:
                    result['img_path'] = path
                results.append(result)
    return results[0] if single else results


def extract_features(model,
                     images: Optional[Images] = None,
                     texts: Optional[Union[str, Sequence[str]]] = None,
                     batch_size: int = 32,
                     normalize: bool = True,
                     to_numpy: bool = False,
                     progress: Optional[bool] = None,
                     num_workers: Optional[int] = None) -> dict:
    """Image and/or text embeddings in CLIP's shared space.

    Args:
        model (CLIPModel): From :func:`mmclip.apis.get_model`.
        images (optional): As in :func:`inference_model` (folders skip
            unreadable files). Defaults to None.
        texts (str | list[str], optional): Texts to embed (truncated to the
            tokenizer's context length). Defaults to None.
        batch_size (int): Images per forward pass; texts go 8x as many per
            pass. Defaults to 32.
        normalize (bool): L2-normalise the embeddings (cosine similarity is
            then a dot product). Defaults to True.
        to_numpy (bool): Return numpy arrays instead of tensors. Defaults to
            False.
        progress (bool, optional): As in :func:`inference_model`.
        num_workers (int, optional): As in :func:`inference_model`.

    Returns:
        dict: ``image_embeds`` ``(N, D)`` float32 and ``img_paths`` (list of
        N paths, None for arrays/PIL images) when ``images`` is given;
        ``text_embeds`` ``(T, D)`` float32 and ``texts`` when ``texts`` is.
    """
    if images is None and texts is None:
        raise ValueError('Give images, texts or both to extract features.')
    out = {}
    with _eval_mode(model):
        if images is not None:
            items, _, progress, num_workers = _expand_inputs(
                images, batch_size, progress, num_workers)
            embeds, img_paths = [], []
            for inputs, paths in _prepared_batches(model, items, batch_size,
                                                   progress, num_workers):
                embeds.append(model.encode_image(
                    inputs, normalize=normalize).float().cpu())
                img_paths += paths
            out['image_embeds'] = torch.cat(embeds)
            out['img_paths'] = img_paths
        if texts is not None:
            texts = _text_list(texts)
            step = 8 * batch_size
            out['text_embeds'] = torch.cat([
                model.encode_text(
                    model.tokenizer(texts[i:i + step], truncate=True),
                    normalize=normalize).float().cpu()
                for i in range(0, len(texts), step)
            ])
            out['texts'] = texts
    if to_numpy:
        out = {
            k: v.numpy() if isinstance(v, torch.Tensor) else v
            for k, v in out.items()
        }
    return out
