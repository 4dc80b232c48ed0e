# Your own image-caption pairs, for fine-tuning a pretrained CLIP, and a
# labelled held-out set that validation scores zero-shot (`zero_shot_head`
# below; a config plugs it in with model = dict(predict_head=...)):
#   data/captions/train.csv       filepath,title (open_clip's CSV columns)
#   data/captions/images/...      the images (paths relative to data_root)
#   data/captions/val.csv         filepath,label (index into classnames.txt)
#   data/captions/classnames.txt  one class name per line
# A .tsv (tab-separated) or .jsonl ({"filepath": ..., "title": ...} a line)
# annotation file reads the same; other column names: img_key=...,
# caption_key=... in train_dataloader.dataset. A caption file without any
# caption stops the run before it starts, naming the fix.
# webdataset shards as img2dataset writes them (KEY.jpg + KEY.txt) instead:
#   train_dataloader = dict(
#       sampler=None, collate_fn=dict(type='default_collate'),
#       dataset=dict(_delete_=True, type='WebDatasetShards',
#                    shards='data/captions/{00000..00099}.tar',
#                    num_samples=N, batch_size=64, pipeline=train_pipeline))
# A labelled folder (a subfolder per class, classnames.txt listing them in
# sorted order) instead of val.csv:
#   val_dataloader = dict(dataset=dict(
#       _delete_=True, type='CustomDataset', data_root='data/captions/val',
#       pipeline=test_pipeline, test_mode=True))
data_root = 'data/captions'
# open_clip's training augmentation (random resized crop, area 0.9-1).
_base_ = ['./clip_caption_pipeline_224px.py']
img_size = _base_.img_size
train_pipeline = _base_.train_pipeline
# OpenAI's evaluation preprocessing: short side to img_size (bicubic), centre
# crop; mean/std are the model's data preprocessor's.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=img_size, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=img_size),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=64,
    num_workers=8,
    persistent_workers=True,
    collate_fn=dict(type='default_collate'),
    pin_memory=True,
    dataset=dict(
        type='ImageTextDataset',
        data_root=data_root,
        ann_file='train.csv',
        pipeline=train_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=True),
    # Equal batches: the contrastive loss sees as many negatives every step.
    drop_last=True,
)
val_dataloader = dict(
    batch_size=64,
    num_workers=4,
    dataset=dict(
        type='CsvClassificationDataset',
        data_root=data_root,
        ann_file='val.csv',
        classes=data_root + '/classnames.txt',
        pipeline=test_pipeline,
        test_mode=True),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
val_evaluator = dict(type='Accuracy', topk=(1, 5))
val_cfg = dict()
test_dataloader = val_dataloader
test_evaluator = val_evaluator
test_cfg = dict()
# Your class names x prompt templates (OpenAI's 7 ImageNet templates; your
# own: templates='data/captions/templates.txt', one with {} a line), scored
# with the model's temperature; rebuilt at every validation, as the text
# tower changes, so not cached on disk.
zero_shot_head = dict(
    type='ZeroShotClsHead', classnames=data_root + '/classnames.txt',
    templates='openai_imagenet_7', scale='learned', cache_dir=None)
