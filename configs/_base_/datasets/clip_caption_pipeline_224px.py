# open_clip's training augmentation for image-caption pairs at 224 px, shared
# by the caption datasets (CC3M shards, your own captions): random resized
# crop (area 0.9-1, bicubic); the caption is drawn and tokenized once, in the
# loader. A dataset base inherits it and uses _base_.train_pipeline.
img_size = 224
train_pipeline = [
    dict(type='SampleCaption'),
    dict(type='TokenizeText'),
    # Large JPEGs decode at a reduced DCT scale, still >= 2x the crop side.
    dict(type='LoadImageRGB', decode_min_side=2 * img_size),
    dict(type='RandomResizedCrop', scale=img_size,
         crop_ratio_range=(0.9, 1.0), interpolation='bicubic',
         backend='pillow'),
    dict(type='PackImageText'),
]
