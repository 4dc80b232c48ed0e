"""The class names a model predicts, read from its dataset meta."""
from typing import List, Optional


def model_classes(model) -> Optional[List[str]]:
    """The class names behind a model's predictions without ``texts``.

    The ``classes`` of the model's dataset meta: for a :class:`CLIPModel`
    its zero-shot head's class names (see ``CLIPModel._dataset_meta``), for
    an mmpretrain classifier those of its checkpoint or test dataset. None
    when the model names no classes.

    Args:
        model (nn.Module): A model built by :func:`mmclip.apis.get_model`
            or mmpretrain's ``get_model`` (unwrapped).

    Returns:
        list[str] | None: The class names, in label order.
    """
    for attr in ('_dataset_meta', 'dataset_meta'):
        meta = getattr(model, attr, None)
        if isinstance(meta, dict) and meta.get('classes'):
            return list(meta['classes'])
    return None
