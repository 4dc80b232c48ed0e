"""Errors about input a user can fix: a value that cannot work, a file that
is not there. Their message names the input and the fix, so the tools print
them as one ``error: ...`` line with exit status 1 (see
:mod:`mmclip.apis.cli`) instead of a traceback; :func:`shorten_list` keeps
a message that names many keys on one screen.

Plain Python with no imports of mmclip, so that every room of the package,
down to the datasets, can use it.
"""
from typing import Sequence


class ConfigError(ValueError):
    """A config or command-line value that cannot work, with its fix."""


class MissingFileError(FileNotFoundError):
    """A file or folder that a config or command line names is missing."""


def shorten_list(items: Sequence[str], limit: int = 5) -> str:
    """The first ``limit`` items joined with commas, and how many more there
    are: ``'a, b, c (+7 more)'``. For error and warning messages about
    many keys, which would otherwise fill the screen.

    Args:
        items (Sequence[str]): E.g. state-dict keys.
        limit (int): Items shown. Defaults to 5.

    Returns:
        str: The short list; empty for no items.
    """
    more = f' (+{len(items) - limit} more)' if len(items) > limit else ''
    return ', '.join(items[:limit]) + more
