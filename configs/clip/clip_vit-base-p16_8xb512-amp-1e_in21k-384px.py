# 384px continuation of the ImageNet-21k CLIP ViT-B/16: one more epoch at
# 384px from the 224px run's last checkpoint (position embedding resized
# bicubically on load), as OpenAI continued ViT-L/14 at 336px for one epoch
# (CLIP paper, section 2.5). lr 1e-4 after 500 warm-up steps, cosine to 0
# (untuned); 8 GPUs x 512, bf16, gradient checkpointing.
#   torchrun --nproc_per_node 8 tools/train.py \
#       configs/clip/clip_vit-base-p16_8xb512-amp-32e_in21k.py \
#       --launcher pytorch
#   torchrun --nproc_per_node 8 tools/train.py \
#       configs/clip/clip_vit-base-p16_8xb512-amp-1e_in21k-384px.py \
#       --launcher pytorch
# Target: none published; it should score above the 224px run it starts
# from on zero-shot ImageNet-1k val.
_base_ = './clip_vit-base-p16_8xb512-amp-32e_in21k.py'
img_size = 384
model = dict(vision_backbone=dict(img_size=img_size))
load_from = 'work_dirs/clip_vit-base-p16_8xb512-amp-32e_in21k/epoch_32.pth'
train_pipeline = _base_.train_pipeline
train_pipeline[3].scale = img_size
test_pipeline = _base_.test_pipeline
test_pipeline[1].scale = test_pipeline[2].crop_size = img_size
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
optim_wrapper = dict(optimizer=dict(lr=1e-4))
max_epochs = 1
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0,
         end=500),
    dict(type='CosineAnnealingLR', eta_min=0., by_epoch=True, begin=0,
         end=max_epochs, T_max=max_epochs, convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)
