# OpenAI CLIP ViT-B/16: as B/32 with 16px patches (196 patch tokens at 224px).
_base_ = './clip_vit-base-p32.py'
model = dict(vision_backbone=dict(patch_size=16))
