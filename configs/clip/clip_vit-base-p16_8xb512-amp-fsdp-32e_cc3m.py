# ViT-B/16 on CC3M with FSDP through mmengine's FlexibleRunner: parameters,
# gradients and optimizer states sharded over the GPUs, bf16 compute.
#   torchrun --nproc_per_node 8 tools/train.py \
#       configs/clip/clip_vit-base-p16_8xb512-amp-fsdp-32e_cc3m.py \
#       --launcher pytorch
# (DeepSpeed: strategy=dict(type='DeepSpeedStrategy', zero_optimization=
# dict(stage=2), bf16=dict(enabled=True)) with optim_wrapper type
# 'DeepSpeedOptimWrapper'.)
_base_ = './clip_vit-base-p16_8xb512-amp-32e_cc3m.py'
# FSDP refuses 0-d parameters: the temperature is stored with shape (1, ).
model = dict(nonscalar_logit_scale=True)
runner_type = 'FlexibleRunner'
strategy = dict(
    type='FSDPStrategy',
    model_wrapper=dict(
        auto_wrap_policy=dict(
            type='torch.distributed.fsdp.wrap.size_based_auto_wrap_policy',
            min_num_params=int(1e7)),
        # keep parameter names, so paramwise weight decay rules still apply
        use_orig_params=True,
        mixed_precision=dict(
            param_dtype='bfloat16', reduce_dtype='float32',
            buffer_dtype='float32')))
# FSDP casts inside the wrapper; the optim wrapper needs no autocast.
optim_wrapper = dict(
    _delete_=True,
    type='NonFiniteSkipOptimWrapper',
    optimizer={{_base_.optim_wrapper.optimizer}},
    paramwise_cfg={{_base_.optim_wrapper.paramwise_cfg}})
