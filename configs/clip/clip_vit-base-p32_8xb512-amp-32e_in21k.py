# CLIP ViT-B/32 pretrained from scratch on ImageNet-21k used as captions
# (../_base_/datasets/imagenet21k_captions_bs512_clip.py: a folder per class
# and a classnames.txt): the ImageNet-1k config's recipe for the schedule's
# 32 epochs, 8 GPUs x 512, bf16. Validation: zero-shot ImageNet-1k val
# (OpenAI's class names x 80 templates).
#   torchrun --nproc_per_node 8 tools/train.py \
#       configs/clip/clip_vit-base-p32_8xb512-amp-32e_in21k.py \
#       --launcher pytorch
# Target: none published for this recipe; UniCL's (arXiv 2204.03610,
# microsoft/UniCL README) zero-shot ImageNet-1k top-1 after ImageNet-21k
# prompts is 28.5 (Swin-T) and 29.9 (Swin-B).
_base_ = [
    '../_base_/models/clip_vit-base-p32.py',
    '../_base_/datasets/imagenet21k_captions_bs512_clip.py',
    '../_base_/schedules/clip_pretrain_adamw_cosine.py',
    '../_base_/pretrain_runtime.py',
]
model = dict(
    head=dict(type='CLIPContrastiveHead'),
    predict_head=_base_.zero_shot_head)
