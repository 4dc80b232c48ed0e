# Fine-tune OpenAI CLIP ViT-B/32 on ImageNet-1k at 384px: the ViT-B/16
# 384px config (FT-CLIP's 384px lr 7e-4) with 32px patches; at 12x12
# patches an image costs less than ViT-B/16 at 224px, so 8 GPUs x 256
# images without accumulation, bf16. OpenAI's 224px weights load with the
# position embedding resized bicubically.
#   python tools/model_converters/clip_to_mmclip.py ViT-B-32.pt \
#       checkpoints/vit-b-32_openai.pth
#   torchrun --nproc_per_node 8 tools/train.py \
#       configs/clip/clip_vit-base-p32_ft-8xb256-amp-50e_in1k-384px.py \
#       --launcher pytorch
# Target: none published for OpenAI's ViT-B/32 fine-tuned on ImageNet-1k
# alone at 384px; expect more than the 224px config's 81.77 (mmpretrain's
# vit-base-p32_clip-openai-in12k-pre_3rdparty_in1k-384px, which adds an
# ImageNet-12k stage, reaches 85.13).
_base_ = './clip_vit-base-p16_ft-8xb64-accum4-amp-50e_in1k-384px.py'
model = dict(
    backbone=dict(patch_size=32),
    init_cfg=dict(
        checkpoint='checkpoints/vit-b-32_openai.pth',
        clip=dict(vision_backbone=dict(patch_size=32))))
train_dataloader = dict(batch_size=256)
optim_wrapper = dict(accumulative_counts=1)
auto_scale_lr = dict(base_batch_size=2048)
