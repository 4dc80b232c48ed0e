# OpenAI CLIP ViT-L/14@336px (24x24 patch grid).
_base_ = './clip_vit-large-p14.py'
model = dict(vision_backbone=dict(img_size=336))
