# Zero-shot evaluation of the tiny digits CLIP on the held-out digits:
# class names ``zero``..``nine`` x the zero-shot templates that training
# captions never contain (mmclip.datasets.digits.ZERO_SHOT_TEMPLATES).
#   python tools/dataset_converters/prepare_digits.py data/digits
#   python tools/train.py \
#       configs/clip/clip_vit-tiny-p8_1xb32-24e_digits-32px.py
#   python tools/test.py \
#       configs/clip/clip_vit-tiny-p8_zeroshot-cls_digits-32px.py \
#       work_dirs/clip_vit-tiny-p8_1xb32-24e_digits-32px/epoch_24.pth
_base_ = ['./clip_vit-tiny-p8_1xb32-24e_digits-32px.py']
model = dict(
    predict_head=dict(
        type='ZeroShotClsHead', classnames='digits', templates='digits',
        # Trained from scratch, its temperature is its own (~14 after 24
        # epochs), not OpenAI's 100: calibrated probabilities.
        scale='learned'))

test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=32, edge='short', interpolation='bicubic',
         backend='pillow'),
    dict(type='CenterCrop', crop_size=32),
    dict(type='PackInputs'),
]
test_dataloader = dict(
    batch_size=64,
    num_workers=0,
    dataset=dict(
        type='CsvClassificationDataset',
        data_root='data/digits',
        ann_file='val.csv',
        classes='data/digits/classnames.txt',
        pipeline=test_pipeline,
        test_mode=True),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
test_evaluator = dict(type='Accuracy', topk=(1, 5))
# Evaluation only: drop the training hooks (temperature clamp, RNG state,
# curves) of the pretraining runtime.
custom_hooks = [dict(type='PlainCheckpointHook')]
test_cfg = dict()
