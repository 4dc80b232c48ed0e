# Caption fine-tuning on a CPU: the tiny digits CLIP (its pretraining
# checkpoint stands in for converted OpenAI weights) learns coloured shapes
# from captions ("a small red triangle"), concepts it never saw, with the
# contrastive loss it was pretrained with, 450 of its digits captions
# replayed among the shapes' so that it keeps what it knew. Validation is
# zero-shot on the held-out shapes, with prompts no caption uses. The
# recipe of the B/32 and B/16 caption fine-tunes
# (clip_vit-base-p32_caption-ft-8xb64-amp-10e_custom)
# scaled to this model: AdamW, warm-up then cosine, weight decay 0.1, the
# learning rate a third of the pretraining's.
#   python tools/dataset_converters/prepare_digits.py data/digits
#   python tools/train.py \
#       configs/clip/clip_vit-tiny-p8_1xb32-24e_digits-32px.py
#   python tools/dataset_converters/prepare_shapes.py data/shapes
#   python tools/train.py \
#       configs/clip/clip_vit-tiny-p8_caption-ft-1xb32-5e_shapes-32px.py
#   python tools/test.py \
#       configs/clip/clip_vit-tiny-p8_caption-ft-1xb32-5e_shapes-32px.py \
#       work_dirs/clip_vit-tiny-p8_caption-ft-1xb32-5e_shapes-32px/epoch_5.pth
# What the digits CLIP still knows: the same checkpoint with
# clip_vit-tiny-p8_zeroshot-cls_digits-32px.py. Numbers: docs/own_data.md.
_base_ = ['./clip_vit-tiny-p8_zeroshot-cls_digits-32px.py']
load_from = 'work_dirs/clip_vit-tiny-p8_1xb32-24e_digits-32px/epoch_24.pth'
model = dict(
    # Locking (LiT and partial): frozen_stages=4 locks every block of the
    # 4-block image tower plus its projection; 4 - N leaves the top N
    # blocks, ln_post and proj trainable. The text tower alike (3 blocks).
    vision_backbone=dict(frozen_stages=-1),
    text_encoder=dict(frozen_stages=-1),
    # The text tower changes at every step: no disk cache.
    predict_head=dict(
        classnames='shapes', templates='shapes', cache_dir=None))

data_root = 'data/shapes'
# Replay: some pretraining-like pairs among the new ones (here the first
# 450 of the digits' training images, a third of an epoch's pairs) keep the
# digits within a point of the pretrained model's; without them the
# digits lose 20+ points for the same gain on the shapes (docs/own_data.md).
shapes_captions = dict(_base_.train_dataloader.dataset, data_root=data_root)
replayed_captions = dict(_base_.train_dataloader.dataset, indices=450)
train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ConcatDataset',
        datasets=[shapes_captions, replayed_captions]))
# The digits' zero-shot test loader on the held-out shapes.
test_dataloader = dict(
    _base_.test_dataloader,
    dataset=dict(
        _base_.test_dataloader.dataset,
        data_root=data_root,
        classes=data_root + '/classnames.txt'))
val_dataloader = test_dataloader
val_evaluator = _base_.test_evaluator
val_cfg = dict()

max_epochs = 5
optim_wrapper = dict(optimizer=dict(lr=3e-4, weight_decay=0.1))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=0., by_epoch=True, begin=1,
         end=max_epochs, T_max=max_epochs - 1, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=1))
# The pretraining runtime's hooks (temperature clamp, RNG state, curves).
custom_hooks = [
    dict(type='PlainCheckpointHook'),
    dict(type='LogitScaleClampHook'),
    dict(type='RNGStateHook'),
    dict(type='TrainingCurveHook'),
]
