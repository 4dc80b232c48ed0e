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

each the best of ``--repeats`` timed runs after a warm-up, then the ratio of
mmclip to each peer. Machines are noisy: compare ratios from one run.
"""
import argparse
import platform
import time
from typing import Callable, Dict, Optional

import torch

LABELS = [
    'tench', 'goldfish', 'great white shark', 'tiger shark', 'hammerhead',
    'electric ray', 'stingray', 'rooster', 'hen', 'ostrich', 'brambling',
    'goldfinch', 'house finch', 'junco', 'indigo bunting', 'American robin'
]


def best_rate(fn: Callable[[], object], items: int, repeats: int,
              sync: Callable[[], None]) -> float:
    """Best items/s of ``repeats`` timed calls after one warm-up call."""
    fn()
    sync()
    best = float('inf')
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return items / best


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
        'transformers': (lambda x: hf.get_image_features(pixel_values=x),
                         lambda t: hf.get_text_features(input_ids=t)),
    }


def run(args) -> Dict[str, Dict[str, Optional[float]]]:
    """Measure every row; returns ``{row: {library: rate}}``."""
    import open_clip
    from mmclip.models.tokenizers import CLIPBPETokenizer
    from mmclip.utils.benchmark_data import make_benchmark_captions
    dtype = dict(fp32=torch.float32, bf16=torch.bfloat16)[args.dtype]
    device = args.device
    sync = torch.cuda.synchronize if device.startswith('cuda') else (
        lambda: None)
    torch.manual_seed(0)
    models = build_models(device, dtype)
    images = torch.randn(args.image_batch, 3, 224, 224, device=device,
                         dtype=dtype)
    prompts = [f'a photo of a {LABELS[i % len(LABELS)]}.'
               for i in range(args.text_batch)]
    ids = open_clip.tokenize(prompts).to(device)
    results = {'image encode (img/s)': {}, 'text encode (txt/s)': {},
               'tokenizer (captions/s)': {}}
    with torch.inference_mode():
        for name, (enc_img, enc_txt) in encoders(models).items():
            results['image encode (img/s)'][name] = best_rate(
                lambda: enc_img(images), len(images), args.repeats, sync)
            results['text encode (txt/s)'][name] = best_rate(
                lambda: enc_txt(ids), len(ids), args.repeats, sync)
    captions = make_benchmark_captions(args.captions, seed=0)
    ours, theirs = CLIPBPETokenizer(), open_clip.tokenizer.SimpleTokenizer()
    assert torch.equal(ours(captions[:200]), theirs(captions[:200]))
    row = results['tokenizer (captions/s)']
    row['mmclip'] = best_rate(lambda: ours(captions), len(captions),
                              args.repeats, lambda: None)
    row['open_clip'] = best_rate(lambda: theirs(captions), len(captions),
                                 args.repeats, lambda: None)
    row['transformers'] = None  # its CLIP tokenizer needs hub files
    return results


def format_table(results: dict) -> str:
    """Markdown table with a ratio column per peer."""
    lines = ['| row | mmclip | open_clip | transformers | '
             'mmclip / open_clip | mmclip / transformers |',
             '|---|---|---|---|---|---|']
    for row, rates in results.items():
        cells = [f'{rates[k]:,.1f}' if rates.get(k) else '—'
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
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--captions', type=int, default=20000)
    p.add_argument('--quick', action='store_true',
                   help='tiny sizes: checks the tool runs, not speed')
    args = p.parse_args(argv)
    if args.quick:
        args.image_batch, args.text_batch = 1, 2
        args.repeats, args.captions = 1, 200
    return args


def main(argv=None) -> str:
    args = parse_args(argv)
    table = format_table(run(args))
    print(f'ViT-B/32, {args.dtype}, {describe_machine(args.device)}; image '
          f'batch {args.image_batch}, text batch {args.text_batch}, best of '
          f'{args.repeats}')
    print(table)
    return table


if __name__ == '__main__':
    main()
