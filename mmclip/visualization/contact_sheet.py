"""A contact sheet: the hits of a search as one PNG, a grid of thumbnails
with each hit's rank, similarity and file name."""
import os
import os.path as osp
from typing import Callable, List, Optional, Sequence

from PIL import Image, ImageDraw, ImageFont, ImageOps

from .prediction_panel import shorten_label

_BACKGROUND = (255, 255, 255)
_MISSING = (225, 225, 225)
_TEXT = (30, 30, 30)


def _thumbnail(load: Callable[[dict], Image.Image], hit: dict,
               size: int) -> Image.Image:
    """``size`` x ``size`` thumbnail of the hit's image (letterboxed), or a
    grey tile saying why it could not be read."""
    tile = Image.new('RGB', (size, size), _BACKGROUND)
    try:
        image = ImageOps.exif_transpose(load(hit)).convert('RGB')
    except Exception as err:  # a file deleted or broken since indexing
        tile.paste(_MISSING, (0, 0, size, size))
        ImageDraw.Draw(tile).multiline_text(
            (6, 6), 'cannot read:\n' + shorten_label(str(err), 22, 4),
            fill=_TEXT, font=ImageFont.load_default())
        return tile
    image = ImageOps.contain(image, (size, size))  # small ones scaled up
    tile.paste(image, ((size - image.width) // 2, (size - image.height) // 2))
    return tile


def draw_contact_sheet(hits: Sequence[dict],
                       load: Callable[[dict], Image.Image],
                       title: Optional[str] = None,
                       columns: int = 5,
                       thumb_size: int = 192) -> Image.Image:
    """The hits as a grid, best first, left to right.

    Args:
        hits (Sequence[dict]): Search hits with ``image_path`` and
            ``similarity`` (as :meth:`mmclip.apis.ImageSearch.query` returns).
        load (callable): ``hit -> PIL.Image``; a failure draws a grey tile
            naming the error instead of stopping.
        title (str, optional): A line above the grid (e.g. the query).
            Defaults to None.
        columns (int): Thumbnails per row. Defaults to 5.
        thumb_size (int): Side of each thumbnail in pixels. Defaults to 192.

    Returns:
        PIL.Image.Image: The sheet, RGB.
    """
    font = ImageFont.load_default()
    columns = max(1, min(columns, len(hits) or 1))
    rows = max(1, -(-len(hits) // columns))
    pad, caption_h = 8, 30
    title_h = 24 if title else 0
    cell_w, cell_h = thumb_size + pad, thumb_size + caption_h + pad
    sheet = Image.new('RGB', (pad + columns * cell_w,
                              pad + title_h + rows * cell_h), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((pad, pad), shorten_label(title, 100, 1), fill=_TEXT,
                  font=font)
    if not hits:
        draw.text((pad, pad + title_h), 'no results', fill=_TEXT, font=font)
    for rank, hit in enumerate(hits):
        x = pad + (rank % columns) * cell_w
        y = pad + title_h + (rank // columns) * cell_h
        sheet.paste(_thumbnail(load, hit, thumb_size), (x, y))
        name = osp.basename(str(hit.get('image_path', '')).split('::')[-1])
        draw.text((x, y + thumb_size + 2),
                  f"#{rank + 1}  {hit.get('similarity', float('nan')):.3f}",
                  fill=_TEXT, font=font)
        draw.text((x, y + thumb_size + 15),
                  shorten_label(name, max(8, thumb_size // 7), 1),
                  fill=_TEXT, font=font)
    return sheet


def save_contact_sheet(hits: List[dict], load: Callable[[dict], Image.Image],
                       out_file: str, **kwargs) -> str:
    """Draw :func:`draw_contact_sheet` and save it as ``out_file`` (PNG;
    parent folders created). Returns ``out_file``."""
    folder = osp.dirname(osp.abspath(out_file))
    os.makedirs(folder, exist_ok=True)
    draw_contact_sheet(hits, load, **kwargs).save(out_file)
    return out_file
