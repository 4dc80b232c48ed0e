# FLYP on the digits (flyp_vit-base-p16_8xb64-amp-10e_in1k.py's
# recipe at the tiny CLIP's scale): fine-tune the digits CLIP with its own
# contrastive loss on labelled digits, every image's caption one of the
# zero-shot templates filled with its class name (drawn anew every step),
# and classify with the zero-shot head of the same names x templates.
#   python tools/dataset_converters/prepare_digits.py data/digits
#   python tools/train.py \
#       configs/clip/clip_vit-tiny-p8_1xb32-24e_digits-32px.py
#   python tools/train.py \
#       configs/clip/flyp_vit-tiny-p8_1xb32-10e_digits-32px.py
#   python tools/test.py \
#       configs/clip/flyp_vit-tiny-p8_1xb32-10e_digits-32px.py \
#       work_dirs/flyp_vit-tiny-p8_1xb32-10e_digits-32px/epoch_10.pth
_base_ = ['./clip_vit-tiny-p8_zeroshot-cls_digits-32px.py']
# The class names x templates of the zero-shot head; rebuilt at every
# validation as the text tower trains, so not cached on disk.
model = dict(predict_head=dict(cache_dir=None))
load_from = 'work_dirs/clip_vit-tiny-p8_1xb32-24e_digits-32px/epoch_24.pth'

train_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='ClassificationTextDataset',
        # train.csv's `label` column, as the fine-tune config reads it
        dataset=dict(
            type='CsvClassificationDataset',
            data_root='data/digits',
            ann_file='train.csv',
            classes='data/digits/classnames.txt'),
        classnames='data/digits/classnames.txt',
        templates='digits',
        pipeline=_base_.train_pipeline))
val_dataloader = _base_.test_dataloader
val_evaluator = _base_.test_evaluator
val_cfg = dict()

max_epochs = 10
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',  # CPU, fp32 (see the pretraining config)
    optimizer=dict(type='AdamW', lr=1e-5, betas=(0.9, 0.999), eps=1e-8,
                   weight_decay=0.1),
)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-2, by_epoch=True, begin=0, end=1,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=0., by_epoch=True, begin=1,
         end=max_epochs, T_max=max_epochs - 1, convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=1)
auto_scale_lr = dict(base_batch_size=32, enable=False)
default_hooks = dict(checkpoint=dict(interval=5, max_keep_ckpts=1))
custom_hooks = [
    dict(type='PlainCheckpointHook'),
    dict(type='LogitScaleClampHook'),
]
