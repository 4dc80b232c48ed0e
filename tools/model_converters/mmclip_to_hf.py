"""Export an mmclip classifier to transformers' CLIPForImageClassification.

    python tools/model_converters/mmclip_to_hf.py CONFIG CHECKPOINT OUT_DIR

CONFIG and CHECKPOINT are a classifier of transformers' layout: one
converted from a CLIPForImageClassification by clip_to_mmclip.py (which
writes CONFIG beside the checkpoint), or fine-tuned from one. OUT_DIR gets
config.json (class names as id2label), model.safetensors and, when the
config's preprocessing has a CLIPImageProcessor equivalent,
preprocessor_config.json; CLIPForImageClassification.from_pretrained(OUT_DIR)
gives the classifier's logits. Other classifiers (e.g. mmclip's fine-tunes
with CLIPClsHead) are refused: transformers' class computes something else.
"""
import argparse
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n\n', 1)[1])
    parser.add_argument('config', help='the classifier config')
    parser.add_argument('checkpoint', help='its mmclip checkpoint')
    parser.add_argument('out_dir', help='folder to write the transformers '
                        'model to')
    return parser.parse_args(argv)


def run(args) -> list:
    """Export as ``args`` say; returns the files written."""
    from mmclip.apis import get_model, model_classes
    from mmclip.apis.preflight import check_checkpoint, check_config_file
    from mmclip.converters import export_hf_classifier, hf_image_processor
    check_config_file(args.config)
    check_checkpoint(args.checkpoint, 'CHECKPOINT')
    model = get_model(args.config, pretrained=args.checkpoint)
    processor = hf_image_processor(model.cfg)
    written = export_hf_classifier(model, args.out_dir, model_classes(model),
                                   processor)
    if processor is None:
        print('note: the config preprocesses images in a way '
              "transformers' CLIPImageProcessor cannot; no "
              'preprocessor_config.json was written.')
    print(f'Wrote {", ".join(written)}')
    return written


def main(argv=None) -> int:
    """Run the export; returns the exit status (0 ok, 1 refused)."""
    args = parse_args(argv)
    from mmclip.apis.cli import run_tool
    from mmclip.converters import ConversionError
    return run_tool(run, args, user_errors=(ConversionError, ))


if __name__ == '__main__':
    sys.exit(main())
