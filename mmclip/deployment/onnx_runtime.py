"""Scoring images with a CLIP exported to ONNX, without PyTorch.

:class:`OnnxCLIP` reads what :func:`mmclip.deployment.export_onnx` (or
``tools/deployment/pytorch2onnx.py``) wrote: ``image_encoder.onnx``,
``text_encoder.onnx`` and the sidecar ``mmclip_onnx.json`` (preprocessing,
context length, temperature, zero-shot classes). It needs numpy, Pillow,
onnxruntime and mmclip's tokenizer (ftfy, regex): this module imports no
torch, mmengine or mmpretrain, and neither do ``import mmclip`` and
``mmclip.apis`` where torch is not installed (see :mod:`mmclip.dependencies`).

Its steps are mmclip's, computed with numpy: Pillow resize of the short side
(bicubic for the OpenAI configs) with mmpretrain ``ResizeEdge``'s size
rounding, mmcv ``CenterCrop``'s offsets, normalisation ``(x - 255 mean) /
(255 std)`` in float32, the BPE tokenizer, the text batch cut after its last
end-of-text token (exact, see ``CLIPTextTransformer``), then the prompt
ensemble and softmax of :func:`mmclip.apis.inference_model`.
"""
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

from mmclip.deprecation import renamed_argument
from mmclip.zero_shot_cache import (DEFAULT_CACHE_DIR, files_fingerprint,
                                    load_cached_classifier,
                                    save_cached_classifier,
                                    zero_shot_cache_key)
from .onnx_inputs import (ImageLike, image_tower_file, l2_normalize,
                          preprocess_batch, read_export_meta, softmax)


def open_session(path: str,
                 providers: Optional[Sequence[str]] = None,
                 num_threads: Optional[int] = None):
    """An ONNX Runtime session of one ``.onnx`` file.

    Args:
        path (str): The file.
        providers (Sequence[str], optional): Execution providers. Defaults
            to None (CPU).
        num_threads (int, optional): ``intra_op_num_threads``; None lets ONNX
            Runtime use every physical core. Defaults to None.

    Returns:
        onnxruntime.InferenceSession: The session.
    """
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise ImportError(
            f'Running an ONNX export needs onnxruntime ({err}): pip install '
            'onnxruntime (see requirements/deploy.txt).') from None
    options = ort.SessionOptions()
    if num_threads is not None:
        options.intra_op_num_threads = int(num_threads)
    return ort.InferenceSession(path, options,
                                providers=list(providers
                                               or ['CPUExecutionProvider']))


