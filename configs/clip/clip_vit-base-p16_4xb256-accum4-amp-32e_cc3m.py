# CLIP ViT-B/16 on CC3M with the 8xb512 recipe on 4 GPUs: each process loads
# 1024 pairs and embeds them 256 at a time (model.accum_steps=4, GradCache),
# one loss over the global 4 x 1024. A step has the 8 x 512 run's contrastive
# batch, loss, gradients and learning rate, with the activation memory of 256
# pairs per GPU (docs/training.md, "Large contrastive batches on few GPUs").
#   torchrun --nproc_per_node 4 tools/train.py \
#       configs/clip/clip_vit-base-p16_4xb256-accum4-amp-32e_cc3m.py \
#       --launcher pytorch
_base_ = './clip_vit-base-p16_8xb512-amp-32e_cc3m.py'
model = dict(accum_steps=4)
# The batch of one process and of the loss (4 micro-batches of 256).
train_dataloader = dict(batch_size=1024)
# --auto-scale-lr counts processes x train_dataloader.batch_size: the
# contrastive batch, 4 x 1024, as the base's 8 x 512.
auto_scale_lr = dict(base_batch_size=4096)
