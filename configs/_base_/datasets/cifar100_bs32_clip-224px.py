# CIFAR-100 test split for zero-shot CLIP: the 32x32 images resized to
# 224x224 (bicubic, PIL; square images, so no crop is needed).
# mmpretrain's CIFAR100 yields RGB arrays (not mmcv's BGR): configs using this
# file must set the model's data preprocessor to ``to_rgb=False``.
dataset_type = 'CIFAR100'
data_root = 'data/cifar100'
img_size = 224

# OpenAI's preprocessing (short side bicubic + center crop); for CIFAR's
# square 32x32 images this is a plain bicubic upscale to 224x224.
test_pipeline = [
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
        split='test',
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
test_evaluator = dict(type='Accuracy', topk=(1, 5))
test_cfg = dict()
