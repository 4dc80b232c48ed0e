# Zero-shot ImageNet-1k classification with OpenAI CLIP ViT-L/14@336px
# (../_base_/zeroshot-cls_in1k.py: class names x 80 prompt templates).
#   python tools/model_converters/clip_to_mmclip.py ViT-L-14-336px.pt \
#       checkpoints/vit-l-14-336_openai.pth
#   python tools/test.py \
#       configs/clip/clip_vit-large-p14_zeroshot-cls_in1k-336px.py \
#       checkpoints/vit-l-14-336_openai.pth
_base_ = [
    '../_base_/models/clip_vit-large-p14-336px.py',
    '../_base_/zeroshot-cls_in1k.py',
]
model = dict(predict_head=_base_.zero_shot_head)
# The base's pipeline at this model's 336px: short side to 336,
# centre crop 336x336 (its ResizeEdge and CenterCrop steps).
img_size = 336
test_pipeline = _base_.test_pipeline
test_pipeline[1].scale = test_pipeline[2].crop_size = img_size
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
