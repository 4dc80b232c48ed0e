"""mmclip vs open_clip vs transformers, side by side in one run.

    python tools/benchmark.py [--device cpu|cuda] [--dtype fp32|bf16]
                              [--image-batch 16] [--text-batch 64]
                              [--repeats 3] [--captions 20000] [--quick]

Rows (ViT-B/32, random weights, inference under ``torch.inference_mode``):

- image encode, images/s;
- text encode of zero-shot prompts ("a photo of a {label}."), texts/s; every
  library gets the same 77-token ids that OpenAI's / open_clip's tokenizer
  produce;
- tokenizer, captions/s on 20k distinct short captions;
- zero-shot classifier build (class names x OpenAI's 80 ImageNet templates
  through the text tower, mmclip's ``build_zero_shot_classifier`` vs
  open_clip's), classes/s; ``--zs-classes`` (default 10 on CPU: open_clip
  needs ~15 s a class here), timed once after a one-class warm-up;
- folder inference: JPEG files (1024x768) to probabilities over 5 labels
  (decode, OpenAI preprocessing, image encode, softmax), images/s: mmclip's
  ``inference_model`` on the folder vs the usual loop of open_clip's
  ``image_transform`` / transformers' ``CLIPImageProcessor`` and the
  encoders;
- train step (forward + backward + AdamW step of the contrastive loss on
  image-caption pairs; mmclip's model + CLIPContrastiveHead, open_clip's
  model + ClipLoss, transformers' ``return_loss=True``), samples/s, fp32
  weights with bf16 autocast on CUDA; on CUDA also the memory that step
  allocates on top of the resident models, gradient checkpointing on in
  every library;
- on CPU, in a table of its own: mmclip's image encode exported to ONNX
  (``mmclip.deployment.export_onnx``) and run by ONNX Runtime vs PyTorch
  eager, images/s (``--onnx-model``, default ViT-B/32);

each the best of ``--repeats`` rounds after a warm-up, the libraries taking
turns within each round, then the ratio of mmclip to each peer. Machines are
noisy: compare ratios from one run.
"""
import argparse
import os.path as osp
import platform
import runpy
import time
from functools import partial
from typing import Callable, Dict, Optional

import torch

LABELS = [
    'tench', 'goldfish', 'great white shark', 'tiger shark', 'hammerhead',
    'electric ray', 'stingray', 'rooster', 'hen', 'ostrich', 'brambling',
    'goldfinch', 'house finch', 'junco', 'indigo bunting', 'American robin'
]


def best_rates(fns: Dict[str, Callable[[], object]], items: int, repeats: int,
               sync: Callable[[], None]) -> Dict[str, float]:
    """Best items/s per library over ``repeats`` rounds after a warm-up.

    Each round runs every library once, in turn, so slow drifts of the
    machine (other load, clocks) hit all libraries alike instead of whichever
    happens to be measured last.
    """
    best = {name: float('inf') for name in fns}
    for fn in fns.values():
        fn()
    sync()
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            sync()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: items / t for name, t in best.items()}


def build_models(device: str, dtype: torch.dtype) -> Dict[str, object]:
    """ViT-B/32 (QuickGELU) from each library, random weights, eval mode."""
    import open_clip
    from transformers import CLIPConfig, CLIPModel
    from mmclip.apis import get_model
    models = {
        'mmclip': get_model('clip_vit-base-p32'),
        'open_clip': open_clip.create_model('ViT-B-32-quickgelu'),
        'transformers': CLIPModel(CLIPConfig(
            text_config=dict(hidden_act='quick_gelu'),
            vision_config=dict(hidden_act='quick_gelu', patch_size=32),
            projection_dim=512, attn_implementation='sdpa')),
    }
    return {k: m.to(device, dtype).eval() for k, m in models.items()}


def encoders(models: dict):
    """(image encoder, text encoder) callables per library."""
    hf = models['transformers']
    return {
        'mmclip': (models['mmclip'].encode_image,
                   models['mmclip'].encode_text),
        'open_clip': (models['open_clip'].encode_image,
                      models['open_clip'].encode_text),
        # transformers 5 returns the projected embeddings as pooler_output.
        'transformers': (
            lambda x: hf.get_image_features(pixel_values=x).pooler_output,
            lambda t: hf.get_text_features(input_ids=t).pooler_output),
    }


