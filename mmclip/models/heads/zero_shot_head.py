"""Zero-shot classification head: image embeddings vs. class-name prompts."""
import math
import os
import os.path as osp
from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.dist import all_gather, broadcast, get_dist_info
from mmengine.logging import MMLogger
from mmengine.model import BaseModule
from tqdm import tqdm

from mmclip.deprecation import renamed_argument
from mmclip.errors import MissingFileError
from mmclip.registry import MODELS
from mmclip.zero_shot_cache import DEFAULT_CACHE_DIR, zero_shot_cache_key
from ..utils.zero_shot import (SCALE_RENAMED, Scale,
                               build_zero_shot_classifier, check_scale,
                               resolve_scale)


@MODELS.register_module()
class ZeroShotClsHead(BaseModule):
    """Zero-shot classifier of :class:`CLIPModel` (``mode='predict'``).

    The classifier is the CLIP paper's prompt ensemble: for every class the
    mean of the normalised text embeddings of ``template.format(classname)``
    over all templates (see :func:`build_zero_shot_classifier`). It is built
    lazily on the first :meth:`predict`, with a progress bar, and kept:

    - **in memory**, reused while the text embedder's ``fingerprint()`` is
      unchanged (:meth:`CLIPModel.text_fingerprint` changes whenever the text
      tower's tensors do: ``load_state_dict``, optimizer steps, any in-place
      update). Call :meth:`reset` to rebuild anyway.
    - **on disk** in ``cache_dir`` as ``<sha256>.pt`` (a plain tensor, read
      back with ``weights_only=True``). The key hashes the fingerprint (the
      text tower's weights, the tokenizer's type and context length), the
      class names and the templates, so a changed prompt or checkpoint
      misses the cache.

    **Distributed.** With several processes (``mmengine.dist``) the classes
    are split into equal contiguous shares, each rank embeds the prompts of
    its share and the shares are all-gathered, so building takes
    ``1 / world_size`` of the time. Rank 0 alone reads and writes the disk
    cache and broadcasts a hit, so the ranks agree even when their cache
    folders differ (one per node); every rank ends with the same weights.
    All ranks must call :meth:`predict` together, as mmengine's test loop
    does.

    The classifier holds no parameters and is not saved in checkpoints.

    Args:
        classnames (str | list[str]): ``'imagenet'``, ``'cifar10'``,
            ``'cifar100'``, ``'digits'``, a list, or a ``.txt`` file with one
            name per line (see :mod:`mmclip.datasets.zero_shot_data`).
        templates (str | list[str]): ``'openai_imagenet'`` (80 prompts),
            ``'openai_imagenet_7'``, ``'cifar'``, ``'digits'``, a list, or a
            ``.txt`` file; each contains ``{}``. Defaults to
            ``'openai_imagenet'``.
        scale (float | str): Multiplier of the cosine similarities before
            the softmax; ``'learned'`` uses the model's ``logit_scale.exp()``
            (:func:`~mmclip.models.utils.resolve_scale`). Only the scores
            change, not the ranking. Defaults to 100 (OpenAI's trained
            value).
        cache_dir (str, optional): Disk cache folder; None disables it.
            Defaults to ``~/.cache/mmclip/zero_shot``.
        batch_size (int): Prompts per text-encoder call. Defaults to 256.
        init_cfg (dict, optional): mmengine init config (unused).
        logit_scale (float | str, optional): Deprecated name of ``scale``
            (warns). Defaults to None.
    """

    def __init__(self,
                 classnames: Union[str, Sequence[str]],
                 templates: Union[str, Sequence[str]] = 'openai_imagenet',
                 scale: Scale = 100.,
                 cache_dir: Optional[str] = DEFAULT_CACHE_DIR,
                 batch_size: int = 256,
                 init_cfg: Optional[dict] = None,
                 logit_scale: Optional[Scale] = None):
        super().__init__(init_cfg=init_cfg)
        # Checked now, but a class-name or template file that is not there
        # yet is read on first use: a config naming the user's own files
        # builds (get_model, parameter counts) before they exist, and runs
        # refuse a missing one before any work
        # (mmclip.apis.preflight.check_model_files).
        self._prompt_specs = dict(classnames=classnames, templates=templates)
        self._prompts = {}
        for what in self._prompt_specs:
            try:
                self._prompt_set(what)
            except MissingFileError:
                pass
        self.scale = check_scale(
            renamed_argument(type(self).__name__, 'logit_scale', logit_scale,
                             'scale', scale, SCALE_RENAMED))
        self.cache_dir = (osp.expanduser(cache_dir)
                          if cache_dir is not None else None)
        self.batch_size = int(batch_size)
        # Plain attributes, not buffers: the classifier is derived data and
        # must not end up in (or be required by) checkpoints.
        self._weights = None
        self._fingerprint = None

    def _prompt_set(self, what: str) -> Tuple[str, ...]:
        """The resolved ``'classnames'`` or ``'templates'`` (see
        :mod:`mmclip.datasets.zero_shot_data`), read once."""
        from mmclip.datasets.zero_shot_data import (resolve_classnames,
                                                    resolve_templates)
        if what not in self._prompts:
            resolve = dict(classnames=resolve_classnames,
                           templates=resolve_templates)[what]
            self._prompts[what] = resolve(self._prompt_specs[what])
        return self._prompts[what]

    @property
    def classnames(self) -> Tuple[str, ...]:
        """tuple[str]: The class names."""
        return self._prompt_set('classnames')

    @property
    def templates(self) -> Tuple[str, ...]:
        """tuple[str]: The prompt templates, each with ``{}``."""
        return self._prompt_set('templates')

    @property
    def num_classes(self) -> int:
        return len(self.classnames)

    def reset(self) -> None:
        """Forget the in-memory classifier (the disk cache is kept)."""
        self._weights = None
        self._fingerprint = None

    def cache_key(self, text_fingerprint: str) -> str:
        """Disk-cache key of this head's classifier.

        Args:
            text_fingerprint (str): The text embedder's ``fingerprint()``.

        Returns:
            str: 64 hex digits.
        """
        return zero_shot_cache_key(text_fingerprint, self.classnames,
                                   self.templates)

    def cache_path(self, text_fingerprint: str) -> Optional[str]:
        """The classifier's cache file (None without ``cache_dir``)."""
        if self.cache_dir is None:
            return None
        return osp.join(self.cache_dir,
                        self.cache_key(text_fingerprint) + '.pt')

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
        MMLogger.get_current_instance().info(
            f'Loaded zero-shot classifier from {path}')
        return weights.float()

    def _save_cached(self, path: str, weights: torch.Tensor) -> None:
        try:
            os.makedirs(osp.dirname(path), exist_ok=True)
            # Write then rename: concurrent jobs never read a partial file.
            tmp = f'{path}.{os.getpid()}.tmp'
            torch.save(weights.detach().cpu().contiguous(), tmp)
            os.replace(tmp, path)
        except OSError as err:  # a read-only cache must not fail evaluation
            MMLogger.get_current_instance().warning(
                f'Could not write zero-shot cache {path}: {err}. Set '
                'cache_dir to a writable folder or None.')

    def _load_on_rank0(self, path: str) -> Optional[torch.Tensor]:
        """Rank 0 reads the cache; a hit is broadcast to the other ranks."""
        rank, world_size = get_dist_info()
        weights = self._load_cached(path) if (
            rank == 0 and osp.isfile(path)) else None
        if world_size == 1:
            return weights
        shape = torch.tensor(weights.shape if weights is not None else (0, 0))
        broadcast(shape)
        if not shape.all():  # a miss: every rank builds its share
            return None
        if rank != 0:
            weights = torch.empty(shape.tolist())
        broadcast(weights)
        return weights

    def _build(self, encode_text: Callable) -> torch.Tensor:
        """Embed this rank's share of the classes; gather all shares."""
        rank, world_size = get_dist_info()
        num = self.num_classes
        share = math.ceil(num / world_size)
        # Equal shares (the last ones repeat the last class): the gather
        # needs one shape, and every rank makes the same number of text
        # tower calls, as sharded (FSDP) towers need.
        names = [
            self.classnames[min(i, num - 1)]
            for i in range(rank * share, (rank + 1) * share)
        ]
        MMLogger.get_current_instance().info(
            f'Building zero-shot classifier: {num} classes x '
            f'{len(self.templates)} templates' +
            (f', {share} classes per rank' if world_size > 1 else ''))
        # A bar on a terminal only (tqdm's disable=None): logs and pipes get
        # the line above.
        with tqdm(total=share * len(self.templates), unit='prompt',
                  desc='Zero-shot classifier', leave=False,
                  disable=None if rank == 0 else True) as bar:
            part = build_zero_shot_classifier(
                encode_text, names, self.templates,
                batch_size=self.batch_size, progress=bar.update)
        return torch.cat(all_gather(part), dim=1)[:, :num]

    @torch.no_grad()
    def get_classifier(self, encode_text: Callable) -> torch.Tensor:
        """The ``(D, C)`` float32 classifier: from memory, the disk cache, or
        built with ``encode_text``.

        Args:
            encode_text (callable): Embeds a list of strings into ``(N, D)``;
                a :class:`TextEmbedder` (whose ``fingerprint()`` enables
                both caches) or any function (always rebuilt).

        Returns:
            Tensor: ``(D, C)``, on the device ``encode_text`` returns.
        """
        fingerprint_fn = getattr(encode_text, 'fingerprint', None)
        fingerprint = fingerprint_fn() if fingerprint_fn else None
        if self._weights is not None and fingerprint is not None \
                and fingerprint == self._fingerprint:
            return self._weights
        path = self.cache_path(fingerprint) if fingerprint else None
        weights = self._load_on_rank0(path) if path else None
        if weights is None:
            weights = self._build(encode_text)
            if path is not None and get_dist_info()[0] == 0:
                self._save_cached(path, weights)
        self._weights, self._fingerprint = weights.float(), fingerprint
        return self._weights

    @torch.no_grad()
    def predict(self,
                img_feats: torch.Tensor,
                encode_text: Callable,
                data_samples: Optional[List] = None,
                logit_scale: Optional[torch.Tensor] = None) -> List:
        """Classify image embeddings.

        Args:
            img_feats (Tensor): ``(B, D)`` image embeddings (normalised here).
            encode_text (callable): Embeds the prompts, see
                :meth:`get_classifier`.
            data_samples (list[DataSample], optional): Annotations
                (``gt_label``) kept in the outputs. Defaults to None.
            logit_scale (Tensor, optional): The model's scalar log
                temperature; needed with ``scale='learned'``. Defaults to
                None.

        Returns:
            list[DataSample]: With ``pred_score`` (softmax over classes) and
            ``pred_label`` (arg-max); mmpretrain's ``Accuracy`` reads them.
        """
        from mmpretrain.structures import DataSample
        img = F.normalize(img_feats.float(), dim=-1)
        weights = self.get_classifier(encode_text).to(img.device)
        if weights.shape[0] != img.shape[1]:
            raise ValueError(
                f'Classifier dim {weights.shape[0]} differs from the image '
                f'embedding dim {img.shape[1]}; clear the stale cache '
                f'({self.cache_dir}) or call reset().')
        logits = resolve_scale(self.scale, logit_scale).to(
            img.device) * img @ weights
        probs = logits.softmax(dim=-1)
        labels = probs.argmax(dim=-1)
        if data_samples is None:
            data_samples = [DataSample() for _ in range(len(img))]
        for sample, score, label in zip(data_samples, probs, labels):
            sample.set_pred_score(score).set_pred_label(label)
        return data_samples
