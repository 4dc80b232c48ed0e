# OpenAI CLIP ViT-B/32: image tower width 768 x 12 layers, patch 32, 224px;
# text tower width 512 x 12 layers; shared embedding 512; QuickGELU.
model = dict(
    # Build the whole model in mmclip's registries, also when the caller's
    # default scope is another (mmpretrain.get_model uses 'mmpretrain').
    _scope_='mmclip',
    type='CLIPModel',
    vision_backbone=dict(
        type='CLIPVisionTransformer',
        arch='base',
        img_size=224,
        patch_size=32,
        act_cfg=dict(type='QuickGELU')),
    text_encoder=dict(
        type='CLIPTextTransformer',
        arch='base',
        act_cfg=dict(type='QuickGELU')),
    tokenizer=dict(type='CLIPBPETokenizer'),
    # OpenAI's normalisation, which the weights were trained with, in the
    # 0-255 range of mmpretrain's preprocessor; BGR -> RGB, as mmcv and
    # mmclip's loaders give BGR. CLIPDataPreprocessor is mmpretrain's
    # ClsDataPreprocessor copying batches to the GPU without blocking.
    data_preprocessor=dict(
        type='CLIPDataPreprocessor',
        mean=[0.48145466 * 255, 0.4578275 * 255, 0.40821073 * 255],
        std=[0.26862954 * 255, 0.26130258 * 255, 0.27577711 * 255],
        to_rgb=True),
)
