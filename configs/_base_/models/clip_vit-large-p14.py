# OpenAI CLIP ViT-L/14: image tower width 1024 x 24 layers, patch 14;
# text tower width 768 x 12 layers; shared embedding 768; QuickGELU.
_base_ = './clip_vit-base-p32.py'
model = dict(
    vision_backbone=dict(arch='large', patch_size=14),
    text_encoder=dict(arch='large'))
