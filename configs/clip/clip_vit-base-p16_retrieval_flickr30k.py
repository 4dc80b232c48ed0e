# Zero-shot Flickr30k 1k image <-> text retrieval with OpenAI CLIP ViT-B/16.
# Data: see ../_base_/datasets/flickr30k_retrieval.py.
#   python tools/model_converters/clip_to_mmclip.py ViT-B-16.pt \
#       checkpoints/vit-b-16_openai.pth
#   python tools/test.py \
#       configs/clip/clip_vit-base-p16_retrieval_flickr30k.py \
#       checkpoints/vit-b-16_openai.pth
_base_ = [
    '../_base_/models/clip_vit-base-p16.py',
    '../_base_/datasets/flickr30k_retrieval.py',
    '../_base_/default_runtime.py',
]
model = dict(predict_head=dict(type='ImageTextRetrievalHead'))
