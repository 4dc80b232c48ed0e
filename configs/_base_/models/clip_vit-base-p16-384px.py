# ViT-B/16 at 384px (24x24 grid). A 224px checkpoint loads into it: the
# position embedding is resized bicubically on load.
_base_ = './clip_vit-base-p16.py'
model = dict(vision_backbone=dict(img_size=384))
