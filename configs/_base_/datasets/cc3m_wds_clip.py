# Conceptual Captions 3M as webdataset tar shards written by img2dataset
# (KEY.jpg + KEY.txt), streamed and split across ranks x dataloader workers.
# CSV/TSV instead: dataset=dict(type='ImageTextDataset', ann_file=...,
# data_root=...) with sampler=dict(type='DefaultSampler', shuffle=True).
_base_ = ['./clip_caption_pipeline_224px.py']
train_pipeline = _base_.train_pipeline
batch_size = 512  # per GPU
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=8,
    persistent_workers=True,
    # One (B, 3, H, W) uint8 batch in page-locked memory: the data
    # preprocessor copies it to the GPU once and normalises it in three
    # kernels, instead of one copy and three kernels per image (mmengine's
    # default pseudo_collate keeps a list).
    collate_fn=dict(type='default_collate'),
    pin_memory=True,
    sampler=None,  # an IterableDataset: the dataset shards itself
    dataset=dict(
        type='WebDatasetShards',
        shards='data/cc3m/{00000..00331}.tar',
        num_samples=2_800_000,  # samples per epoch, over all ranks
        batch_size=batch_size,
        pipeline=train_pipeline),
)
