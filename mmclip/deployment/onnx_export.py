"""Export a CLIP model's two towers to ONNX.

``image_encoder.onnx`` maps ``images`` ``(B, 3, S, S)`` float32 (normalised
as the model's data preprocessor does) to ``image_embeds`` ``(B, D)``;
``text_encoder.onnx`` maps ``token_ids`` ``(B, L)`` int64 to ``text_embeds``
``(B, D)``. Both have a dynamic batch; the text tower a dynamic length
``L <= context_length`` too. The embeddings are ``encode_image`` /
``encode_text``'s: *not* L2-normalised. ``mmclip_onnx.json`` beside them
holds what a scorer needs (:func:`export_meta`).

The graphs come from ``torch.onnx.export(..., dynamo=True)``, PyTorch's
supported exporter (``torch.export`` + onnxscript); the TorchScript one is
deprecated since torch 2.9.

**Text padding.** In PyTorch the text tower cuts each batch after its last
end-of-text token (``trim_padding``), exact because of the causal mask. That
cut has a data-dependent length (``int(index.max())``), which
``torch.export`` refuses to trace. The exported graph is therefore the tower
without the cut, for any length: the pooled feature of a sequence does not
depend on the padding after its end-of-text token, so feeding the ids cut
after the batch's last one (:meth:`mmclip.apis.OnnxCLIP.tokenize`, one numpy
line) gives the same embeddings at the trimmed cost, and 77-token ids give
them too, at the full cost.
"""
import contextlib
import os
import os.path as osp
import platform
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
from mmengine.logging import MMLogger

from mmclip.models.utils import resolve_scale
from mmclip.version import __version__
from .onnx_inputs import META_VERSION, write_export_meta
from .onnx_runtime import OnnxCLIP

IMAGE_FILE = 'image_encoder.onnx'
TEXT_FILE = 'text_encoder.onnx'
#: Towers with more parameter bytes keep their weights in a ``.onnx.data``
#: file beside the graph: one protobuf file cannot exceed 2 GiB.
EXTERNAL_DATA_BYTES = 3 * 2**29
#: The largest ONNX Runtime vs PyTorch difference :func:`export_onnx`
#: accepts when it checks the files (float32 embeddings).
VERIFY_ATOL = 1e-4
#: Image steps the scorer reproduces; packing steps only make tensors.
_PACKING = ('PackInputs', 'PackImageText')


class _Encoder(nn.Module):
    """``model.encode_image`` or ``model.encode_text`` (on token ids) as the
    module that gets traced."""

    def __init__(self, model: nn.Module, method: str):
        super().__init__()
        self.model = model
        self.method = method

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return getattr(self.model, self.method)(inputs)


@contextlib.contextmanager
def _without_padding_trim(text_encoder: nn.Module):
    """Turn the text tower's data-dependent cut off while tracing (see the
    module docstring)."""
    saved = text_encoder.trim_padding
    text_encoder.trim_padding = False
    try:
        yield
    finally:
        text_encoder.trim_padding = saved


