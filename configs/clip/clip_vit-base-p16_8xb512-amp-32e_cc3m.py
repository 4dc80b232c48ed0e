# CLIP ViT-B/16 on CC3M: as the B/32 config with 16px patches; gradient
# checkpointing on (196 patch tokens per image at 512 images per GPU).
#   torchrun --nproc_per_node 8 tools/train.py \
#       configs/clip/clip_vit-base-p16_8xb512-amp-32e_cc3m.py \
#       --launcher pytorch
_base_ = './clip_vit-base-p32_8xb512-amp-32e_cc3m.py'
model = dict(vision_backbone=dict(patch_size=16, with_cp=True))
