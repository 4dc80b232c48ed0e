"""mmclip.visualization: pictures of predictions and of WiSE-FT sweeps.

Importing mmpretrain's counterpart fills the parent registry that mmclip's
registry falls back to.
"""
import mmpretrain.visualization  # noqa: F401

from .contact_sheet import draw_contact_sheet, save_contact_sheet
from .prediction_panel import (draw_prediction_panel, fit_image,
                               save_prediction_panel, shorten_label)
from .wise_ft_curve import plot_wise_ft

__all__ = [
    'draw_contact_sheet', 'save_contact_sheet', 'draw_prediction_panel',
    'fit_image', 'save_prediction_panel', 'shorten_label', 'plot_wise_ft'
]
