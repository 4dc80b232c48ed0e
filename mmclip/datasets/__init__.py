"""mmclip.datasets (its own modules come with later work).

Importing mmpretrain's counterpart fills the parent registry that mmclip's
registry falls back to.
"""
import mmpretrain.datasets  # noqa: F401
