# Fine-tune OpenAI CLIP ViT-B/32 on ImageNet-1k: the ViT-B/16 config's
# FT-CLIP recipe (AdamW 6e-4, layer decay 0.6, 50 epochs, EMA 0.9998,
# zero-shot-initialised head; 8 GPUs x 256 images, bf16) with 32px patches.
#   python tools/model_converters/clip_to_mmclip.py ViT-B-32.pt \
#       checkpoints/vit-b-32_openai.pth
#   torchrun --nproc_per_node 8 tools/train.py \
#       configs/clip/clip_vit-base-p32_ft-8xb256-amp-50e_in1k.py \
#       --launcher pytorch
# Target: 81.77 top-1, mmpretrain's vit-base-p32_clip-openai-pre_3rdparty_in1k
# (timm's fine-tune of the same weights, another recipe). FT-CLIP published
# no ViT-B/32 run. Step 0 scores zero-shot accuracy (63.3).
_base_ = './clip_vit-base-p16_ft-8xb256-amp-50e_in1k.py'
model = dict(
    backbone=dict(patch_size=32),
    init_cfg=dict(
        checkpoint='checkpoints/vit-b-32_openai.pth',
        clip=dict(vision_backbone=dict(patch_size=32))))
