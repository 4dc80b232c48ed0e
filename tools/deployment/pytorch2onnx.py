"""Export a CLIP model's image and text towers to ONNX.

Writes ``image_encoder.onnx``, ``text_encoder.onnx`` (dynamic batch; the text
tower also takes any length up to the context length) and
``mmclip_onnx.json`` (preprocessing, context length, temperature, zero-shot
classes) into ``--out``, then checks both files with ONNX Runtime against
PyTorch. Score with them without PyTorch::

    python tools/deployment/pytorch2onnx.py \\
        configs/clip/clip_vit-base-p32_zeroshot-cls_in1k.py \\
        checkpoints/vit-b-32_openai.pth --out work_dirs/onnx/vit-b-32
    python -c "from mmclip.apis import OnnxCLIP; \\
        print(OnnxCLIP('work_dirs/onnx/vit-b-32').predict( \\
            'demo.jpg', texts=['a cat', 'a dog']))"

``--int8`` also writes ``image_int8.onnx``, the image tower with int8
weights (``mmclip.deployment.quantize_image_tower``; several times faster on
CPUs), used by ``OnnxCLIP(folder, int8=True)`` and
``mmclip.deployment.Int8ImageEncoder``.

Needs ``pip install -r requirements/deploy.txt`` (onnx, onnxscript,
onnxruntime).
"""
import argparse
import json
import sys

BANNER = '!' * 72


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split('\n\n', 1)[1])
    parser.add_argument('config', help='config file, config name or model '
                        'name (see mmclip.apis.list_models)')
    parser.add_argument(
        'checkpoint', nargs='?',
        help='mmclip checkpoint (converted, or a training run\'s '
        'epoch_N.pth); without it the export has random weights')
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--opset', type=int,
                        help='ONNX opset (default: the exporter\'s)')
    parser.add_argument(
        '--img-size', type=int,
        help='image tower resolution (default: the config\'s); position '
        'embeddings are resized bicubically when the checkpoint loads, and '
        'the export preprocesses at this size')
    parser.add_argument('--no-verify', action='store_true',
                        help='skip the ONNX Runtime vs PyTorch check')
    parser.add_argument(
        '--int8', action='store_true',
        help='also quantise the image tower to int8 (image_int8.onnx) for '
        'fast CPU encoding')
    parser.add_argument(
        '--int8-method', choices=['dynamic', 'static'], default='dynamic',
        help='dynamic: int8 weights, no data needed (default, faster '
        'here); static: activation ranges from --calibration-images')
    parser.add_argument(
        '--calibration-images', metavar='FOLDER',
        help='images for --int8-method static (tens of images like the '
        'ones to encode)')
    args = parser.parse_args(argv)
    if (args.int8_method == 'static'
            or args.calibration_images) and not args.int8:
        parser.error('--int8-method static and --calibration-images go '
                     'with --int8')
    return args


def calibration_files(folder: str) -> list:
    """The files directly in ``folder`` (every one must be an image)."""
    import os.path as osp

    from mmclip.apis.inference import list_folder
    from mmclip.errors import ConfigError, MissingFileError
    if not osp.isdir(folder):
        raise MissingFileError(f'--calibration-images {folder!r} is not a '
                               'folder.')
    files = list_folder(folder)
    if not files:
        raise ConfigError(f'--calibration-images {folder!r} is empty.')
    return files


def run(args) -> dict:
    """Export as ``args`` say; returns the sidecar's content."""
    from mmclip.apis import get_model
    from mmclip.apis.preflight import check_checkpoint, check_config_file
    from mmclip.deployment import export_onnx, quantize_image_tower
    if args.int8_method == 'static' and not args.calibration_images:
        from mmclip.errors import ConfigError
        raise ConfigError('--int8-method static needs --calibration-images '
                          'FOLDER (tens of images like the ones to encode).')
    calibration = (calibration_files(args.calibration_images)
                   if args.calibration_images else None)
    if args.config.endswith('.py'):  # a file, not a model or config name
        check_config_file(args.config)
    check_checkpoint(args.checkpoint, 'CHECKPOINT')
    if args.checkpoint is None:
        print(f'{BANNER}\nNo CHECKPOINT given: exporting RANDOM weights. The '
              'ONNX files are only good for testing.\n' + BANNER,
              file=sys.stderr)
    cfg_options = ({'model.vision_backbone.img_size': args.img_size}
                   if args.img_size else None)
    model = get_model(args.config, pretrained=args.checkpoint,
                      cfg_options=cfg_options)
    meta = export_onnx(model, args.out, opset=args.opset,
                       checkpoint=args.checkpoint,
                       verify=not args.no_verify)
    summary = {k: meta[k] for k in ('embed_dims', 'scale')}
    summary.update(
        image_size=meta['image']['size'],
        context_length=meta['text']['context_length'],
        zero_shot_classes=len(meta['zero_shot']['classes'])
        if meta['zero_shot'] else None,
        opset=meta['exported_with']['opset'],
        verified_max_abs_diff=meta.get('verified_max_abs_diff'))
    if args.int8:
        meta['image_int8'] = summary['int8'] = quantize_image_tower(
            args.out, method=args.int8_method,
            calibration_images=calibration)
    print(f'Wrote {args.out}:\n{json.dumps(summary, indent=2)}')
    return meta


def main(argv=None) -> int:
    """Export; a missing config or checkpoint prints one ``error:`` line
    and returns 1."""
    args = parse_args(argv)
    from mmclip.apis.cli import run_tool
    return run_tool(run, args)


if __name__ == '__main__':
    sys.exit(main())
