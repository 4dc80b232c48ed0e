"""The files mmclip's preparation tools write (the digits, the shapes):
CSV tables, and the ``meta.json`` that marks an output folder as complete
and current, so that running a tool again with the same arguments does
nothing."""
import csv
import json
import os.path as osp
from typing import Optional, Sequence

#: The marker file, written last by :func:`write_meta`.
META_FILE = 'meta.json'


def write_csv(path: str, header: Sequence[str], rows) -> None:
    """Write ``header`` and ``rows`` as a comma-separated file.

    Args:
        path (str): Output file.
        header (Sequence[str]): Column names.
        rows (Iterable[Sequence]): One sequence of values per record.
    """
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def write_lines(path: str, lines: Sequence[str]) -> None:
    """Write ``lines`` one per line (class names, templates)."""
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines) + '\n')


def current_meta(out_dir: str, args: dict,
                 files: Sequence[str]) -> Optional[dict]:
    """The ``meta.json`` of ``out_dir`` if it was written with ``args`` and
    every one of ``files`` is there, else None (the data must be written).

    Args:
        out_dir (str): The output folder.
        args (dict): The arguments of the wanted data (a format version
            included, so that a changed writer rewrites old folders).
        files (Sequence[str]): Files, relative to ``out_dir``, that a
            complete folder holds.

    Returns:
        dict | None: The stored meta, or None.
    """
    path = osp.join(out_dir, META_FILE)
    if not osp.isfile(path):
        return None
    with open(path) as f:
        meta = json.load(f)
    if meta.get('args') != args or not all(
            osp.isfile(osp.join(out_dir, n)) for n in files):
        return None
    return meta


def write_meta(out_dir: str, meta: dict) -> None:
    """Write ``meta`` (with the ``args`` :func:`current_meta` compares) to
    ``out_dir/meta.json``; call it last, once every file is written, so an
    interrupted run leaves no marker."""
    with open(osp.join(out_dir, META_FILE), 'w') as f:
        json.dump(meta, f, indent=2)


def prepared_summary(out_dir: str, meta: dict, what: str = '') -> str:
    """The line a preparation tool prints: the counts of ``meta`` (as the
    preparation functions return it) and whether the folder was written or
    already up to date, e.g. ``'data/digits: 1438 train / 359 val images,
    written.'``.

    Args:
        out_dir (str): The output folder.
        meta (dict): With ``num_train``, ``num_val`` and ``skipped``.
        what (str): Words after "images", e.g. ``' of 16 classes'``.
            Defaults to ``''``.
    """
    state = 'already up to date' if meta['skipped'] else 'written'
    return (f'{out_dir}: {meta["num_train"]} train / {meta["num_val"]} '
            f'val images{what}, {state}.')
