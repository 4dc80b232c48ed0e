"""The same CLIP from mmclip, open_clip and transformers, for side-by-side
measurements: one architecture (OpenAI's widths, QuickGELU), random
weights, and each library's own encoders."""
from typing import Dict, List, Sequence, Tuple

import torch

#: Class names of the prompts (ImageNet's first 16).
LABELS = [
    'tench', 'goldfish', 'great white shark', 'tiger shark', 'hammerhead',
    'electric ray', 'stingray', 'rooster', 'hen', 'ostrich', 'brambling',
    'goldfinch', 'house finch', 'junco', 'indigo bunting', 'American robin'
]
#: The libraries compared, mmclip first.
LIBRARIES = ('mmclip', 'open_clip', 'transformers')
#: ``(image width, layers, heads, patch, px), (text width, layers, heads),
#: embedding dim`` of OpenAI's CLIP architectures; 'tiny' only checks the
#: tools.
ARCHS = {
    'b32': ((768, 12, 12, 32, 224), (512, 12, 8), 512),
    'b16': ((768, 12, 12, 16, 224), (512, 12, 8), 512),
    'b16-384': ((768, 12, 12, 16, 384), (512, 12, 8), 512),
    'l14': ((1024, 24, 16, 14, 224), (768, 12, 12), 768),
    'tiny': ((64, 2, 4, 8, 32), (64, 2, 4), 32),
}
ARCH_NAMES = {'b32': 'ViT-B/32', 'b16': 'ViT-B/16', 'b16-384': 'ViT-B/16@384',
              'l14': 'ViT-L/14', 'tiny': 'tiny'}


def mmclip_arch_options(arch: str) -> dict:
    """``cfg_options`` that turn mmclip's ViT-B/32 config into ``arch``
    (``'_delete_'``: a dict replaces the config's arch name).

    Args:
        arch (str): A key of :data:`ARCHS`.

    Returns:
        dict: For :func:`mmclip.apis.get_model`.
    """
    (width, layers, heads, patch, px), (t_width, t_layers,
                                        t_heads), dim = ARCHS[arch]
    return {
        'model.vision_backbone': dict(
            arch=dict(_delete_=True, embed_dims=width, num_layers=layers,
                      num_heads=heads, proj_dims=dim),
            img_size=px, patch_size=patch),
        'model.text_encoder.arch': dict(
            _delete_=True, embed_dims=t_width, num_layers=t_layers,
            num_heads=t_heads, proj_dims=dim)}


def build_models(arch: str, libraries: Sequence[str], device: str,
                 dtype: torch.dtype) -> Dict[str, torch.nn.Module]:
    """The ``arch`` CLIP (QuickGELU) from each library, random weights, eval
    mode.

    Args:
        arch (str): A key of :data:`ARCHS`.
        libraries (Sequence[str]): Some of :data:`LIBRARIES`.
        device (str): Where the models go, e.g. ``'cuda'``.
        dtype (torch.dtype): Their parameters' dtype.

    Returns:
        dict: ``{library: model}``.
    """
    import open_clip
    from transformers import CLIPConfig, CLIPModel

    from mmclip.apis import get_model
    (width, layers, heads, patch, px), (t_width, t_layers,
                                        t_heads), dim = ARCHS[arch]
    builders = {
        'mmclip': lambda: get_model('clip_vit-base-p32',
                                    cfg_options=mmclip_arch_options(arch)),
        'open_clip': lambda: open_clip.CLIP(
            dim, dict(width=width, layers=layers, head_width=width // heads,
                      patch_size=patch, image_size=px),
            dict(width=t_width, layers=t_layers, heads=t_heads),
            quick_gelu=True),
        'transformers': lambda: CLIPModel(CLIPConfig(
            text_config=dict(
                hidden_size=t_width, num_hidden_layers=t_layers,
                num_attention_heads=t_heads, intermediate_size=4 * t_width,
                hidden_act='quick_gelu'),
            vision_config=dict(
                hidden_size=width, num_hidden_layers=layers,
                num_attention_heads=heads, intermediate_size=4 * width,
                patch_size=patch, image_size=px, hidden_act='quick_gelu'),
            projection_dim=dim, attn_implementation='sdpa')),
    }
    return {name: builders[name]().to(device, dtype).eval()
            for name in libraries}


def encoders(models: Dict[str, torch.nn.Module]) -> Dict[str, Tuple]:
    """Each library's ``(encode_image, encode_text)``: pixels ``(N, 3, S,
    S)`` or token ids ``(N, 77)`` to unnormalised ``(N, D)`` embeddings.

    Args:
        models (dict): :func:`build_models`'s.

    Returns:
        dict: ``{library: (image encoder, text encoder)}``.
    """
    fns = {}
    for name, model in models.items():
        if name == 'transformers':
            # transformers 5 returns the projected embeddings as
            # pooler_output.
            fns[name] = (
                lambda x, m=model: m.get_image_features(
                    pixel_values=x).pooler_output,
                lambda t, m=model: m.get_text_features(
                    input_ids=t).pooler_output)
        else:
            fns[name] = (model.encode_image, model.encode_text)
    return fns


def make_prompts(n: int) -> List[str]:
    """``n`` zero-shot prompts, "a photo of a {label}." over :data:`LABELS`."""
    return [f'a photo of a {LABELS[i % len(LABELS)]}.' for i in range(n)]
