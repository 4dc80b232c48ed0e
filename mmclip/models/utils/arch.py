"""Validation of ``arch`` arguments against a class's ``arch_zoo``."""
from typing import Union

_REQUIRED = ('embed_dims', 'num_layers', 'num_heads')


def resolve_arch(arch_zoo: dict, arch: Union[str, dict], owner: str) -> dict:
    """Return the settings of ``arch``: a zoo name or a custom dict.

    Args:
        arch_zoo (dict): Name (and alias) to settings.
        arch (str | dict): A name in ``arch_zoo`` (case-insensitive) or a dict
            with at least ``embed_dims``, ``num_layers`` and ``num_heads``.
        owner (str): Class name used in error messages.

    Returns:
        dict: A copy of the settings.
    """
    if isinstance(arch, str):
        key = arch.lower()
        if key not in arch_zoo:
            raise ValueError(f'{owner}: unknown arch {arch!r}; choose one of '
                             f'{sorted(set(arch_zoo))} or pass a dict with '
                             f'keys {list(_REQUIRED)}.')
        return dict(arch_zoo[key])
    if not isinstance(arch, dict):
        raise TypeError(f'{owner}: arch must be a str or dict, got '
                        f'{type(arch).__name__}.')
    missing = [k for k in _REQUIRED if k not in arch]
    if missing:
        raise ValueError(f'{owner}: custom arch {arch} lacks keys {missing}.')
    return dict(arch)
