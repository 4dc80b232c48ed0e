"""Search an index (``tools/search/index.py``) by text or by image.

    python tools/search/query.py INDEX "a red bicycle" [-k 10]
    python tools/search/query.py INDEX --image query.jpg [-k 10]
        [--sheet hits.png] [--json hits.json] [--model ... --checkpoint ...]

Prints the hits (rank, cosine similarity, path), best first, and writes a
contact sheet PNG of them (default
``work_dirs/search/<index>/<query>.png``). The model is the one the index
was built with (its ``mmclip_search.json``); another one is refused.
"""
import argparse
import os.path as osp
import re
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(description='Search an image index by text '
                                'or by image')
    p.add_argument('index', metavar='INDEX', help='the index folder')
    p.add_argument('text', nargs='?', help='the text to search for')
    p.add_argument('--image', help='search by this image instead')
    p.add_argument('-k', type=int, default=10, help='hits to show')
    p.add_argument('--sheet', help='contact sheet PNG of the hits (default: '
                   'work_dirs/search/<index>/<query>.png)')
    p.add_argument('--json', help='also write the hits to this .json file')
    p.add_argument('--model', help='default: the model the index was built '
                   'with')
    p.add_argument('--checkpoint', help="default: the index's")
    p.add_argument('--nprobe', type=int,
                   help='IVF lists visited per query (approximate indices)')
    p.add_argument('--device', default='cpu')
    return p.parse_args(argv)


def default_sheet(index: str, query: str) -> str:
    """``work_dirs/search/<index name>/<query as a file name>.png``."""
    stem = re.sub(r'[^A-Za-z0-9._-]+', '_', query).strip('_')[:60] or 'query'
    return osp.join('work_dirs', 'search', osp.basename(osp.normpath(index)),
                    stem + '.png')


def run(args) -> list:
    """Query ``args.index``; prints and writes the hits."""
    import json

    from mmclip.apis.search import search_images
    if (args.text is None) == (args.image is None):
        raise ValueError('Give a text to search for, or --image FILE '
                         '(exactly one of them).')
    if args.text is not None and not args.text.strip():
        raise ValueError('The query text is empty: give words to search '
                         'for, e.g. "a red bicycle".')
    if args.image is not None and not osp.isfile(args.image):
        raise ValueError(f'No such image file: {args.image!r}.')
    if args.k < 1:
        raise ValueError('-k must be at least 1.')
    query = args.text if args.text is not None else \
        'like_' + osp.basename(args.image)
    sheet = args.sheet or default_sheet(args.index, query)
    hits = search_images(args.index, text=args.text, image=args.image,
                         k=args.k, sheet=sheet, model=args.model,
                         checkpoint=args.checkpoint, nprobe=args.nprobe,
                         device=args.device)
    print(f'{len(hits)} hits for '
          + (f'"{args.text}"' if args.text is not None
             else f'images like {args.image}') + ':')
    for rank, hit in enumerate(hits, 1):
        print(f'{rank:>3}  {hit["similarity"]:.4f}  {hit["image_path"]}')
    print(f'contact sheet: {sheet}')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(hits, f, indent=1)
        print(f'hits: {args.json}')
    return hits


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmclip.apis.cli import run_tool  # after parsing: --help is fast
    return run_tool(run, args, user_errors=(ValueError, FileNotFoundError))


if __name__ == '__main__':
    sys.exit(main())
