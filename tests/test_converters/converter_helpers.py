"""Helpers to fabricate source checkpoints and check conversions.

Shared by both test files in ``tests/test_converters``.
"""
import warnings
from typing import Dict, Optional

import torch
import torch.nn as nn

# Names mmpretrain 1.x registers as placeholders when its multimodal extras
# (pycocotools) are missing, although these classes need none of them.
_MMPRETRAIN_CLIP_CLASSES = ('CLIP', 'CLIPZeroShot', 'CLIPTransformer',
                            'CLIPProjection')


@torch.no_grad()
def perturb_(model: nn.Module, std: float = 0.02, seed: int = 0) -> nn.Module:
    """Add ``std * N(0, 1)`` noise to every parameter, in place.

    Freshly initialised models have LayerNorm weights of 1 and biases of 0,
    so a converter that swaps two LayerNorms (or drops a bias) would go
    unnoticed; after this every tensor is distinct.

    Args:
        model (nn.Module): Any model.
        std (float): Noise scale. Defaults to 0.02.
        seed (int): Seed of the noise. Defaults to 0.

    Returns:
        nn.Module: ``model``.
    """
    gen = torch.Generator().manual_seed(seed)
    for param in model.parameters():
        noise = torch.randn(param.shape, generator=gen, dtype=torch.float32)
        param.add_(std * noise.to(param.dtype))
    return model


class _OpenAIArchive(nn.Module):
    """An OpenAI-style TorchScript root: the CLIP model's children and own
    parameters at the top level, plus the scalars OpenAI stores."""

    def __init__(self, clip: nn.Module, extras: Dict[str, int]):
        super().__init__()
        for name, child in clip.named_children():
            self.add_module(name, child)
        for name, param in clip.named_parameters(recurse=False):
            self.register_parameter(name, param)
        for name, value in extras.items():
            self.register_buffer(name, torch.tensor(value))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.visual(image)


def save_openai_torchscript(clip: nn.Module,
                            path: str,
                            img_size: int = 224,
                            half: bool = True) -> Dict[str, torch.Tensor]:
    """Write a TorchScript archive laid out like OpenAI's released models.

    OpenAI's ``ViT-B-32.pt`` is a TorchScript archive of their ``CLIP`` in
    fp16 whose ``state_dict()`` has OpenAI's names plus
    ``input_resolution``, ``context_length`` and ``vocab_size``. An open_clip
    ``CLIP`` has the same names; it is traced through its image tower, which
    keeps every parameter of the module tree in the archive.

    Args:
        clip (nn.Module): An open_clip ``CLIP`` model (not modified).
        path (str): Output file.
        img_size (int): Input resolution to trace with. Defaults to 224.
        half (bool): Store fp16 weights like OpenAI. Defaults to True.

    Returns:
        dict[str, Tensor]: The archive's state dict in fp32, to build the
        reference model from exactly the stored values.
    """
    import copy
    clip = copy.deepcopy(clip).float().eval()
    text = clip.token_embedding.weight.shape
    extras = dict(
        input_resolution=img_size,
        context_length=int(clip.positional_embedding.shape[0]),
        vocab_size=int(text[0]))
    archive = _OpenAIArchive(clip, extras)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore')  # tracer warnings about python ints
        traced = torch.jit.trace(
            archive, (torch.zeros(1, 3, img_size, img_size), ),
            check_trace=False)
    if half:
        traced = traced.half()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)  # jit is deprecated
        torch.jit.save(traced, path)
    return {k: v.float() for k, v in traced.state_dict().items()}


def build_mmpretrain(cfg: dict) -> nn.Module:
    """Build an mmpretrain model, including its CLIP classes.

    mmpretrain registers ``CLIP``/``CLIPZeroShot``/``CLIPProjection`` only
    when pycocotools and transformers are installed (``WITH_MULTIMODAL``)
    and placeholders that raise otherwise; the CLIP classes need neither, so
    the placeholders are replaced by the real classes. mmcv builds FFN
    activations (``QuickGELU``) from the default scope's registry, hence
    the ``mmpretrain`` scope.

    Args:
        cfg (dict): mmpretrain model config.

    Returns:
        nn.Module: The model in eval mode.
    """
    import mmpretrain.models  # noqa: F401  (fills the registry)
    from mmengine.registry import DefaultScope
    from mmpretrain.registry import MODELS
    popped = {}
    for name in _MMPRETRAIN_CLIP_CLASSES:
        obj = MODELS.get(name)
        if getattr(obj, '__name__', '') == 'ask_install':  # a placeholder
            popped[name] = MODELS._module_dict.pop(name)
    import mmpretrain.models.multimodal.clip  # noqa: F401
    for name, placeholder in popped.items():
        # the abstract ``CLIP`` is not registered by the module itself
        MODELS._module_dict.setdefault(name, placeholder)
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        model = MODELS.build(cfg)
    model.eval()  # mmpretrain's train() overrides may not return self
    return model


def build_from_meta(
        meta: dict,
        state_dict: Optional[Dict[str, torch.Tensor]] = None) -> nn.Module:
    """Build the model a converted checkpoint describes and load it strictly.

    Args:
        meta (dict): ``meta`` of an mmclip checkpoint.
        state_dict (dict[str, Tensor], optional): Its weights; None builds
            a randomly initialised model. Defaults to None.

    Returns:
        nn.Module: A ``CLIPModel`` (no tokenizer), or a
        ``CLIPVisionTransformer`` for image-only checkpoints, in eval mode.
    """
    import mmpretrain.models  # noqa: F401  (CLIPModel's data preprocessor)

    from mmclip.models.multimodal.clip_model import CLIPModel
    from mmclip.registry import MODELS
    cfg = meta['model_cfg']
    if cfg['text_encoder'] is None:
        model = MODELS.build(cfg['vision_backbone'])
        prefix = 'backbone.'
        if state_dict is not None:
            state_dict = {
                k[len(prefix):]: v
                for k, v in state_dict.items() if k.startswith(prefix)
            }
    else:
        model = CLIPModel(**cfg, tokenizer=None)
    if state_dict is not None:
        model.load_state_dict(state_dict, strict=True)
    model.eval()
    return model
