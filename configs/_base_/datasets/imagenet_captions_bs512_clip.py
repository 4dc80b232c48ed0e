# ImageNet-1k train as image-caption pairs for contrastive pretraining
# ("ImageNet pretraining"): an image's caption is one of OpenAI's 80
# ImageNet prompt templates filled with the OpenAI name of its class, drawn
# anew at every step (ClassificationTextDataset + SampleCaption). Training
# augmentation as open_clip's: random resized crop (area 0.9-1, bicubic).
# Validation and test: ImageNet-1k val with the base's CLIP preprocessing,
# scored by `zero_shot_head` below; a config plugs it in with
#   model = dict(predict_head=_base_.zero_shot_head)
_base_ = './imagenet_bs32_clip.py'
img_size = 224
train_pipeline = [
    dict(type='SampleCaption'),
    dict(type='TokenizeText'),
    dict(type='LoadImageRGB'),
    dict(type='RandomResizedCrop', scale=img_size,
         crop_ratio_range=(0.9, 1.0), interpolation='bicubic',
         backend='pillow'),
    dict(type='PackImageText'),
]
train_dataloader = dict(
    batch_size=512,
    num_workers=8,
    persistent_workers=True,
    dataset=dict(
        type='ClassificationTextDataset',
        dataset=dict(
            type=_base_.dataset_type, data_root=_base_.data_root,
            split='train'),
        classnames='imagenet',
        templates='openai_imagenet',
        pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
    drop_last=True,
)
val_dataloader = _base_.test_dataloader
val_evaluator = _base_.test_evaluator
val_cfg = dict()
# OpenAI's names x 80 templates, scored with the model's own temperature
# (trained from scratch); rebuilt at every validation as the text tower
# changes, so not cached on disk.
zero_shot_head = dict(
    type='ZeroShotClsHead', classnames='imagenet',
    templates='openai_imagenet', scale='learned', cache_dir=None)
