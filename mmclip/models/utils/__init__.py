from .arch import resolve_arch

__all__ = ['resolve_arch']
