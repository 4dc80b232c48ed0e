# Zero-shot COCO 5k image <-> text retrieval with OpenAI CLIP ViT-B/32.
# Data: see ../_base_/datasets/coco_caption_retrieval.py.
#   python tools/model_converters/clip_to_mmclip.py ViT-B-32.pt \
#       checkpoints/vit-b-32_openai.pth
#   python tools/test.py \
#       configs/clip/clip_vit-base-p32_retrieval_coco.py \
#       checkpoints/vit-b-32_openai.pth
_base_ = [
    '../_base_/models/clip_vit-base-p32.py',
    '../_base_/datasets/coco_caption_retrieval.py',
    '../_base_/default_runtime.py',
]
model = dict(predict_head=dict(type='ImageTextRetrievalHead'))
