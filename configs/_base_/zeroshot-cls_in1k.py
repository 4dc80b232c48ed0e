# Zero-shot ImageNet-1k classification, all but the model: ImageNet val with
# OpenAI's CLIP preprocessing, OpenAI's curated class names x its 80 prompt
# templates, the default runtime. The classifier is built on the first batch
# and cached in ~/.cache/mmclip/zero_shot.
# A config lists a model base before this file and plugs the head in:
#   model = dict(predict_head=_base_.zero_shot_head)
# (mmengine refuses two bases that both define `model`, hence a variable).
_base_ = ['./datasets/imagenet_bs32_clip.py', './default_runtime.py']
zero_shot_head = dict(
    type='ZeroShotClsHead', classnames='imagenet',
    templates='openai_imagenet')
