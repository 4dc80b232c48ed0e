# COCO image-text retrieval, Karpathy 5k test split (5000 images, ~25k
# captions), with OpenAI's CLIP evaluation preprocessing.
# The annotation file must be in the COCO captions layout that
# CocoCaptionDataset reads: {"images": [{id, file_name}],
# "annotations": [{image_id, caption}]}. Karpathy's dataset_coco.json is
# converted by tools/dataset_converters/karpathy_to_coco_captions.py (one
# "images" entry per test image, file_name relative to data_root, e.g.
# "val2014/COCO_val2014_000000391895.jpg", and one "annotations" entry per
# sentence's "raw" text).
data_root = 'data/coco'
img_size = 224
test_pipeline = [
    dict(type='TokenizeText'),  # all K captions -> text_ids (K, 77)
    dict(type='LoadImageRGB'),
    dict(type='ResizeEdge', scale=img_size, edge='short',
         interpolation='bicubic', backend='pillow'),
    dict(type='CenterCrop', crop_size=img_size),
    dict(type='PackImageText'),
]
test_dataloader = dict(
    batch_size=64,
    num_workers=4,
    dataset=dict(
        type='CocoCaptionDataset',
        data_root=data_root,
        ann_file='annotations/coco_karpathy_test_captions.json',
        data_prefix=dict(img_path=''),
        test_mode=True,
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
# Recall@1/5/10 both ways and mean / median ranks; ties count against the
# correct item (see mmclip/evaluation/metrics/retrieval.py).
test_evaluator = dict(type='ImageTextRetrievalMetric')
test_cfg = dict()
