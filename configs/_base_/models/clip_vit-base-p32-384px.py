# ViT-B/32 at 384px (12x12 grid); 224px checkpoints are resized on load.
_base_ = './clip_vit-base-p32.py'
model = dict(vision_backbone=dict(img_size=384))
