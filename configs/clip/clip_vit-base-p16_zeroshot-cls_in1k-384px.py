# Zero-shot ImageNet-1k classification with OpenAI CLIP ViT-B/16 at 384px
# (../_base_/zeroshot-cls_in1k.py: class names x 80 prompt templates).
# OpenAI trained no 384px CLIP: the 224px weights load with the
# position embedding resized bicubically.
#   python tools/model_converters/clip_to_mmclip.py ViT-B-16.pt \
#       checkpoints/vit-b-16_openai.pth
#   python tools/test.py \
#       configs/clip/clip_vit-base-p16_zeroshot-cls_in1k-384px.py \
#       checkpoints/vit-b-16_openai.pth
_base_ = [
    '../_base_/models/clip_vit-base-p16-384px.py',
    '../_base_/zeroshot-cls_in1k.py',
]
model = dict(predict_head=_base_.zero_shot_head)
# The base's pipeline at this model's 384px: short side to 384,
# centre crop 384x384 (its ResizeEdge and CenterCrop steps).
img_size = 384
test_pipeline = _base_.test_pipeline
test_pipeline[1].scale = test_pipeline[2].crop_size = img_size
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
