from .arch import resolve_arch
from .zero_shot import build_zero_shot_classifier

__all__ = ['build_zero_shot_classifier', 'resolve_arch']
