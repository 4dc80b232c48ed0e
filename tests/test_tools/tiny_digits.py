"""A few of scikit-learn's digits written as
:func:`mmclip.datasets.digits.prepare_digits` writes them (same images,
captions and files), in a second instead of the full set's ~15 s: data for
tests that run the real tools."""
import csv
import os
import os.path as osp

from conftest import REPO_ROOT
from mmclip.datasets.digits import (CLASSNAMES, TRAIN_TEMPLATES, digit_image,
                                    train_caption)


def write_tiny_digits(root: str, num_train: int, num_val: int) -> str:
    """Write ``train.csv`` (the first ``num_train`` digits, captioned and
    labelled),
    ``val.csv`` (the next ``num_val``, labelled), ``classnames.txt`` and
    ``images/`` to ``root``.

    Returns:
        str: ``root``, the ``data_root`` of the digits configs.
    """
    from sklearn.datasets import load_digits
    os.makedirs(osp.join(root, 'images'), exist_ok=True)
    digits = load_digits()
    train, val = [('filepath', 'title', 'label')], [('filepath', 'label')]
    for i in range(num_train + num_val):
        rel, label = f'images/{i:04d}.png', int(digits.target[i])
        digit_image(digits.images[i], 32, 'bilinear').save(
            osp.join(root, rel))
        if i < num_train:
            template = TRAIN_TEMPLATES[i % len(TRAIN_TEMPLATES)]
            train.append((rel, train_caption(label, template), label))
        else:
            val.append((rel, label))
    for name, rows in (('train.csv', train), ('val.csv', val)):
        with open(osp.join(root, name), 'w', newline='') as f:
            csv.writer(f).writerows(rows)
    with open(osp.join(root, 'classnames.txt'), 'w') as f:
        f.write('\n'.join(CLASSNAMES) + '\n')
    return root


#: The digits pretraining config the helpers derive from.
TRAIN_CONFIG = osp.join(REPO_ROOT, 'configs', 'clip',
                        'clip_vit-tiny-p8_1xb32-24e_digits-32px.py')


def digits_train_config(folder, data_root: str, batch_size: int,
                        max_epochs: int = 2) -> str:
    """Write ``{folder}/digits_bs{batch_size}.py``: the digits config on
    ``data_root`` without random augmentation, ``batch_size`` per process,
    ``max_epochs`` epochs at a cosine learning rate, a checkpoint at the end
    and every iteration's image paths and loss recorded per rank
    (``record_batches_hook``; its folder must be on ``PYTHONPATH``).

    Returns:
        str: The config path.
    """
    path = osp.join(str(folder), f'digits_bs{batch_size}.py')
    with open(path, 'w') as f:
        f.write(f'''_base_ = [{TRAIN_CONFIG!r}]
custom_imports = dict(imports=['record_batches_hook'],
                      allow_failed_imports=False)
custom_hooks = _base_.custom_hooks + [dict(type='RecordBatchesHook')]
train_dataloader = dict(batch_size={batch_size}, dataset=dict(
    data_root={data_root!r},
    pipeline=[dict(type='SampleCaption'),
              dict(type='TokenizeText', context_length=32),
              dict(type='LoadImageRGB'),
              dict(type='PackImageText')]))
max_epochs = {max_epochs}
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, begin=0,
                        end=max_epochs, T_max=max_epochs,
                        convert_to_iter_based=True)]
default_hooks = dict(logger=dict(interval=1),
                     checkpoint=dict(interval=max_epochs))
''')
    return path
