"""Tiny image / annotation / shard writers shared by the dataset tests."""
import io
import json
import os
import os.path as osp
import tarfile

import numpy as np
from mmengine.logging import MMLogger
from PIL import Image


def rgb_image(w=40, h=30, seed=0):
    rng = np.random.RandomState(seed)
    return Image.fromarray(rng.randint(0, 256, (h, w, 3), dtype=np.uint8))


def write_image(path, w=40, h=30, seed=0, fmt=None):
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    rgb_image(w, h, seed).save(path, format=fmt)
    return path


def encode(img: Image.Image, fmt='JPEG') -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def write_bytes(path, data: bytes):
    os.makedirs(osp.dirname(path) or '.', exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)
    return path


def odd_mode_files(root):
    """Write one file per odd mode; returns {name: path}."""
    files = {}
    cmyk = Image.new('CMYK', (24, 16), (0, 255, 255, 0))  # red in CMYK
    files['cmyk'] = write_bytes(osp.join(root, 'cmyk.jpg'), encode(cmyk))
    grey16 = np.zeros((16, 24), dtype=np.uint16)
    grey16[:, 12:] = 65535
    files['i16'] = osp.join(root, 'grey16.png')
    Image.fromarray(grey16).save(files['i16'])
    pal = Image.new('P', (24, 16), 0)
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    pal.paste(1, (12, 0, 24, 16))  # right half red, left half index 0
    files['palette_alpha'] = osp.join(root, 'palette.png')
    pal.save(files['palette_alpha'], transparency=0)  # index 0 transparent
    la = Image.new('LA', (24, 16), (50, 0))  # fully transparent
    files['la'] = osp.join(root, 'la.png')
    la.save(files['la'])
    rgba = Image.new('RGBA', (24, 16), (255, 0, 0, 255))
    files['rgba'] = osp.join(root, 'rgba.png')
    rgba.save(files['rgba'])
    files['grey'] = osp.join(root, 'grey.jpg')
    Image.new('L', (24, 16), 128).save(files['grey'])
    return files


def broken_files(root):
    """Write broken images; returns {name: path} (one is missing)."""
    good = encode(rgb_image(64, 64), 'JPEG')
    return dict(
        missing=osp.join(root, 'does_not_exist.jpg'),
        truncated=write_bytes(osp.join(root, 'truncated.jpg'),
                              good[:len(good) // 2]),
        random=write_bytes(osp.join(root, 'random.jpg'),
                           np.random.RandomState(0).bytes(500)),
        empty=write_bytes(osp.join(root, 'empty.jpg'), b''),
    )


def write_csv(path, rows, header=('filepath', 'title'), sep=','):
    import csv
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f, delimiter=sep)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_jsonl(path, records):
    with open(path, 'w') as f:
        for r in records:
            f.write(json.dumps(r) + '\n')
    return path


def write_shard(path, samples):
    """samples: list of (key, {ext: bytes | str}) written in order."""
    with tarfile.open(path, 'w') as tar:
        for key, members in samples:
            for ext, data in members.items():
                if isinstance(data, str):
                    data = data.encode('utf-8')
                info = tarfile.TarInfo(f'{key}.{ext}')
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def logger_to(tmp_path, name):
    """Make a fresh current MMLogger writing to a file; returns its path."""
    log_file = str(tmp_path / f'{name}.log')
    MMLogger.get_instance(name, log_file=log_file, log_level='INFO')
    return log_file


def read_log(log_file):
    for handler in MMLogger.get_current_instance().handlers:
        handler.flush()
    with open(log_file) as f:
        return f.read()