def train_steps(models: dict, head, device: str, amp: bool):
    """One training step callable per library (model already in train
    mode; same AdamW settings everywhere)."""
    import open_clip
    clip_loss = open_clip.ClipLoss()
    ours, oc, hf = (models['mmclip'], models['open_clip'],
                    models['transformers'])

    def loss_fns(x, ids):
        return {
            'mmclip': lambda: head.loss(
                ours.encode_image(x, normalize=True),
                ours.encode_text(ids, normalize=True),
                ours.logit_scale)['loss'],
            'open_clip': lambda: clip_loss(*oc(x, ids)),
            'transformers': lambda: hf(
                input_ids=ids, pixel_values=x, return_loss=True).loss,
        }

    def make(name, x, ids):
        opt = torch.optim.AdamW(models[name].parameters(), lr=1e-5)
        fn = loss_fns(x, ids)[name]

        def step():
            with torch.autocast(device.split(':')[0], torch.bfloat16,
                                enabled=amp):
                loss = fn()
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return step
    return make


def measure_training(args, sync) -> Dict[str, Dict[str, Optional[float]]]:
    """The train-step row, and on CUDA the peak-memory row."""
    import open_clip
    from mmclip.registry import MODELS
    device, amp = args.device, args.dtype == 'bf16'
    torch.manual_seed(0)
    models = build_models(device, torch.float32)
    head = MODELS.build(dict(type='CLIPContrastiveHead'))
    make = train_steps(models, head, device, amp)
    x = torch.randn(args.train_batch, 3, 224, 224, device=device)
    ids = open_clip.tokenize(make_prompts(args.train_batch)).to(device)
    for model in models.values():
        model.train()
    rows = {'train step (samples/s)': best_rates(
        {name: make(name, x, ids) for name in models}, len(x), args.repeats,
        sync)}
    cuda = device.startswith('cuda')
    if not cuda:
        return rows
    # Memory of one step above what is already allocated (all models and
    # their optimizer states), so each library is charged only its own
    # activations and gradients.
    key = 'train step memory, grad ckpt (GiB)'
    rows[key] = {}
    for name, model in models.items():
        set_grad_checkpointing(name, model)
        step = make(name, x, ids)
        step()  # its optimizer state exists before the measured step
        sync()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        sync()
        rows[key][name] = (torch.cuda.max_memory_allocated() - base) / 2**30
    return rows


def set_grad_checkpointing(name: str, model) -> None:
    if name == 'transformers':
        model.gradient_checkpointing_enable()
    elif name == 'mmclip':
        model.backbone.set_grad_checkpointing(True)
        model.text_encoder.set_grad_checkpointing(True)
    else:
        model.set_grad_checkpointing(True)


def measure_classifier_build(models: dict, args, sync) -> dict:
    """Classes/s building a zero-shot classifier, mmclip vs open_clip."""
    import open_clip
    from mmclip.datasets.zero_shot_data import (OPENAI_IMAGENET_TEMPLATES,
                                                resolve_classnames)
    from mmclip.models.utils import build_zero_shot_classifier
    classes = list(resolve_classnames('imagenet')[:args.zs_classes])
    templates = list(OPENAI_IMAGENET_TEMPLATES[:args.zs_templates])
    tokenizer = open_clip.get_tokenizer('ViT-B-32')
    fns = {
        'mmclip': lambda names: build_zero_shot_classifier(
            models['mmclip'].text_embedder(), names, templates),
        'open_clip': lambda names: open_clip.build_zero_shot_classifier(
            models['open_clip'], tokenizer, names, templates,
            num_classes_per_batch=10, device=args.device),
    }
    rates = {'transformers': None}
    for fn in fns.values():
        fn(classes[:1])  # warm-up on one class
    for name, fn in fns.items():  # a single timed run: open_clip is slow
        sync()
        start = time.perf_counter()
        fn(classes)
        sync()
        rates[name] = len(classes) / (time.perf_counter() - start)
    return rates


def write_photo_folder(folder: str, n: int, size=(1024, 768)) -> list:
    """``n`` JPEGs (scikit-image's photos at a camera-like size, quality
    90) in ``folder``; returns their paths."""
    from PIL import Image
    from skimage import data
    photos = [Image.fromarray(getattr(data, name)()).resize(size)
              for name in ('astronaut', 'chelsea', 'coffee', 'rocket')]
    paths = []
    for i in range(n):
        paths.append(f'{folder}/{i:05d}.jpg')
        photos[i % len(photos)].save(paths[-1], quality=90)
    return paths


