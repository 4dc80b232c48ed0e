# CLIP ViT-B/32 pretrained from scratch on ImageNet-1k used as captions
# ("ImageNet pretraining"): each image is paired with an OpenAI prompt
# template filled with its class name and trained with CLIP's contrastive
# loss (../_base_/datasets/imagenet_captions_bs512_clip.py). The CC3M
# configs' schedule (AdamW 5e-4, weight decay 0.2, bf16) for 100 epochs on
# 8 GPUs x 512 images, OpenAI's architecture (QuickGELU), so the zero-shot
# ImageNet configs evaluate its checkpoints. Validation scores ImageNet-1k
# val every epoch with the training classes' prompts (not zero-shot: the
# classes were trained).
#   torchrun --nproc_per_node 8 tools/train.py \
#       configs/clip/clip_vit-base-p32_8xb512-amp-100e_in1k.py \
#       --launcher pytorch
# Target: none published for CLIP's loss on ImageNet-1k prompts with a ViT;
# the nearest published run, UniCL (arXiv 2204.03610, microsoft/UniCL
# README: Swin-T, ImageNet-1k class-name prompts, a loss that counts
# same-class pairs as positives), reaches 79.9 top-1. Here other images of
# the same class in a batch are negatives: expect less.
_base_ = [
    '../_base_/models/clip_vit-base-p32.py',
    '../_base_/datasets/imagenet_captions_bs512_clip.py',
    '../_base_/schedules/clip_pretrain_adamw_cosine.py',
    '../_base_/pretrain_runtime.py',
]
model = dict(
    head=dict(type='CLIPContrastiveHead'),
    predict_head=_base_.zero_shot_head)
max_epochs = 100
warmup_epochs = 2
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, begin=0,
         end=warmup_epochs, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=0., by_epoch=True,
         begin=warmup_epochs, end=max_epochs, T_max=max_epochs - warmup_epochs,
         convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)
