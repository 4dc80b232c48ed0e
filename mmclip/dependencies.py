"""Which of mmclip's two installs this is.

- The full install (``pip install .`` in the repository, with its
  requirements): PyTorch, mmengine, mmcv and
  mmpretrain; everything works.
- The scoring-only install: mmclip without its dependencies plus numpy,
  Pillow, ftfy, regex and onnxruntime. It scores images with models exported
  to ONNX (:class:`mmclip.apis.OnnxCLIP`) and tokenizes text
  (:class:`mmclip.models.tokenizers.CLIPBPETokenizer` with
  ``return_tensors='np'``); ``import mmclip``, ``mmclip.models`` and
  ``mmclip.apis`` then import only those parts.

This module imports nothing but the standard library, so every package
``__init__`` can ask it before importing torch.
"""
from functools import lru_cache
from typing import Optional


@lru_cache(maxsize=None)
def torch_import_error() -> Optional[ImportError]:
    """Why ``import torch`` fails here, or None when it works.

    Returns:
        ImportError | None: The error, kept for the message of
        :func:`torch_required`.
    """
    try:
        import torch  # noqa: F401
    except ImportError as err:
        return err
    return None


def has_torch() -> bool:
    """Whether PyTorch imports (the full install)."""
    return torch_import_error() is None


def torch_required(what: str) -> ImportError:
    """The error for using ``what`` in the scoring-only install.

    Args:
        what (str): The name that needs PyTorch, e.g.
            ``'mmclip.apis.get_model'``.

    Returns:
        ImportError: Naming ``what``, why torch does not import, and what
        works without it.
    """
    return ImportError(
        f'{what} needs PyTorch, which does not import here '
        f'({torch_import_error()}). Install the full stack (`pip install '
        '-r requirements/runtime.txt -r requirements/mminstall.txt` in '
        "mmclip's repository), or score exported models without it: "
        "mmclip.apis.OnnxCLIP('EXPORT_DIR').predict(images, texts).")
