# Flickr30k image-text retrieval, Karpathy 1k test split (1000 images, 5000
# captions), with OpenAI's CLIP evaluation preprocessing: the COCO retrieval
# base with Flickr30k's files.
# Flickr30k is read through CocoCaptionDataset, so its annotations must be in
# the COCO captions layout: {"images": [{id, file_name}], "annotations":
# [{image_id, caption}]}: tools/dataset_converters/karpathy_to_coco_captions.py
# writes it from Karpathy's dataset_flickr30k.json (the "test" images, each
# sentence's "raw" text); images live in data_root/flickr30k-images/.
_base_ = ['./coco_caption_retrieval.py']
data_root = 'data/flickr30k'
# mmengine resolves a base's variables inside the base: name them again.
test_dataloader = dict(
    dataset=dict(
        data_root=data_root,
        ann_file='annotations/flickr30k_karpathy_test_captions.json',
        data_prefix=dict(img_path='flickr30k-images')))
