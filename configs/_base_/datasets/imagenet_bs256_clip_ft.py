# ImageNet-1k for fine-tuning a CLIP image tower: train with FT-CLIP's
# augmentation (arXiv 2212.06138, its timm pipeline): random resized crop
# (area 0.08-1, bicubic), horizontal flip, RandAugment m9-mstd0.5 (2 ops,
# timm's "increasing" policies), random erasing with p=0.25; no Mixup or
# CutMix. Validation and test: the base's CLIP preprocessing (short side to
# img_size, centre crop). Normalisation (OpenAI mean/std) happens in the
# model's data preprocessor; the fill values below are that mean/std in BGR
# order, as images are loaded BGR.
# Other resolutions: set the crop size of train_pipeline[1] and the base's
# ResizeEdge/CenterCrop again (see the 384px fine-tune configs).
_base_ = './imagenet_bs32_clip.py'
img_size = 224
bgr_mean = [0.40821073 * 255, 0.4578275 * 255, 0.48145466 * 255]
bgr_std = [0.27577711 * 255, 0.26130258 * 255, 0.26862954 * 255]

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='RandomResizedCrop',
        scale=img_size,
        backend='pillow',
        interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(
        type='RandAugment',
        policies='timm_increasing',
        num_policies=2,
        total_level=10,
        magnitude_level=9,
        magnitude_std=0.5,
        hparams=dict(
            pad_val=[round(x) for x in bgr_mean], interpolation='bicubic')),
    dict(
        type='RandomErasing',
        erase_prob=0.25,
        mode='rand',
        min_area_ratio=0.02,
        max_area_ratio=1 / 3,
        fill_color=bgr_mean,
        fill_std=bgr_std),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=256,
    num_workers=8,
    persistent_workers=True,
    dataset=dict(
        type=_base_.dataset_type,
        data_root=_base_.data_root,
        split='train',
        pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
)
val_dataloader = _base_.test_dataloader
val_evaluator = _base_.test_evaluator
val_cfg = dict()
