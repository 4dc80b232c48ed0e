# Zero-shot ImageNet-1k classification with OpenAI CLIP ViT-L/14
# (../_base_/zeroshot-cls_in1k.py: class names x 80 prompt templates).
#   python tools/model_converters/clip_to_mmclip.py ViT-L-14.pt \
#       checkpoints/vit-l-14_openai.pth
#   python tools/test.py \
#       configs/clip/clip_vit-large-p14_zeroshot-cls_in1k.py \
#       checkpoints/vit-l-14_openai.pth
_base_ = [
    '../_base_/models/clip_vit-large-p14.py',
    '../_base_/zeroshot-cls_in1k.py',
]
model = dict(predict_head=_base_.zero_shot_head)
