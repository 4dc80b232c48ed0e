"""Renamed arguments and config keys keep working, with a warning.

The warning is a :class:`FutureWarning`, which Python shows by default:
config keys and keyword arguments are used by people running configs and
scripts, and a :class:`DeprecationWarning` raised inside a library is hidden
from them. Standard library only, so the torch-free scorer can use it too.
"""
import warnings
from typing import Any

__all__ = ['renamed_argument']


def renamed_argument(owner: str, old: str, old_value: Any, new: str,
                     new_value: Any, reason: str = '') -> Any:
    """The value of an argument that was renamed from ``old`` to ``new``.

    Args:
        owner (str): What takes the argument, e.g. ``'ZeroShotClsHead'``.
        old (str): The old name.
        old_value: What the caller passed as ``old``; None when it did not.
        new (str): The new name.
        new_value: What the caller passed as ``new`` (or its default).
        reason (str): Why, appended to the warning. Defaults to ``''``.

    Returns:
        ``old_value`` when the caller used the old name (warning with a
        :class:`FutureWarning` that says how to rename it), else
        ``new_value``.
    """
    if old_value is None:
        return new_value
    warnings.warn(
        f'{owner}({old}=...) is deprecated and will be removed: pass '
        f'{new}={old_value!r} instead (rename the key in configs). '
        + reason, FutureWarning, stacklevel=3)
    return old_value
