# ImageNet-1k val with OpenAI's CLIP preprocessing at 336px: shortest side
# to 336 (bicubic, PIL), center crop 336x336.
_base_ = './imagenet_bs32_clip-224px.py'
img_size = 336
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
# Inherited dicts keep the 224px pipeline unless it is set again here.
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
