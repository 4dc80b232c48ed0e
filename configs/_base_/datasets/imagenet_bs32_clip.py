# ImageNet-1k val (mmpretrain's layout under data/imagenet: val/,
# meta/val.txt) with OpenAI's CLIP preprocessing: shortest side to img_size
# (bicubic, PIL), center crop img_size x img_size. Not mmpretrain's zero-shot
# squash to 224x224, which costs points. Normalisation happens in the model's
# data preprocessor (OpenAI mean/std).
# Other resolutions: mmengine resolves `img_size` inside this file, so a
# config at another size sets it again and resizes the pipeline's ResizeEdge
# and CenterCrop (see clip_vit-large-p14_zeroshot-cls_in1k-336px.py).
dataset_type = 'ImageNet'
data_root = 'data/imagenet'
img_size = 224

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='ResizeEdge',
        scale=img_size,
        edge='short',
        backend='pillow',
        interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=img_size),
    dict(type='PackInputs'),
]

test_dataloader = dict(
    batch_size=32,
    num_workers=4,
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='val',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
test_evaluator = dict(type='Accuracy', topk=(1, 5))
test_cfg = dict()
