# CLIP ViT-B/16 pretrained from scratch on ImageNet-21k used as captions:
# the ViT-B/32 config with 16px patches and gradient checkpointing;
# 8 GPUs x 512, bf16, 32 epochs.
#   torchrun --nproc_per_node 8 tools/train.py \
#       configs/clip/clip_vit-base-p16_8xb512-amp-32e_in21k.py \
#       --launcher pytorch
# Target: none published for this recipe (see the ViT-B/32 config for
# UniCL's numbers).
_base_ = './clip_vit-base-p32_8xb512-amp-32e_in21k.py'
model = dict(vision_backbone=dict(patch_size=16, with_cp=True))
