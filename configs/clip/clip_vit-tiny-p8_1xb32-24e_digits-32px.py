# A tiny CLIP trained from scratch on scikit-learn's handwritten digits, in a
# few minutes on 2 CPU cores. Zero-shot accuracy on the held-out digits uses
# prompts the training captions never contain verbatim
# (mmclip.datasets.digits.ZERO_SHOT_TEMPLATES); `make demo` prints it.
#   python tools/dataset_converters/prepare_digits.py data/digits
#   python tools/train.py \
#       configs/clip/clip_vit-tiny-p8_1xb32-24e_digits-32px.py
_base_ = [
    '../_base_/schedules/clip_pretrain_adamw_cosine.py',
    '../_base_/pretrain_runtime.py',
]
context_length = 32  # digit captions are ~10 tokens
model = dict(
    _scope_='mmclip',  # see configs/_base_/models/clip_vit-base-p32.py
    type='CLIPModel',
    vision_backbone=dict(
        type='CLIPVisionTransformer',
        arch=dict(embed_dims=128, num_layers=4, num_heads=4, proj_dims=64),
        img_size=32,
        patch_size=8,
        act_cfg=dict(type='GELU')),
    text_encoder=dict(
        type='CLIPTextTransformer',
        arch=dict(embed_dims=128, num_layers=3, num_heads=4, proj_dims=64),
        context_length=context_length,
        act_cfg=dict(type='GELU')),
    tokenizer=dict(type='CLIPBPETokenizer', context_length=context_length),
    head=dict(type='CLIPContrastiveHead'),
)

data_root = 'data/digits'
train_pipeline = [
    dict(type='SampleCaption'),
    dict(type='TokenizeText', context_length=context_length),
    dict(type='LoadImageRGB'),
    dict(type='RandomResizedCrop', scale=32, crop_ratio_range=(0.9, 1.0),
         interpolation='bicubic', backend='pillow'),
    dict(type='PackImageText'),
]
# Evaluation preprocessing (mmclip.apis.preprocess_images, zero-shot).
test_pipeline = [
    dict(type='ResizeEdge', scale=32, edge='short', interpolation='bicubic',
         backend='pillow'),
    dict(type='CenterCrop', crop_size=32),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=32,  # small batches: fewer same-digit false negatives
    num_workers=0,  # 2 cores: the model needs both; exact resume on CPU
    dataset=dict(
        type='ImageTextDataset',
        data_root=data_root,
        ann_file='train.csv',
        pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
    drop_last=True,
)

# CPU, fp32: bf16 autocast is ~300x slower on CPUs without AVX-512.
max_epochs = 24
optim_wrapper = dict(
    type='NonFiniteSkipOptimWrapper',
    _delete_=True,
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.98), eps=1e-6,
                   weight_decay=0.1),
    paramwise_cfg={{_base_.optim_wrapper.paramwise_cfg}},
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=1,
         end=max_epochs, T_max=max_epochs - 1, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1000)
# The learning rate above is for a global batch of 32 (1 process x 32);
# `--auto-scale-lr` rescales it linearly for other batch sizes.
auto_scale_lr = dict(base_batch_size=32)
default_hooks = dict(
    logger=dict(interval=5),
    checkpoint=dict(interval=4, max_keep_ckpts=2))
randomness = dict(seed=0)
