# Zero-shot COCO 5k image <-> text retrieval with OpenAI CLIP ViT-B/32.
# Run: python tools/test.py THIS_CONFIG CHECKPOINT (CHECKPOINT converted with
# tools/model_converters/clip_to_mmclip.py). Data: see
# ../_base_/datasets/coco_caption_retrieval.py.
_base_ = [
    '../_base_/models/clip_vit-base-p32.py',
    '../_base_/datasets/coco_caption_retrieval.py',
    '../_base_/default_runtime.py',
]
model = dict(predict_head=dict(type='ImageTextRetrievalHead'))