def measure_folder_inference(models: dict, args, sync) -> dict:
    """Images/s from JPEG files to probabilities over 5 labels: decode,
    OpenAI preprocessing, image encode, softmax. mmclip's
    ``inference_model`` on the folder vs the usual loop with open_clip's
    ``image_transform`` and with transformers' ``CLIPImageProcessor``."""
    import tempfile

    import open_clip
    from PIL import Image
    from transformers import CLIPImageProcessor
    from mmclip.apis import inference_model
    labels = [f'a photo of a {name}.' for name in LABELS[:5]]
    ids = open_clip.tokenize(labels).to(args.device)
    oc_pre = open_clip.image_transform(
        224, is_train=False, mean=open_clip.OPENAI_DATASET_MEAN,
        std=open_clip.OPENAI_DATASET_STD)
    hf_pre = CLIPImageProcessor()  # OpenAI's defaults, no hub files
    encs = encoders(models)
    dtype = next(models['mmclip'].parameters()).dtype

    def loop(name, pixels_of, paths):
        img_enc, txt_enc = encs[name]
        txt = torch.nn.functional.normalize(txt_enc(ids).float(), dim=-1)
        probs = []
        for i in range(0, len(paths), args.image_batch):
            x = pixels_of(paths[i:i + args.image_batch]).to(args.device,
                                                            dtype)
            img = torch.nn.functional.normalize(img_enc(x).float(), dim=-1)
            probs.append((100 * img @ txt.t()).softmax(-1).cpu())
        return torch.cat(probs)

    def open_clip_pixels(batch):
        return torch.stack([oc_pre(Image.open(p)) for p in batch])

    def hf_pixels(batch):
        images = [Image.open(p).convert('RGB') for p in batch]
        return hf_pre(images=images, return_tensors='pt')['pixel_values']

    with tempfile.TemporaryDirectory() as folder:
        paths = write_photo_folder(folder, args.folder_images)
        fns = {
            'mmclip': lambda: inference_model(
                models['mmclip'], folder, texts=labels,
                batch_size=args.image_batch, progress=False),
            'open_clip': lambda: loop('open_clip', open_clip_pixels, paths),
            'transformers': lambda: loop('transformers', hf_pixels, paths),
        }
        return best_rates(fns, len(paths), args.repeats, sync)


def measure_onnx_image_encode(args) -> Dict[str, float]:
    """Images/s of mmclip's image tower exported to ONNX and run by ONNX
    Runtime (CPU provider, as many threads as torch) vs the same model in
    PyTorch eager, interleaved as every row."""
    import tempfile

    from mmclip.apis import OnnxCLIP, get_model
    from mmclip.deployment import export_onnx
    torch.manual_seed(0)
    model = get_model(args.onnx_model)
    size = model.backbone.img_size
    images = torch.randn(args.image_batch, 3, size, size)
    with tempfile.TemporaryDirectory() as folder:
        export_onnx(model, folder, verify=False)
        runtime = OnnxCLIP(folder, num_threads=torch.get_num_threads())
        with torch.inference_mode():
            return best_rates(
                {'ONNX Runtime': partial(runtime.encode_image,
                                         images.numpy()),
                 'PyTorch eager': partial(model.encode_image, images)},
                len(images), args.repeats, lambda: None)


def format_onnx_table(rates: Dict[str, float]) -> str:
    """The ONNX Runtime row as its own markdown table."""
    ratio = rates['ONNX Runtime'] / rates['PyTorch eager']
    return ('| row | ONNX Runtime | PyTorch eager | ONNX Runtime / PyTorch |\n'
            '|---|---|---|---|\n'
            '| ONNX Runtime vs PyTorch eager, image encode, CPU (img/s) | '
            f'{rates["ONNX Runtime"]:,.1f} | {rates["PyTorch eager"]:,.1f} | '
            f'{ratio:.2f}x |')


def make_prompts(n: int):
    return [f'a photo of a {LABELS[i % len(LABELS)]}.' for i in range(n)]


