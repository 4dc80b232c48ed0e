# SigLIP (sigmoid loss, Zhai et al. 2023) ViT-B/16 on CC3M: temperature
# initialised to 10 (log 10) and a learnable bias initialised to -10.
#   torchrun --nproc_per_node 8 tools/train.py \
#       configs/clip/siglip_vit-base-p16_8xb512-amp-32e_cc3m.py \
#       --launcher pytorch
_base_ = './clip_vit-base-p16_8xb512-amp-32e_cc3m.py'
model = dict(
    logit_scale_init=2.302585092994046,  # ln(10)
    head=dict(_delete_=True, type='SigLIPHead', init_logit_bias=-10.0))
