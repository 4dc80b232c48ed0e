# CLIP pretraining schedule (CLIP paper / open_clip recipes): AdamW with
# beta2 0.98 and eps 1e-6, weight decay 0.2 on weight matrices only (none on
# norms, biases, embeddings, the temperature), linear warm-up then cosine,
# bf16 autocast. Steps with a non-finite loss are skipped and logged.
optim_wrapper = dict(
    type='NonFiniteSkipAmpOptimWrapper',
    dtype='bfloat16',
    optimizer=dict(
        type='AdamW', lr=5e-4, betas=(0.9, 0.98), eps=1e-6,
        weight_decay=0.2),
    paramwise_cfg=dict(
        norm_decay_mult=0.,
        bias_decay_mult=0.,
        flat_decay_mult=0.,
        custom_keys={
            'positional_embedding': dict(decay_mult=0.),
            'class_embedding': dict(decay_mult=0.),
            'token_embedding': dict(decay_mult=0.),
            'logit_scale': dict(decay_mult=0.),
            'logit_bias': dict(decay_mult=0.),
        }),
)
max_epochs = 32
warmup_epochs = 1
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=0., by_epoch=True,
         begin=warmup_epochs, end=max_epochs, T_max=max_epochs - warmup_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
# The learning rate above is for a global batch of 4096 (e.g. 8 GPUs x 512);
# `--auto-scale-lr` rescales it linearly for other batch sizes.
auto_scale_lr = dict(base_batch_size=4096, enable=False)
