from .clip_model import CLIPModel

__all__ = ['CLIPModel']