def run(args) -> Dict[str, Dict[str, Optional[float]]]:
    """Measure every row; returns ``{row: {library: rate}}``."""
    import open_clip
    from mmclip.models.tokenizers import CLIPBPETokenizer
    # A helper module beside this script (tools are not a package).
    make_benchmark_captions = runpy.run_path(osp.join(
        osp.dirname(osp.abspath(__file__)),
        'benchmark_data.py'))['make_benchmark_captions']
    dtype = dict(fp32=torch.float32, bf16=torch.bfloat16)[args.dtype]
    device = args.device
    sync = torch.cuda.synchronize if device.startswith('cuda') else (
        lambda: None)
    torch.manual_seed(0)
    models = build_models(device, dtype)
    images = torch.randn(args.image_batch, 3, 224, 224, device=device,
                         dtype=dtype)
    ids = open_clip.tokenize(make_prompts(args.text_batch)).to(device)
    results = {'image encode (img/s)': {}, 'text encode (txt/s)': {},
               'tokenizer (captions/s)': {}}
    encs = encoders(models)
    with torch.inference_mode():
        results['image encode (img/s)'] = best_rates(
            {k: partial(img, images) for k, (img, _) in encs.items()},
            len(images), args.repeats, sync)
        results['text encode (txt/s)'] = best_rates(
            {k: partial(txt, ids) for k, (_, txt) in encs.items()}, len(ids),
            args.repeats, sync)
    captions = make_benchmark_captions(args.captions, seed=0)
    ours, theirs = CLIPBPETokenizer(), open_clip.tokenizer.SimpleTokenizer()
    assert torch.equal(ours(captions[:200]), theirs(captions[:200]))
    row = best_rates({'mmclip': partial(ours, captions),
                      'open_clip': partial(theirs, captions)}, len(captions),
                     args.repeats, lambda: None)
    row['transformers'] = None  # its CLIP tokenizer needs hub files
    results['tokenizer (captions/s)'] = row
    with torch.inference_mode():
        results['zero-shot classifier build (classes/s)'] = \
            measure_classifier_build(models, args, sync)
        results['folder of JPEGs to label probabilities (img/s)'] = \
            measure_folder_inference(models, args, sync)
    del models
    results.update(measure_training(args, sync))
    return results


def format_table(results: dict) -> str:
    """Markdown table with a ratio column per peer."""
    lines = ['| row | mmclip | open_clip | transformers | '
             'mmclip / open_clip | mmclip / transformers |',
             '|---|---|---|---|---|---|']
    for row, rates in results.items():
        digits = 2 if 'GiB' in row else 1
        cells = [f'{rates[k]:,.{digits}f}' if rates.get(k) else '—'
                 for k in ('mmclip', 'open_clip', 'transformers')]
        ratios = [f'{rates["mmclip"] / rates[k]:.2f}x' if rates.get(k) else '—'
                  for k in ('open_clip', 'transformers')]
        lines.append(f'| {row} | ' + ' | '.join(cells + ratios) + ' |')
    return '\n'.join(lines)


def describe_machine(device: str) -> str:
    if device.startswith('cuda'):
        return f'{torch.cuda.get_device_name()}, torch {torch.__version__}'
    return (f'{platform.processor() or platform.machine()}, '
            f'{torch.get_num_threads()} threads, torch {torch.__version__}')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--device', default='cpu')
    p.add_argument('--dtype', default='fp32', choices=['fp32', 'bf16'])
    p.add_argument('--image-batch', type=int, default=16)
    p.add_argument('--text-batch', type=int, default=64)
    p.add_argument('--train-batch', type=int, default=32)
    p.add_argument('--zs-classes', type=int, default=10)
    p.add_argument('--zs-templates', type=int, default=80)
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--captions', type=int, default=20000)
    p.add_argument('--folder-images', type=int, default=64,
                   help='JPEG files (1024x768) in the folder inference row')
    p.add_argument('--onnx-model', default='clip_vit-base-p32',
                   help='model of the ONNX Runtime row (CPU runs only)')
    p.add_argument('--quick', action='store_true',
                   help='tiny sizes: checks the tool runs, not speed')
    args = p.parse_args(argv)
    if args.quick:
        args.image_batch, args.text_batch, args.train_batch = 1, 2, 2
        args.zs_classes, args.zs_templates = 2, 2
        args.repeats, args.captions, args.folder_images = 1, 200, 2
        args.onnx_model = 'clip_vit-tiny-p8_zeroshot-cls_digits-32px'
    return args


def main(argv=None) -> str:
    args = parse_args(argv)
    table = format_table(run(args))
    if args.device == 'cpu':  # ONNX Runtime's CPU provider
        table += '\n\n' + format_onnx_table(measure_onnx_image_encode(args))
    print(f'ViT-B/32, {args.dtype}, {describe_machine(args.device)}; image '
          f'batch {args.image_batch}, text batch {args.text_batch}, train '
          f'batch {args.train_batch}, best of {args.repeats}')
    print(table)
    return table


if __name__ == '__main__':
    main()
