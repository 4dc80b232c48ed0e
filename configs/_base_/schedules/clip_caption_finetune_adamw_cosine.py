# Caption fine-tuning schedule: pretraining's contrastive loss, from
# pretrained weights, at a small learning rate so that what the model knows
# survives. FLYP's ImageNet fine-tune of OpenAI's ViT-B/16 (its README):
# AdamW lr 1e-5, weight decay 0.1, batch 512, 10 epochs, cosine; open_clip
# users' fine-tunes use the same range (lr 1e-5 at batch 512, open_clip
# #1070; 5e-6 at batch 3000, #806; weight decay 0.1 in both, below
# pretraining's 0.2, which pulls harder away from the pretrained weights).
# Kept from pretraining: betas (0.9, 0.98), eps 1e-6, no decay on norms,
# biases, embeddings and the temperature, bf16. Warm-up: 1 epoch, linear (a
# fixed step count, FLYP's 500, would outlast a small dataset's run).
_base_ = './clip_pretrain_adamw_cosine.py'
optim_wrapper = dict(optimizer=dict(lr=1e-5, weight_decay=0.1))
max_epochs = 10
warmup_epochs = 1
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=0., by_epoch=True,
         begin=warmup_epochs, end=max_epochs,
         T_max=max_epochs - warmup_epochs, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
# The learning rate above is for a global batch of 512 (8 GPUs x 64);
# `--auto-scale-lr` rescales it linearly for other batch sizes.
auto_scale_lr = dict(base_batch_size=512, enable=False)
