"""mmclip.visualization: pictures of predictions.

Importing mmpretrain's counterpart fills the parent registry that mmclip's
registry falls back to.
"""
import mmpretrain.visualization  # noqa: F401

from .prediction_panel import (draw_prediction_panel, fit_image,
                               save_prediction_panel, shorten_label)

__all__ = [
    'draw_prediction_panel', 'fit_image', 'save_prediction_panel',
    'shorten_label'
]