def image_preprocessing(model: nn.Module) -> dict:
    """The model's evaluation preprocessing as the sidecar states it.

    Read from the config's evaluation pipeline (as
    :func:`mmclip.apis.preprocess_images` builds it): a ``ResizeEdge`` of the
    short side with Pillow, then a ``CenterCrop``; mean and std from the
    data preprocessor. Where the pipeline's crop differs from the image
    tower's ``img_size`` (a tower rebuilt at another size), and for a model
    without a config, OpenAI's evaluation preprocessing at ``img_size`` with
    the pipeline's interpolation.

    Args:
        model (nn.Module): A :class:`CLIPModel` from
            :func:`mmclip.apis.get_model`.

    Returns:
        dict: ``size``, ``resize_short``, ``crop_size``, ``interpolation``
        (a Pillow filter name), ``mean``, ``std`` (RGB, 0-1 range).
    """
    from mmclip.datasets.pipelines import (LOADING_TRANSFORMS, TEXT_TRANSFORMS,
                                           clip_test_pipeline,
                                           config_test_pipeline)
    size = model.backbone.img_size
    cfg = getattr(model, 'cfg', None) or getattr(model, '_config', None)
    steps = [
        dict(step) for step in (config_test_pipeline(cfg)
                                or clip_test_pipeline(size))
        if step.get('type') not in LOADING_TRANSFORMS + TEXT_TRANSFORMS +
        _PACKING
    ]
    types = [step.get('type') for step in steps]
    resize = steps[0] if steps else {}
    if (types != ['ResizeEdge', 'CenterCrop']
            or resize.get('edge', 'short') != 'short'
            or resize.get('backend') != 'pillow'):
        raise ValueError(
            f'The evaluation pipeline has the image steps {steps}; the ONNX '
            "scorer reproduces ResizeEdge(edge='short', backend='pillow') "
            'then CenterCrop only (the CLIP configs\' preprocessing).')
    crop = steps[1]['crop_size']
    crop = crop if isinstance(crop, int) else crop[0]
    resize_short = resize['scale']
    if crop != size:
        MMLogger.get_current_instance().info(
            f'The pipeline crops {crop}px but the image tower takes {size}px: '
            f'the export resizes the short side to {size}px and crops '
            f'{size}px.')
        resize_short = crop = size
    if crop > resize_short:
        raise ValueError(f'The pipeline crops {crop}px from a {resize_short}'
                         'px short side; crop at most the resized size.')
    preprocessor = model.data_preprocessor
    return dict(
        size=size,
        resize_short=int(resize_short),
        crop_size=int(crop),
        interpolation=resize.get('interpolation', 'bilinear'),
        mean=[float(m) / 255 for m in preprocessor.mean.flatten()],
        std=[float(s) / 255 for s in preprocessor.std.flatten()])


def _zero_shot_meta(model: nn.Module) -> Optional[dict]:
    """The zero-shot head's classes, templates and multiplier, or None."""
    head = getattr(model, 'predict_head', None)
    if getattr(head, 'classnames', None) is None or not getattr(
            head, 'templates', None):
        return None
    return dict(
        classes=list(head.classnames),
        templates=list(head.templates),
        scale=float(resolve_scale(head.scale, model.logit_scale)))


def export_meta(model: nn.Module,
                checkpoint: Optional[str] = None,
                opset: Optional[int] = None) -> dict:
    """The sidecar ``mmclip_onnx.json`` of an export.

    Args:
        model (nn.Module): A :class:`CLIPModel`.
        checkpoint (str, optional): Where its weights came from (recorded;
            None for random weights). Defaults to None.
        opset (int, optional): The ONNX opset asked for (:func:`export_onnx`
            records the one written). Defaults to None.

    Returns:
        dict: ``embed_dims``; ``image`` (file, input/output names and
        :func:`image_preprocessing`); ``text`` (file, names,
        ``context_length``, ``eot_token_id``); ``scale`` (the learned
        multiplier, ``logit_scale.exp()``); ``normalized`` (False: the graphs
        return unnormalised embeddings); ``zero_shot`` (class names,
        templates and multiplier of a zero-shot head, or None); provenance.
    """
    cfg = getattr(model, 'cfg', None) or getattr(model, '_config', None)
    text = model.text_encoder
    tokenizer_length = getattr(model.tokenizer, 'context_length', None)
    if tokenizer_length is None or tokenizer_length > text.context_length:
        raise ValueError(
            f'The tokenizer makes {tokenizer_length} tokens per text and the '
            f'text tower takes {text.context_length}; export a model whose '
            "tokenizer is a CLIPBPETokenizer with that context length.")
    return dict(
        format_version=META_VERSION,
        embed_dims=int(model.embed_dims),
        normalized=False,
        scale=float(resolve_scale('learned', model.logit_scale)),
        image=dict(file=IMAGE_FILE, input='images', output='image_embeds',
                   **image_preprocessing(model)),
        text=dict(file=TEXT_FILE, input='token_ids', output='text_embeds',
                  context_length=int(tokenizer_length),
                  eot_token_id=text.eot_token_id),
        zero_shot=_zero_shot_meta(model),
        config=getattr(cfg, 'filename', None),
        checkpoint=checkpoint,
        exported_with=dict(mmclip=__version__, torch=torch.__version__,
                           opset=opset, python=platform.python_version()))


def _export_tower(module: nn.Module, example: torch.Tensor, path: str,
                  names: tuple, dynamic_axes: dict,
                  opset: Optional[int]) -> None:
    try:
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise ImportError(
            f'Exporting to ONNX needs onnx and onnxscript ({err}): pip '
            'install -r requirements/deploy.txt') from None
    weight_bytes = sum(p.numel() * p.element_size()
                       for p in module.parameters())
    torch.onnx.export(
        module.eval(), (example, ),
        path,
        input_names=[names[0]],
        output_names=[names[1]],
        dynamic_shapes=(dynamic_axes, ),
        opset_version=opset,
        dynamo=True,
        external_data=weight_bytes > EXTERNAL_DATA_BYTES,
        verbose=False)


