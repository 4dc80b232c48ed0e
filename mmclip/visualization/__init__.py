"""mmclip.visualization (its own modules come with later work).

Importing mmpretrain's counterpart fills the parent registry that mmclip's
registry falls back to.
"""
import mmpretrain.visualization  # noqa: F401
