from .clip_vit import CLIPVisionTransformer

__all__ = ['CLIPVisionTransformer']
