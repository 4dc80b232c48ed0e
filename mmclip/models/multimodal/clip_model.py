"""The CLIP model: image tower + text tower + learnable temperature."""
import math
import warnings
from itertools import chain
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.model import BaseModel

from mmclip.registry import MODELS, TOKENIZER
from ..utils.text_embedder import TextEmbedder, text_tower_fingerprint
from .grad_cache import (FeatureCache, grad_cache_train_step,
                         loss_and_feature_grads)

# OpenAI's normalisation, in the 0-255 range mmpretrain's preprocessors use.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CLIP_DATA_PREPROCESSOR = dict(
    type='CLIPDataPreprocessor',
    mean=[m * 255 for m in CLIP_MEAN],
    std=[s * 255 for s in CLIP_STD],
    to_rgb=True)


def _build(registry, cfg):
    return registry.build(cfg) if isinstance(cfg, dict) else cfg


@MODELS.register_module()
class CLIPModel(BaseModel):
    """Contrastive Language-Image Pre-training model.

    Composes an image tower and a text tower whose outputs share an embedding
    space, and the learnable temperature ``logit_scale`` (stored as its log:
    logits are ``logit_scale.exp() * img @ txt.T``). Heads add the training
    loss (``mode='loss'``) and zero-shot prediction (``mode='predict'``).

    Args:
        vision_backbone (dict | nn.Module): Image tower config, e.g.
            ``dict(type='CLIPVisionTransformer', arch='base', patch_size=32)``.
        text_encoder (dict | nn.Module): Text tower config, e.g.
            ``dict(type='CLIPTextTransformer', arch='base')``.
        tokenizer (dict | callable): Turns strings into ``(N, L)`` ids; used
            when :meth:`encode_text` gets strings. Defaults to
            ``dict(type='CLIPBPETokenizer')``.
        logit_scale_init (float): Initial log temperature. Defaults to
            ``ln(1 / 0.07)`` as in the CLIP paper.
        nonscalar_logit_scale (bool): Store ``logit_scale`` with shape
            ``(1, )`` instead of ``()``: FSDP refuses 0-d parameters (as
            open_clip's option of this name). Checkpoints of either shape
            load into both. Defaults to False (OpenAI's scalar).
        head (dict, optional): Training head that computes the contrastive
            loss from both embeddings. Defaults to None.
        predict_head (dict, optional): Head behind ``mode='predict'``: a
            zero-shot classifier of image embeddings against class-name
            prompts, or a retrieval head. It gets the image embeddings, a
            :class:`TextEmbedder` (:meth:`text_embedder`) and
            ``logit_scale``, not the model. Defaults to None.
        accum_steps (int): Micro-batches per training step: each batch of
            the dataloader (``K x B`` samples per process) is embedded and
            back-propagated ``B`` samples at a time, with the loss,
            gradients and logged values of the whole batch (GradCache, see
            :mod:`~mmclip.models.multimodal.grad_cache`): the contrastive
            batch of ``K x B`` with about the activation memory of ``B``,
            for one more forward pass of the towers. Under DDP/FSDP the
            runner needs mmclip's accumulating wrappers, which
            :func:`mmclip.engine.build_runner` sets. Defaults to 1 (one
            pass).
        data_preprocessor (dict, optional): Defaults to
            :class:`~mmclip.models.utils.CLIPDataPreprocessor` (mmpretrain's
            ``ClsDataPreprocessor``, copying without blocking) with OpenAI's
            mean/std and BGR->RGB.
        init_cfg (dict, optional): mmengine init config.
    """

    def __init__(self,
                 vision_backbone: Union[dict, nn.Module],
                 text_encoder: Union[dict, nn.Module],
                 tokenizer: Union[dict, object] = dict(
                     type='CLIPBPETokenizer'),
                 logit_scale_init: float = math.log(1 / 0.07),
                 nonscalar_logit_scale: bool = False,
                 head: Optional[dict] = None,
                 predict_head: Optional[dict] = None,
                 accum_steps: int = 1,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None):
        if isinstance(accum_steps, bool) or not isinstance(
                accum_steps, int) or accum_steps < 1:
            raise ValueError(
                f'accum_steps must be a positive int, got {accum_steps!r}.')
        if data_preprocessor is None:
            data_preprocessor = dict(CLIP_DATA_PREPROCESSOR)
        super().__init__(
            data_preprocessor=_build(MODELS, data_preprocessor),
            init_cfg=init_cfg)
        self.backbone = _build(MODELS, vision_backbone)
        self.text_encoder = _build(MODELS, text_encoder)
        if self.backbone.out_channels != self.text_encoder.out_channels:
            raise ValueError(
                f'Image embedding dim {self.backbone.out_channels} differs '
                f'from text embedding dim {self.text_encoder.out_channels}; '
                'set out_channels of both towers to the same value.')
        self.tokenizer = _build(TOKENIZER, tokenizer)
        self.logit_scale = nn.Parameter(
            torch.full((1, ) if nonscalar_logit_scale else (),
                       float(logit_scale_init)))
        self._register_load_state_dict_pre_hook(self._logit_scale_shape_hook)
        self.head = _build(MODELS, head) if head else None
        self.predict_head = (
            _build(MODELS, predict_head) if predict_head else None)
        self.accum_steps = accum_steps
        # text_fingerprint()'s memo: the hash and the tensors' stamp.
        self._text_fingerprint = self._text_stamp = None

    def _logit_scale_shape_hook(self, state_dict, prefix, *args, **kwargs):
        """A checkpoint's one-element ``logit_scale`` (a scalar from OpenAI
        or a ``(1, )`` from an FSDP run) takes this model's shape."""
        key = prefix + 'logit_scale'
        value = state_dict.get(key)
        if value is not None and value.numel() == 1:
            state_dict[key] = value.reshape(self.logit_scale.shape)

    @property
    def _dataset_meta(self) -> dict:
        """Dataset meta set by ``get_model`` (mmclip's or mmpretrain's), with
        ``classes`` taken from the predict head when it has class names:
        those, not the test dataset's ``METAINFO``, define what
        ``pred_label`` means (mmpretrain's inferencer reads them)."""
        meta = dict(getattr(self, '_given_dataset_meta', None) or {})
        classnames = getattr(self.predict_head, 'classnames', None)
        if classnames is not None:
            meta['classes'] = list(classnames)
        return meta

    @_dataset_meta.setter
    def _dataset_meta(self, meta: Optional[dict]) -> None:
        self._given_dataset_meta = dict(meta or {})

    @property
    def embed_dims(self) -> int:
        """Dimension of the shared embedding space."""
        return self.backbone.out_channels

    def encode_image(self,
                     images: torch.Tensor,
                     normalize: bool = False) -> torch.Tensor:
        """Embed preprocessed images.

        Args:
            images (Tensor): ``(B, 3, H, W)``, normalised with OpenAI's
                mean/std (see :data:`CLIP_MEAN`).
            normalize (bool): L2-normalise the embeddings. Defaults to False.

        Returns:
            Tensor: ``(B, embed_dims)``.
        """
        feats = self.backbone(images)[0]
        return F.normalize(feats, dim=-1) if normalize else feats

    def encode_text(self,
                    texts: Union[torch.Tensor, str, List[str]],
                    normalize: bool = False) -> torch.Tensor:
        """Embed token ids (or strings, tokenized with ``self.tokenizer``).

        Args:
            texts (Tensor | str | list[str]): ``(B, L)`` int64 token ids, or
                raw text.
            normalize (bool): L2-normalise the embeddings. Defaults to False.

        Returns:
            Tensor: ``(B, embed_dims)``.
        """
        if isinstance(texts, (str, list, tuple)):
            texts = self.tokenizer(texts)
        texts = texts.to(self.logit_scale.device)
        feats = self.text_encoder(texts)[0]
        return F.normalize(feats, dim=-1) if normalize else feats

    def get_logits(self, images: torch.Tensor,
                   texts: Union[torch.Tensor, Sequence[str]]):
        """Scaled cosine-similarity logits, as OpenAI's ``model(img, txt)``.

        Returns:
            tuple[Tensor, Tensor]: ``logits_per_image`` ``(B_img, B_txt)`` and
            its transpose ``logits_per_text``.
        """
        img = self.encode_image(images, normalize=True)
        txt = self.encode_text(texts, normalize=True)
        logits = self.logit_scale.exp() * img @ txt.t()
        return logits, logits.t()

    def text_fingerprint(self) -> str:
        """SHA-256 of the text tower's weights and the tokenizer (see
        :func:`text_tower_fingerprint`), rehashed only when a text tensor
        changed: its storage pointer or in-place version counter, which
        ``load_state_dict``, optimizer steps and any in-place update bump.

        Returns:
            str: 64 hex digits.
        """
        stamp = tuple(
            (t.data_ptr(), t._version, t.dtype, t.device)
            for t in chain(self.text_encoder.parameters(),
                           self.text_encoder.buffers()))
        if stamp != self._text_stamp:
            self._text_fingerprint = text_tower_fingerprint(
                self.text_encoder, self.tokenizer)
            self._text_stamp = stamp
        return self._text_fingerprint

    def _embed_texts_for_heads(self, texts) -> torch.Tensor:
        # Eval mode: what heads derive (and cache) carries no dropout. Long
        # strings are truncated, as open_clip's prompt builders do.
        if isinstance(texts, (str, list, tuple)):
            texts = self.tokenizer(texts, truncate=True)
        was_training = self.text_encoder.training
        self.text_encoder.eval()
        try:
            return self.encode_text(texts)
        finally:
            self.text_encoder.train(was_training)

    def text_embedder(self) -> TextEmbedder:
        """The text side as predict heads get it: a callable from strings or
        token ids to ``(N, D)`` embeddings (text tower in eval mode, strings
        truncated to the context length) with :meth:`text_fingerprint`.

        Returns:
            TextEmbedder: Usable with :func:`build_zero_shot_classifier`.
        """
        return TextEmbedder(self._embed_texts_for_heads,
                            self.text_fingerprint)

    def text_ids_of(self, data_samples: list) -> torch.Tensor:
        """Stack the ``text_ids`` the data pipeline put on each sample
        (tokenizing ``text`` here only if the pipeline did not).

        Returns:
            Tensor: ``(B, L)`` int64 token ids.
        """
        if not data_samples:
            raise ValueError("mode='loss' needs data_samples with texts.")
        if all('text_ids' in ds for ds in data_samples):
            return torch.stack([ds.text_ids for ds in data_samples])
        if all('text' in ds for ds in data_samples):
            return self.tokenizer([ds.text for ds in data_samples],
                                  truncate=True)
        raise ValueError(
            'Training samples carry no caption: add `TokenizeText` (or a '
            'transform that sets `text`) to the training pipeline.')

    def pair_features(self, inputs: torch.Tensor,
                      data_samples: list) -> Tuple[torch.Tensor, torch.Tensor]:
        """L2-normalised embeddings of a batch of image-caption pairs.

        Args:
            inputs (Tensor): Preprocessed images ``(B, 3, H, W)``.
            data_samples (list[DataSample]): With ``text_ids`` (or
                ``text``).

        Returns:
            tuple[Tensor, Tensor]: Image and text embeddings, each
            ``(B, embed_dims)``.
        """
        return (self.encode_image(inputs, normalize=True),
                self.encode_text(self.text_ids_of(data_samples),
                                 normalize=True))

    def loss(self,
             inputs: Optional[torch.Tensor],
             data_samples: Optional[list],
             feature_cache: Optional[FeatureCache] = None) -> dict:
        """Contrastive loss of a batch of image-caption pairs.

        Args:
            inputs (Tensor, optional): Preprocessed images ``(B, 3, H, W)``;
                None when every embedding comes from ``feature_cache``.
            data_samples (list[DataSample], optional): With ``text_ids``
                (or ``text``).
            feature_cache (FeatureCache, optional): Embeddings of a larger
                batch (gradient accumulation, :meth:`train_step`): the loss
                covers all of its rows, those of ``feature_cache.rows``
                embedded afresh from ``inputs``. Defaults to None (the loss
                of ``inputs``).

        Returns:
            dict: ``loss`` plus logged values from the head.
        """
        if self.head is None:
            raise RuntimeError(
                "CLIPModel has no training head: mode='loss' needs "
                "head=dict(type='CLIPContrastiveHead') (CLIP's loss) or "
                "head=dict(type='SigLIPHead') in the model config.")
        if feature_cache is None:
            if (self.accum_steps > 1 and self.training
                    and torch.is_grad_enabled()):
                warnings.warn(
                    f'CLIPModel(accum_steps={self.accum_steps}) computed a '
                    'training loss in one pass: accumulation runs in '
                    'train_step, which DDP/FSDP reach through mmclip\'s '
                    'Accumulating* model wrappers (mmclip.engine.'
                    'build_runner sets them).')
            img, txt = self.pair_features(inputs, data_samples)
        elif inputs is None:
            img, txt = feature_cache.img, feature_cache.txt
        else:
            img, txt = feature_cache.splice(
                *self.pair_features(inputs, data_samples))
        return self.head.loss(img, txt, self.logit_scale)

    def train_step(self,
                   data: dict,
                   optim_wrapper,
                   forward_module: Optional[nn.Module] = None) -> dict:
        """mmengine's training step; with ``accum_steps > 1`` the batch is
        processed in micro-batches (:func:`grad_cache_train_step`).

        Args:
            data (dict): A batch from the dataloader.
            optim_wrapper (OptimWrapper): Steps the optimizer.
            forward_module (nn.Module, optional): The DDP/FSDP wrapper
                around this model, which the micro-batches' forwards go
                through (mmclip's accumulating wrappers pass themselves).
                Defaults to None (this model).

        Returns:
            dict[str, Tensor]: The logged values of the batch.
        """
        if self.accum_steps == 1:
            return super().train_step(data, optim_wrapper)
        return grad_cache_train_step(self, data, optim_wrapper,
                                     self.accum_steps, forward_module)

    def forward(self,
                inputs: Optional[torch.Tensor],
                data_samples: Optional[list] = None,
                mode: str = 'tensor',
                feature_cache: Optional[FeatureCache] = None):
        """mmengine's entry point.

        Args:
            inputs (Tensor): Preprocessed images ``(B, 3, H, W)``.
            data_samples (list, optional): Per-sample annotations (texts for
                ``'loss'`` and ``'features'``, labels for ``'predict'``).
            mode (str): ``'tensor'`` returns image embeddings ``(B, D)``;
                ``'features'`` both normalised embeddings
                (:meth:`pair_features`); ``'loss'`` a dict of losses from
                ``head``; ``'feature_grads'`` the loss of ``feature_cache``
                and its gradients (:func:`loss_and_feature_grads`);
                ``'predict'``
                data samples with predictions from ``predict_head``.
            feature_cache (FeatureCache, optional): For ``'loss'`` and
                ``'feature_grads'``, see :meth:`loss`. Defaults to None.
        """
        if mode == 'tensor':
            return self.encode_image(inputs)
        if mode == 'features':
            return self.pair_features(inputs, data_samples)
        if mode == 'feature_grads':
            return loss_and_feature_grads(self, feature_cache)
        if mode == 'loss':
            return self.loss(inputs, data_samples, feature_cache)
        if mode == 'predict':
            if self.predict_head is None:
                raise RuntimeError(
                    "CLIPModel has no predict head: mode='predict' needs "
                    "predict_head=dict(type=...) in the model config.")
            return self.predict_head.predict(
                self.encode_image(inputs), self.text_embedder(),
                data_samples, logit_scale=self.logit_scale)
        raise ValueError(f"Invalid mode {mode!r}: use 'tensor', "
                         "'features', 'loss', 'feature_grads' or 'predict'.")
