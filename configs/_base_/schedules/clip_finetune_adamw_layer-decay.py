# FT-CLIP's fine-tuning schedule ("CLIP itself is a strong fine-tuner",
# arXiv 2212.06138; LightDXY/FT-CLIP scripts/bash_fine_Openai_CLIP_P16.sh):
# AdamW, lr 6e-4 for a global batch of 2048, weight decay 0.05 on weight
# matrices only (none on norms, biases, class and position embeddings),
# layer-wise lr decay 0.6 through mmpretrain's constructor (the head gets the
# lr, block i of 12 gets 0.6 ** (12 - i) of it, the patch embedding 0.6 **
# 13), 10 epochs of linear warm-up from 1e-6 then cosine down to 1e-6 (both
# as ratios of each layer's lr), 50 epochs, bf16 autocast, no gradient
# clipping.
lr = 6e-4
optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(
        type='AdamW', lr=lr, betas=(0.9, 0.999), eps=1e-8,
        weight_decay=0.05),
    constructor='LearningRateDecayOptimWrapperConstructor',
    paramwise_cfg=dict(
        layer_decay_rate=0.6,
        norm_decay_mult=0.,
        bias_decay_mult=0.,
        flat_decay_mult=0.,
        custom_keys={
            'class_embedding': dict(decay_mult=0.),
            'positional_embedding': dict(decay_mult=0.),
        }),
)
max_epochs = 50
warmup_epochs = 10
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6 / lr, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min_ratio=1e-6 / lr, by_epoch=True,
         begin=warmup_epochs, end=max_epochs, T_max=max_epochs - warmup_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
# The learning rate above is for a global batch of 2048 (8 GPUs x 256);
# `--auto-scale-lr` rescales it linearly for other batch sizes.
auto_scale_lr = dict(base_batch_size=2048, enable=False)
