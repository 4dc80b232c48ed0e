"""Embed a folder of images (or a CSV list, or webdataset shards) into a
search index in clip-retrieval's layout.

    python tools/search/index.py FOLDER_OR_CSV_OR_SHARDS --out INDEX
        --model NAME_OR_CONFIG [--checkpoint CKPT] [--index-type exact]
        [--int8 EXPORT_DIR] [--batch-size 32] [--workers N] [--device cpu]

``INDEX`` gets ``img_emb/img_emb_N.npy`` (L2-normalised float32
embeddings), ``metadata/metadata_N.parquet`` (``image_path``, and
``caption`` where the source has captions), ``image.index`` (faiss) and
``mmclip_search.json`` (the model, so queries use the same one). Running it
again on the same source adds only the images the index lacks, also after
an interrupted run. Unreadable images are skipped and named.

Query it with ``tools/search/query.py INDEX "a red bicycle"``, or serve it
with ``tools/search/serve.py INDEX``.
"""
import argparse
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Embed images into a search index (clip-retrieval '
        'layout)')
    p.add_argument('source', metavar='FOLDER_OR_CSV_OR_SHARDS',
                   help='a folder of images (recursive), a .csv/.tsv/.jsonl '
                   'of image paths, or webdataset .tar shards (a file, a '
                   'folder of them or a brace pattern)')
    p.add_argument('--out', required=True, metavar='INDEX',
                   help='the index folder (created, or added to)')
    p.add_argument('--model', required=True,
                   help='model name, config name or config file path')
    p.add_argument('--checkpoint', help='mmclip checkpoint; without it the '
                   'weights are random (only for trying the tools)')
    p.add_argument('--index-type', default='exact',
                   help="'exact' (faiss IndexFlatIP, default) or a faiss "
                   "index_factory string such as 'IVF1024,Flat' or 'HNSW32' "
                   '(its recall@10 against exact is printed)')
    p.add_argument('--int8', metavar='EXPORT_DIR',
                   help='embed with the int8 image tower of this ONNX export '
                   '(tools/deployment/pytorch2onnx.py --int8)')
    p.add_argument('--batch-size', type=int, default=32)
    p.add_argument('--workers', type=int, default=None,
                   help='image decoding threads (default: the usable cores, '
                   'at most 4)')
    p.add_argument('--part-size', type=int, default=10000,
                   help='images per written part: at most this many are '
                   'embedded again after an interruption')
    p.add_argument('--img-key', default='filepath',
                   help='image path column of a list file')
    p.add_argument('--caption-key', default='title',
                   help='caption column of a list file (kept as metadata)')
    p.add_argument('--device', default='cpu')
    return p.parse_args(argv)


def run(args) -> dict:
    """Index ``args.source`` into ``args.out``; prints a summary."""
    from mmclip.apis.preflight import check_checkpoint, check_config_file
    from mmclip.apis.search import index_images
    from mmclip.errors import shorten_list
    if args.model.endswith('.py'):
        check_config_file(args.model)
    check_checkpoint(args.checkpoint, '--checkpoint')
    if args.batch_size < 1 or args.part_size < 1:
        raise ValueError('--batch-size and --part-size must be at least 1.')
    report = index_images(
        args.source, args.out, model=args.model, checkpoint=args.checkpoint,
        batch_size=args.batch_size, num_workers=args.workers,
        part_size=args.part_size, index_type=args.index_type,
        int8_dir=args.int8, img_key=args.img_key,
        caption_key=args.caption_key, device=args.device)
    print(f'index: {args.out}: {report["count"]} images '
          f'({report["added"]} added, {report["already_indexed"]} already '
          'indexed)')
    if report['skipped']:
        print(f'skipped {len(report["skipped"])} unreadable images:')
        for line in report['skipped']:
            print(f'  {line}')
    if report['not_images']:
        print(f'left out {len(report["not_images"])} files without an image '
              f'extension: {shorten_list(report["not_images"])}')
    for line in report['problems']:
        print(f'problem: {line}')
    index = report['index']
    recall = index.get('recall@10')
    print(f'faiss index: {index["type"]}' + (
        f', recall@10 against exact {recall:.3f}'
        if recall is not None else ''))
    int8 = index.get('int8_recall@10')
    if int8:
        print(f'int8 image tower: recall@10 against float32 on '
              f'{int8["images"]} of the images: text queries '
              f'{int8["text"]:.3f}, image queries {int8["image"]:.3f}')
    if not args.checkpoint:
        print('WARNING: no --checkpoint given, the model has random weights: '
              'search results are meaningless.')
    return report


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmclip.apis.cli import run_tool  # after parsing: --help is fast
    return run_tool(run, args, user_errors=(ValueError, FileNotFoundError))


if __name__ == '__main__':
    sys.exit(main())