class OnnxCLIP:
    """A CLIP exported to ONNX, run with ONNX Runtime; no PyTorch needed.

    Embeddings equal the PyTorch model's ``encode_image`` / ``encode_text``
    (float32; the tests allow 1e-4, measured ~2e-6); :meth:`predict` returns
    what :func:`mmclip.apis.inference_model` returns.

    Args:
        export_dir (str): Folder with ``image_encoder.onnx``,
            ``text_encoder.onnx`` and ``mmclip_onnx.json``.
        providers (Sequence[str], optional): ONNX Runtime execution
            providers, e.g. ``['CUDAExecutionProvider',
            'CPUExecutionProvider']``. Defaults to None (CPU).
        num_threads (int, optional): Threads per operator
            (``intra_op_num_threads``); None lets ONNX Runtime use every
            physical core. Defaults to None.
        cache_dir (str, optional): Disk cache of the exported zero-shot
            head's classifier (``<key>.npy``, keyed as the PyTorch head's
            by :func:`mmclip.zero_shot_cache.zero_shot_cache_key`, with a
            hash of ``text_encoder.onnx`` for the text tower): ImageNet's
            80,000 prompts are run once. None disables it. Defaults to
            ``~/.cache/mmclip/zero_shot``.
        int8 (bool): Run the int8 image tower that
            :func:`mmclip.deployment.quantize_image_tower` wrote (faster on
            CPUs, embeddings close to float32's); the text tower stays
            float32. Defaults to False.

    Examples:
        >>> model = OnnxCLIP('work_dirs/onnx')
        >>> model.predict('cat.jpg', texts=['a cat', 'a dog'])['pred_class']
        'a cat'
    """

    def __init__(self,
                 export_dir: str,
                 providers: Optional[Sequence[str]] = None,
                 num_threads: Optional[int] = None,
                 cache_dir: Optional[str] = DEFAULT_CACHE_DIR,
                 int8: bool = False):
        from mmclip.models.tokenizers import CLIPBPETokenizer
        self.export_dir = export_dir
        self.meta = read_export_meta(export_dir)
        self.image_session = open_session(
            image_tower_file(self.meta, export_dir, int8), providers,
            num_threads)
        self.text_session = open_session(
            osp.join(export_dir, self.meta['text']['file']), providers,
            num_threads)
        self.tokenizer = CLIPBPETokenizer(
            context_length=self.meta['text']['context_length'])
        self.cache_dir = (osp.expanduser(cache_dir)
                          if cache_dir is not None else None)
        self._zero_shot_weights = None

    @property
    def classes(self) -> Optional[List[str]]:
        """The zero-shot head's class names, or None without a head."""
        zero_shot = self.meta.get('zero_shot')
        return list(zero_shot['classes']) if zero_shot else None

    def preprocess(self, images: Sequence[ImageLike]) -> np.ndarray:
        """Images as the image encoder's input.

        Args:
            images (Sequence[str | np.ndarray | PIL.Image.Image]): See
                :func:`load_rgb`.

        Returns:
            np.ndarray: ``(N, 3, S, S)`` float32.
        """
        return preprocess_batch(images, self.meta['image'])

    def tokenize(self, texts: Union[str, Sequence[str]]) -> np.ndarray:
        """Token ids cut after the batch's last pooled (end-of-text) token.

        Args:
            texts (str | Sequence[str]): Texts; over-long ones are truncated
                to the context length, as the PyTorch model's heads do.

        Returns:
            np.ndarray: ``(N, L)`` int64, ``L <= context_length``.
        """
        ids = self.tokenizer(texts, truncate=True, return_tensors='np')
        if not len(ids):
            raise ValueError('No texts given: give at least one text.')
        return ids[:, :int(self.pool_index(ids).max()) + 1]

    def pool_index(self, token_ids: np.ndarray) -> np.ndarray:
        """Where the text tower pools each sequence, as
        ``CLIPTextTransformer.pool_index`` (arg-max id, or the first
        ``eot_token_id``)."""
        eot = self.meta['text']['eot_token_id']
        return (token_ids.argmax(-1) if eot is None else
                (token_ids == eot).argmax(-1))

    def encode_image(self,
                     images: Union[np.ndarray, Sequence[ImageLike]],
                     normalize: bool = False) -> np.ndarray:
        """Image embeddings.

        Args:
            images (np.ndarray | Sequence): Preprocessed ``(N, 3, S, S)``
                float32 pixels, or images for :meth:`preprocess`.
            normalize (bool): L2-normalise. Defaults to False.

        Returns:
            np.ndarray: ``(N, embed_dims)`` float32.
        """
        if not (isinstance(images, np.ndarray) and images.ndim == 4):
            images = self.preprocess(images)
        tower = self.meta['image']
        feats = self.image_session.run(
            [tower['output']],
            {tower['input']: np.ascontiguousarray(images, np.float32)})[0]
        return l2_normalize(feats) if normalize else feats

    def encode_text(self,
                    texts: Union[str, Sequence[str], np.ndarray],
                    normalize: bool = False) -> np.ndarray:
        """Text embeddings.

        Args:
            texts (str | Sequence[str] | np.ndarray): Texts, or ``(N, L)``
                int64 token ids with ``L <= context_length`` (any padding
                length: the result is the same).
            normalize (bool): L2-normalise. Defaults to False.

        Returns:
            np.ndarray: ``(N, embed_dims)`` float32.
        """
        ids = (np.asarray(texts, np.int64) if isinstance(texts, np.ndarray)
               else self.tokenize(texts))
        tower = self.meta['text']
        feats = self.text_session.run([tower['output']],
                                      {tower['input']: ids})[0]
        return l2_normalize(feats) if normalize else feats

    def text_classifier(self,
                        classnames: Sequence[str],
                        templates: Sequence[str] = ('{}', ),
                        batch_size: int = 256,
                        progress: Optional[bool] = None) -> np.ndarray:
        """The CLIP paper's prompt ensemble, as
        :func:`mmclip.models.utils.build_zero_shot_classifier`: per class the
        mean of the normalised embeddings of its prompts, renormalised.

        Args:
            classnames (Sequence[str]): ``C`` class names (or texts).
            templates (Sequence[str]): ``T`` templates with ``{}``. Defaults
                to ``('{}', )``: each text as given.
            batch_size (int): Prompts per text-encoder run. Defaults to 256.
            progress (bool, optional): Show a progress bar (tqdm, when
                installed). Defaults to None: when there is more than one
                run of prompts.

        Returns:
            np.ndarray: ``(embed_dims, C)`` float32.
        """
        if not classnames or not templates:
            raise ValueError('A text classifier needs at least one class '
                             'name and one template.')
        bad = [t for t in templates if '{}' not in t]
        if bad:
            raise ValueError('Templates must contain "{}" for the class '
                             f'name: {bad[:3]}')
        prompts = [t.format(c) for c in classnames for t in templates]
        starts = range(0, len(prompts), batch_size)
        if progress is None:
            progress = len(starts) > 1
        feats = np.concatenate([
            self.encode_text(prompts[i:i + batch_size], normalize=True)
            for i in _progress_bar(
                starts, progress, unit='batch',
                desc=f'{len(classnames)} classes x {len(templates)} '
                'templates')
        ])
        feats = feats.reshape(len(classnames), len(templates), -1)
        return l2_normalize(feats.mean(1)).T.astype(np.float32)

    def text_fingerprint(self) -> str:
        """Identifies the exported text tower's weights: a hash of its
        files (the graph and, for large towers, its ``.data``)."""
        graph = osp.join(self.export_dir, self.meta['text']['file'])
        return 'onnx:' + files_fingerprint([graph, graph + '.data'])

    def zero_shot_cache_path(self) -> Optional[str]:
        """The exported zero-shot classifier's cache file (None without
        ``cache_dir`` or a zero-shot head)."""
        zero_shot = self.meta.get('zero_shot')
        if self.cache_dir is None or not zero_shot:
            return None
        key = zero_shot_cache_key(self.text_fingerprint(),
                                  zero_shot['classes'],
                                  zero_shot['templates'])
        return osp.join(self.cache_dir, key + '.npy')

    def _zero_shot(self):
        """The zero-shot head's ``(classifier, scale)``: from memory, the
        disk cache, or built (and cached)."""
        zero_shot = self.meta.get('zero_shot')
        if not zero_shot:
            raise ValueError(
                f'{self.meta["config"]} has no zero-shot head, so the export '
                "names no classes: pass texts=['a dog', 'a cat', ...].")
        if self._zero_shot_weights is None:
            path = self.zero_shot_cache_path()
            weights = load_cached_classifier(path,
                                             len(zero_shot['classes']))
            if weights is None:
                weights = self.text_classifier(zero_shot['classes'],
                                               zero_shot['templates'])
                save_cached_classifier(path, weights)
            self._zero_shot_weights = weights
        return self._zero_shot_weights, zero_shot['scale']

    def predict(self,
                images: Union[ImageLike, Sequence[ImageLike]],
                texts: Optional[Union[str, Sequence[str]]] = None,
                templates: Optional[Sequence[str]] = None,
                scale: Optional[float] = None,
                batch_size: int = 32,
                logit_scale: Optional[float] = None
                ) -> Union[Dict, List[Dict]]:
        """Classify images, with your own labels or the exported classes.

        As :func:`mmclip.apis.inference_model`: with ``texts`` the softmax of
        ``scale * cos(image, text)`` over the texts (each a class name
        of a prompt ensemble when ``templates`` are given); without, the
        exported zero-shot head's classes, templates and temperature.

        Args:
            images (str | Path | np.ndarray | PIL.Image.Image | list): One
                image or a list (see :func:`load_rgb`).
            texts (str | list[str], optional): Labels or captions. Defaults
                to None (the exported classes).
            templates (list[str], optional): Prompt templates with ``{}``,
                used with ``texts``. Defaults to None (texts as given).
            scale (float, optional): Multiplier of the cosine similarities
                with ``texts``; None uses the model's learned temperature
                (``logit_scale.exp()``). Defaults to None.
            batch_size (int): Images per image-encoder run. Defaults to 32.
            logit_scale (float, optional): Deprecated name of ``scale``
                (warns). Defaults to None.

        Returns:
            dict | list[dict]: Per image ``pred_scores`` (``(C,)`` float32),
            ``pred_label``, ``pred_score``, ``pred_class`` and, for files,
            ``img_path``; one dict for one image.
        """
        scale = renamed_argument(
            'OnnxCLIP.predict', 'logit_scale', logit_scale, 'scale', scale,
            "logit_scale names the model's log temperature only.")
        single = not isinstance(images, (list, tuple))
        images = [images] if single else list(images)
        if not images:
            raise ValueError('No images given.')
        if texts is not None:
            classes = [texts] if isinstance(texts, str) else list(texts)
            weights = self.text_classifier(classes, templates or ('{}', ))
            scale = (self.meta['scale'] if scale is None else float(scale))
        else:
            classes = self.classes
            weights, scale = self._zero_shot()
        results = []
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size]
            img = self.encode_image(batch, normalize=True)
            probs = softmax(np.float32(scale) * img @ weights)
            for image, prob in zip(batch, probs):
                label = int(prob.argmax())
                result = dict(pred_scores=prob.astype(np.float32),
                              pred_label=label,
                              pred_score=float(prob[label]),
                              pred_class=classes[label])
                if isinstance(image, (str, os.PathLike)):
                    result['img_path'] = os.fspath(image)
                results.append(result)
        return results[0] if single else results


def _progress_bar(items, show: bool, **tqdm_kwargs):
    """``items``, through a tqdm bar when ``show`` and tqdm is installed
    (the scoring-only install may lack it)."""
    if not show:
        return items
    try:
        from tqdm import tqdm
    except ImportError:
        return items
    return tqdm(items, **tqdm_kwargs)
