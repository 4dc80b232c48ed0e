# CLIP ViT-B/16 pretrained from scratch on ImageNet-1k used as captions: the
# ViT-B/32 config with 16px patches and gradient checkpointing (196 patch
# tokens per image at 512 images per GPU); 8 GPUs x 512, bf16, 100 epochs.
#   torchrun --nproc_per_node 8 tools/train.py \
#       configs/clip/clip_vit-base-p16_8xb512-amp-100e_in1k.py \
#       --launcher pytorch
# Target: none published (see the ViT-B/32 config: UniCL's Swin-T 79.9 with a
# same-class-aware loss is the nearest published number).
_base_ = './clip_vit-base-p32_8xb512-amp-100e_in1k.py'
model = dict(vision_backbone=dict(patch_size=16, with_cp=True))
