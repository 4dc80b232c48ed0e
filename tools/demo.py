"""Zero-shot score a bundled real photo with CLIP ViT-B/32 (``make demo``).

    python tools/demo.py [--model clip_vit-base-p32] [--checkpoint PATH]

Without ``--checkpoint`` the weights are random (nothing can be downloaded
here), which the output says plainly: the probabilities then mean nothing.
"""
import argparse
import sys

import torch

from mmclip.apis import get_model, preprocess_images

PROMPTS = [
    'a photo of a cat', 'a photo of a dog', 'a photo of an astronaut',
    'a photo of a rocket', 'a photo of a cup of coffee'
]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--model', default='clip_vit-base-p32')
    parser.add_argument('--checkpoint', default=None,
                        help='mmclip checkpoint (convert OpenAI/open_clip/HF '
                        'weights with tools/model_converters/clip_to_mmclip.py)')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from skimage import data
    torch.manual_seed(args.seed)
    model = get_model(args.model, pretrained=args.checkpoint)
    image = data.chelsea()  # scikit-image's photo of Chelsea the cat
    with torch.no_grad():
        inputs = preprocess_images(model, [image])
        tokens = model.tokenizer(PROMPTS)
        logits, _ = model.get_logits(inputs, tokens)
        probs = logits.softmax(dim=-1)[0]
    n_params = sum(p.numel() for p in model.parameters()) / 1e6
    print(f'model: {args.model} ({n_params:.1f}M parameters), image: '
          f'scikit-image chelsea {image.shape[1]}x{image.shape[0]} -> '
          f'{tuple(inputs.shape[-2:])}')
    print(f'tokens of "{PROMPTS[0]}": {tokens[0, :8].tolist()} ...')
    print(f'{"prompt":<32}{"probability":>12}')
    for prompt, p in sorted(zip(PROMPTS, probs.tolist()), key=lambda t: -t[1]):
        print(f'{prompt:<32}{p:>12.4f}')
    if args.checkpoint is None:
        print('NOTE: these weights are RANDOM (no weights can be downloaded '
              'here), so the ranking above is meaningless. Convert real '
              'weights with tools/model_converters/clip_to_mmclip.py and pass '
              '--checkpoint to see CLIP pick the cat.')
    return 0


if __name__ == '__main__':
    sys.exit(main())
