"""Pieces of the messages mmclip shows users."""
from typing import Sequence


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
