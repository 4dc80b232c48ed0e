# ImageNet-21k train as image-caption pairs: the ImageNet-1k base on a
# folder per class (data/imagenet21k/train/<wnid>/*.JPEG), whose class
# names, one per line in the folders' sorted order, are in
# data/imagenet21k/classnames.txt. Validation: zero-shot ImageNet-1k val.
# Scanning 14M files at start-up takes a while; an annotation file
# (`path label` per line, mmpretrain's format) set as
# train_dataloader.dataset.dataset.ann_file is faster.
_base_ = './imagenet_captions_bs512_clip.py'
train_dataloader = dict(
    dataset=dict(
        dataset=dict(
            _delete_=True,
            type='CustomDataset',
            data_root='data/imagenet21k',
            data_prefix='train'),
        classnames='data/imagenet21k/classnames.txt'))
