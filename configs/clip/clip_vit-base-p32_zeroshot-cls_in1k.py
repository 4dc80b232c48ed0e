# Zero-shot ImageNet-1k classification with OpenAI CLIP ViT-B/32
# (../_base_/zeroshot-cls_in1k.py: class names x 80 prompt templates).
#   python tools/model_converters/clip_to_mmclip.py ViT-B-32.pt \
#       checkpoints/vit-b-32_openai.pth
#   python tools/test.py \
#       configs/clip/clip_vit-base-p32_zeroshot-cls_in1k.py \
#       checkpoints/vit-b-32_openai.pth
_base_ = [
    '../_base_/models/clip_vit-base-p32.py',
    '../_base_/zeroshot-cls_in1k.py',
]
model = dict(predict_head=_base_.zero_shot_head)
