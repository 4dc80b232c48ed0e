"""Zero-shot classification head: image embeddings vs. class-name prompts."""
import hashlib
import os
import os.path as osp
from typing import List, Optional, Sequence, Union

import torch
from mmengine.dist import is_main_process
from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from mmengine.utils import ProgressBar

from mmclip.registry import MODELS
from ..utils.zero_shot import build_zero_shot_classifier

DEFAULT_CACHE_DIR = osp.join('~', '.cache', 'mmclip', 'zero_shot')


def text_tower_fingerprint(model) -> str:
    """SHA-256 of everything the classifier weights depend on besides the
    prompts: the text tower's state dict (names, dtypes, shapes, bytes) and
    the tokenizer's type and context length."""
    digest = hashlib.sha256()
    tok = model.tokenizer
    digest.update(f'{type(tok).__name__}:'
                  f'{getattr(tok, "context_length", None)}'.encode())
    for name, tensor in sorted(model.text_encoder.state_dict().items()):
        t = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f'{name}:{t.dtype}:{tuple(tensor.shape)}'.encode())
        # Viewing as bytes works for every dtype (numpy lacks bfloat16).
        digest.update(t.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


@MODELS.register_module()
class ZeroShotClsHead(BaseModule):
    """Zero-shot classifier of :class:`CLIPModel` (``mode='predict'``).

    The classifier is the CLIP paper's prompt ensemble: for every class the
    mean of the normalised text embeddings of ``template.format(classname)``
    over all templates (see :func:`build_zero_shot_classifier`). It is built
    lazily on the first :meth:`predict`, with a progress bar, and kept:

    - **in memory**, reused while the text tower's tensors are unchanged. The
      check is cheap (each tensor's storage pointer and in-place version
      counter, which ``load_state_dict``, optimizer steps and any other
      in-place update bump), so a reloaded or fine-tuned text tower gets a
      new classifier. Call :meth:`reset` after replacing weights in any other
      way (e.g. assigning ``param.data``).
    - **on disk** in ``cache_dir`` as ``<sha256>.pt`` (a plain tensor, read
      back with ``weights_only=True``). The key hashes the text tower's
      weights, the tokenizer's type and context length, the class names and
      the templates, so a changed prompt or checkpoint misses the cache.

    The classifier holds no parameters and is not saved in checkpoints.

    Args:
        classnames (str | list[str]): ``'imagenet'``, ``'cifar10'``,
            ``'cifar100'``, ``'digits'``, a list, or a ``.txt`` file with one
            name per line (see :mod:`mmclip.datasets.zero_shot_data`).
        templates (str | list[str]): ``'openai_imagenet'`` (80 prompts),
            ``'openai_imagenet_7'``, ``'cifar'``, ``'digits'``, a list, or a
            ``.txt`` file; each contains ``{}``. Defaults to
            ``'openai_imagenet'``.
        logit_scale (float | str): Multiplier of the cosine similarities
            before the softmax; ``'learned'`` uses the model's
            ``logit_scale.exp()``. Only the scores change, not the ranking.
            Defaults to 100 (OpenAI's trained value).
        cache_dir (str, optional): Disk cache folder; None disables it.
            Defaults to ``~/.cache/mmclip/zero_shot``.
        batch_size (int): Prompts per text-encoder call. Defaults to 256.
        init_cfg (dict, optional): mmengine init config (unused).
    """

    def __init__(self,
                 classnames: Union[str, Sequence[str]],
                 templates: Union[str, Sequence[str]] = 'openai_imagenet',
                 logit_scale: Union[float, str] = 100.,
                 cache_dir: Optional[str] = DEFAULT_CACHE_DIR,
                 batch_size: int = 256,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        from mmclip.datasets.zero_shot_data import (resolve_classnames,
                                                    resolve_templates)
        self.classnames = resolve_classnames(classnames)
        self.templates = resolve_templates(templates)
        if isinstance(logit_scale, str) and logit_scale != 'learned':
            raise ValueError(f"logit_scale must be a number or 'learned', got "
                             f'{logit_scale!r}.')
        self.logit_scale = logit_scale
        self.cache_dir = (osp.expanduser(cache_dir)
                          if cache_dir is not None else None)
        self.batch_size = int(batch_size)
        # Plain attributes, not buffers: the classifier is derived data and
        # must not end up in (or be required by) checkpoints.
        self._weights = None
        self._stamp = None

    @property
    def num_classes(self) -> int:
        return len(self.classnames)

    def reset(self) -> None:
        """Forget the in-memory classifier (the disk cache is kept)."""
        self._weights = None
        self._stamp = None

    @staticmethod
    def _tensor_stamp(model) -> tuple:
        tensors = list(model.text_encoder.parameters()) + list(
            model.text_encoder.buffers())
        return tuple((t.data_ptr(), t._version, t.dtype, t.device)
                     for t in tensors)

    def cache_key(self, model) -> str:
        """Disk-cache key of this head's classifier for ``model``."""
        digest = hashlib.sha256(text_tower_fingerprint(model).encode())
        # \0 cannot occur in config strings: no ambiguity between entries.
        digest.update('\0'.join(self.classnames).encode())
        digest.update(b'\1')
        digest.update('\0'.join(self.templates).encode())
        return digest.hexdigest()

    def cache_path(self, model) -> Optional[str]:
        """The classifier's cache file for ``model`` (None without cache)."""
        if self.cache_dir is None:
            return None
        return osp.join(self.cache_dir, self.cache_key(model) + '.pt')

    def _load_cached(self, path: str) -> Optional[torch.Tensor]:
        try:
            weights = torch.load(path, map_location='cpu', weights_only=True)
        except Exception as err:  # corrupt/partial file: rebuild it
            MMLogger.get_current_instance().warning(
                f'Ignoring unreadable zero-shot cache {path}: {err}')
            return None
        if (not isinstance(weights, torch.Tensor) or weights.ndim != 2
                or weights.shape[1] != self.num_classes):
            return None
        return weights

    def _save_cached(self, path: str, weights: torch.Tensor) -> None:
        try:
            os.makedirs(osp.dirname(path), exist_ok=True)
            # Write then rename: concurrent ranks/jobs never read a partial
            # file.
            tmp = f'{path}.{os.getpid()}.tmp'
            torch.save(weights.detach().cpu().contiguous(), tmp)
            os.replace(tmp, path)
        except OSError as err:  # a read-only cache must not fail evaluation
            MMLogger.get_current_instance().warning(
                f'Could not write zero-shot cache {path}: {err}. Set '
                'cache_dir to a writable folder or None.')

    @torch.no_grad()
    def get_classifier(self, model) -> torch.Tensor:
        """The ``(D, C)`` classifier for ``model``: from memory, the disk
        cache, or built with ``model``'s text tower."""
        stamp = self._tensor_stamp(model)
        if self._weights is not None and stamp == self._stamp:
            return self._weights
        logger = MMLogger.get_current_instance()
        path = self.cache_path(model)
        weights = None
        if path is not None and osp.isfile(path):
            weights = self._load_cached(path)
            if weights is not None:
                logger.info(f'Loaded zero-shot classifier from {path}')
        if weights is None:
            num = self.num_classes * len(self.templates)
            logger.info(f'Building zero-shot classifier: {self.num_classes} '
                        f'classes x {len(self.templates)} templates')
            # One bar, not one per rank.
            bar = ProgressBar(num) if is_main_process() else None
            was_training = model.training
            model.eval()  # no dropout in the prompt embeddings
            try:
                weights = build_zero_shot_classifier(
                    model, self.classnames, self.templates,
                    batch_size=self.batch_size,
                    progress=bar.update if bar is not None else None)
            finally:
                model.train(was_training)
            if bar is not None:
                print()  # ProgressBar leaves the cursor on its line
            if path is not None:
                self._save_cached(path, weights)
        self._weights = weights.float()
        self._stamp = stamp
        return self._weights

    def get_scale(self, model) -> torch.Tensor:
        if self.logit_scale == 'learned':
            return model.logit_scale.detach().float().exp()
        return torch.tensor(float(self.logit_scale))

    @torch.no_grad()
    def predict(self,
                model,
                inputs: torch.Tensor,
                data_samples: Optional[List] = None) -> List:
        """Classify preprocessed images.

        Args:
            model (CLIPModel): Provides the towers and the tokenizer.
            inputs (Tensor): ``(B, 3, H, W)`` preprocessed images.
            data_samples (list[DataSample], optional): Annotations
                (``gt_label``) kept in the outputs. Defaults to None.

        Returns:
            list[DataSample]: With ``pred_score`` (softmax over classes) and
            ``pred_label`` (arg-max); mmpretrain's ``Accuracy`` reads them.
        """
        from mmpretrain.structures import DataSample
        img = model.encode_image(inputs, normalize=True).float()
        weights = self.get_classifier(model).to(img.device)
        if weights.shape[0] != img.shape[1]:
            raise ValueError(
                f'Classifier dim {weights.shape[0]} differs from the image '
                f'embedding dim {img.shape[1]}; clear the stale cache '
                f'({self.cache_dir}) or call reset().')
        logits = self.get_scale(model).to(img.device) * img @ weights
        probs = logits.softmax(dim=-1)
        labels = probs.argmax(dim=-1)
        if data_samples is None:
            data_samples = [DataSample() for _ in range(len(img))]
        for sample, score, label in zip(data_samples, probs, labels):
            sample.set_pred_score(score).set_pred_label(label)
        return data_samples