def _written_opset(path: str) -> int:
    """The default-domain opset of an ONNX file."""
    import onnx
    graph = onnx.load(path, load_external_data=False)
    return next(op.version for op in graph.opset_import
                if op.domain in ('', 'ai.onnx'))


def verify_export(model: nn.Module, export_dir: str,
                  batch_size: int = 3) -> dict:
    """Run the exported files with ONNX Runtime and PyTorch on the same
    inputs (a batch size the export was not traced with, texts of several
    lengths) and return the largest absolute differences.

    Returns:
        dict: ``image`` and ``text`` max abs differences (float).
    """
    runtime = OnnxCLIP(export_dir)
    size = runtime.meta['image']['size']
    images = torch.randn(batch_size, 3, size, size,
                         generator=torch.Generator().manual_seed(0))
    texts = ['a photo of a cat.', 'a', 'a diagram of a very small house'
             ][:batch_size]
    with torch.no_grad():
        image_ref = model.encode_image(images).float().numpy()
        text_ref = model.encode_text(
            model.tokenizer(texts, truncate=True)).float().numpy()
    image_out = runtime.encode_image(images.numpy())
    text_out = runtime.encode_text(texts)
    return dict(image=float(np.abs(image_out - image_ref).max()),
                text=float(np.abs(text_out - text_ref).max()))


def export_onnx(model: nn.Module,
                out_dir: str,
                opset: Optional[int] = None,
                checkpoint: Optional[str] = None,
                verify: bool = True) -> dict:
    """Write ``image_encoder.onnx``, ``text_encoder.onnx`` and
    ``mmclip_onnx.json`` for ``model`` into ``out_dir``.

    Args:
        model (nn.Module): A :class:`CLIPModel` (e.g. from
            :func:`mmclip.apis.get_model`); it is put on the CPU in float32
            and eval mode, in place.
        out_dir (str): Output folder; created if missing, files replaced.
        opset (int, optional): ONNX opset; None takes the exporter's default.
            Defaults to None.
        checkpoint (str, optional): Recorded in the sidecar. Defaults to None.
        verify (bool): Run both files with ONNX Runtime against PyTorch
            (:func:`verify_export`), record the differences in the sidecar
            and raise if one exceeds :data:`VERIFY_ATOL`. Defaults to True.

    Returns:
        dict: The sidecar's content.
    """
    for tower in ('backbone', 'text_encoder'):
        if not hasattr(model, tower):
            raise ValueError(f'{type(model).__name__} has no {tower}: export '
                             'a CLIPModel (two towers).')
    model = model.float().cpu().eval()
    os.makedirs(out_dir, exist_ok=True)
    meta = export_meta(model, checkpoint=checkpoint, opset=opset)
    batch = torch.export.Dim('batch')
    size = meta['image']['size']
    _export_tower(
        _Encoder(model, 'encode_image'), torch.zeros(2, 3, size, size),
        osp.join(out_dir, IMAGE_FILE), ('images', 'image_embeds'),
        {0: batch}, opset)
    length = meta['text']['context_length']
    ids = model.tokenizer(['a photo of a cat.', 'a diagram'],
                          context_length=length)
    with _without_padding_trim(model.text_encoder):
        _export_tower(
            _Encoder(model, 'encode_text'), ids,
            osp.join(out_dir, TEXT_FILE), ('token_ids', 'text_embeds'),
            {0: batch, 1: torch.export.Dim('length', min=2, max=length)},
            opset)
    meta['exported_with']['opset'] = _written_opset(
        osp.join(out_dir, IMAGE_FILE))
    write_export_meta(meta, out_dir)
    if verify:  # OnnxCLIP reads the sidecar: written first, then updated
        meta['verified_max_abs_diff'] = diffs = verify_export(model, out_dir)
        write_export_meta(meta, out_dir)
        if max(diffs.values()) > VERIFY_ATOL:
            raise RuntimeError(
                f'ONNX Runtime differs from PyTorch by more than '
                f'{VERIFY_ATOL} on the model exported to {out_dir}: {diffs}.')
    return meta
