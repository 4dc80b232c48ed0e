# Fine-tune OpenAI CLIP ViT-B/16 on ImageNet-1k at 384px with FT-CLIP's
# 384px recipe: as the 224px config with lr 7e-4 and 8 GPUs x 64 images x 4
# accumulated steps (2048 a step), bf16. OpenAI's 224px weights load with
# the position embedding resized bicubically to the 24x24 grid.
#   python tools/model_converters/clip_to_mmclip.py ViT-B-16.pt \
#       checkpoints/vit-b-16_openai.pth
#   torchrun --nproc_per_node 8 tools/train.py \
#       configs/clip/clip_vit-base-p16_ft-8xb64-accum4-amp-50e_in1k-384px.py \
#       --launcher pytorch
# Target: 86.6 top-1, FT-CLIP's best epoch at 384px (its
# logs/CLIP_B16_384.log: 86.64, EMA weights; recipe in
# scripts/bash_fine_Openai_CLIP_P16_384_FT_ZIP.sh); mmpretrain's
# vit-base-p16_clip-openai-pre_3rdparty_in1k-384px (timm's recipe): 86.25.
_base_ = './clip_vit-base-p16_ft-8xb256-amp-50e_in1k.py'
img_size = 384
model = dict(backbone=dict(img_size=img_size))
# The pipelines at 384px: the random crop's size, and the short side and
# centre crop of the evaluation pipeline.
train_pipeline = _base_.train_pipeline
train_pipeline[1].scale = img_size
test_pipeline = _base_.test_pipeline
test_pipeline[1].scale = test_pipeline[2].crop_size = img_size
train_dataloader = dict(batch_size=64, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
optim_wrapper = dict(accumulative_counts=4, optimizer=dict(lr=7e-4))
# mmengine's --auto-scale-lr counts the images of one forward pass on all
# GPUs (8 x 64), not the 4 accumulated passes of a step.
auto_scale_lr = dict(base_batch_size=512)
