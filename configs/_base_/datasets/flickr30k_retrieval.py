# Flickr30k image-text retrieval, Karpathy 1k test split (1000 images, 5000
# captions), with OpenAI's CLIP evaluation preprocessing.
# Flickr30k is read through CocoCaptionDataset, so its annotations must be in
# the COCO captions layout: {"images": [{id, file_name}], "annotations":
# [{image_id, caption}]}. Convert Karpathy's dataset_flickr30k.json by keeping
# the images with "split": "test", writing {"id": imgid, "file_name":
# filename} for each and {"image_id": imgid, "caption": raw} for each of its
# 5 sentences; images live in data_root/flickr30k-images/.
data_root = 'data/flickr30k'
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
        ann_file='annotations/flickr30k_karpathy_test_captions.json',
        data_prefix=dict(img_path='flickr30k-images'),
        test_mode=True,
        pipeline=test_pipeline),
    sampler=dict(type='DefaultSampler', shuffle=False),
)
test_evaluator = dict(type='ImageTextRetrievalMetric')
test_cfg = dict()
