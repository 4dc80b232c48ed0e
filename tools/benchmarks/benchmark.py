"""mmclip vs open_clip vs transformers, side by side in one run.

    python tools/benchmarks/benchmark.py [--arch b32|b16|b16-384|l14]
        [--device cpu|cuda] [--dtype fp32|bf16] [--compile]
        [--rows encode,tokenizer,...] [--repeats 5] [--image-batch 16]
        [--text-batch 64] [--train-batch 32] [--accum-steps 4] [--out FILE]
        [--search-vectors 1000000] [--quick]

Every library builds the same architecture (``--arch``, QuickGELU, random
weights). Rows (``--rows``, all but ``accum``, ``suite``, ``index`` and
``search`` by default;
docs/benchmarks.md has more):

- ``encode``: image encode, images/s; text encode of zero-shot prompts
  ("a photo of a {label}.") as the same 77-token ids everywhere, texts/s;
- ``tokenizer``: captions/s on 20k distinct short captions;
- ``zero-shot``: classifier build (class names x OpenAI's 80 ImageNet
  templates, the same prompts per text-tower call), classes/s, timed once
  after a one-class warm-up (``--zs-classes``: open_clip needs ~15 s a
  class on a 2-core CPU);
- ``folder``: a folder of JPEGs (1024x768) to probabilities over 5 labels,
  images/s (:mod:`mmclip.benchmarks.pipelines`);
- ``train``: forward, contrastive loss, backward, AdamW
  (:mod:`mmclip.benchmarks.train_step`), samples/s, without and with gradient
  checkpointing (``--grad-ckpt``), with ``--patch-dropout``; on CUDA the
  peak memory of the step;
- ``pipeline``: the training input pipeline on 1.9 MP JPEGs, samples/s per
  worker (:mod:`mmclip.benchmarks.pipelines`);
- ``onnx`` (CPU only), a table of its own: mmclip's image encode exported to
  ONNX (``mmclip.deployment.export_onnx``) and run by ONNX Runtime vs
  PyTorch eager, images/s (``--onnx-model``, default ViT-B/32);
- ``int8`` (CPU only), a table of its own: mmclip's image tower exported and
  quantised to int8 (``mmclip.deployment.quantize_image_tower``, ONNX
  Runtime) vs open_clip's and mmclip's float32 image encode in PyTorch,
  same batch and threads, images/s (:mod:`mmclip.benchmarks.int8`);
- ``accum``, a table of its own: mmclip's train step on one batch of
  ``--train-batch`` (B), on ``--accum-steps`` (K) x B accumulated
  (``model.accum_steps``) and on one batch of K x B, each in a fresh
  process: the step's peak memory (CPU: peak RSS; CUDA: peak allocated)
  and samples/s (:mod:`mmclip.benchmarks.accumulation`);
- ``suite``: the zero-shot suite on ``--suite-datasets`` small exports
  against clip_benchmark evaluating them one by one (its open_clip column),
  datasets/s (:mod:`mmclip.benchmarks.suite`; without clip-benchmark the
  row says why);
- ``index``: the ``folder`` row's JPEGs into a search index
  (:func:`mmclip.apis.index_images`: decoding threads, parts written, faiss
  ``IndexFlatIP``) against the peers encoding them into the same faiss
  index, images/s (:mod:`mmclip.benchmarks.pipelines`);
- ``search``, a table of its own: the k-NN index of ``mmclip.search`` over
  ``--search-vectors`` random unit 512-d vectors, exact (faiss
  ``IndexFlatIP``), IVF and HNSW: build seconds, ms per query alone and in
  batches of 64, recall@10 against exact, index memory
  (:mod:`mmclip.benchmarks.search`; no model, ``--arch`` does not apply).

The encode and train rows are followed by their MFU: the FLOPs of one call
counted from each library's model (:mod:`mmclip.benchmarks.flops`) times
calls/s over the device's dense bf16 peak (or ``--peak-tflops``); without a
known peak (CPUs) the achieved GFLOP/s. ``--compile`` compiles those rows.

Each rate is the best of ``--repeats`` rounds after a warm-up, the libraries
taking turns within each round, then the ratio of mmclip to each peer.
Machines are noisy: compare ratios from one run.
"""
import argparse
import platform
import sys
import time
from functools import partial
from typing import Dict

import torch

from mmclip.benchmarks.flops import (count_flops, flops_row, flops_row_name,
                                     peak_tflops)
from mmclip.benchmarks.peers import (ARCH_NAMES, ARCHS, LABELS, LIBRARIES,
                                     build_models, encoders, make_prompts)
from mmclip.benchmarks.timing import best_rates, device_sync

ROWS = ('encode', 'tokenizer', 'zero-shot', 'folder', 'train', 'pipeline',
        'onnx', 'int8', 'accum', 'suite', 'index', 'search')
#: Rows measured only when ``--rows`` names them: ``accum`` (three fresh
#: processes, one of them training on ``--accum-steps`` x
#: ``--train-batch`` pairs), ``suite`` (needs clip-benchmark), ``index``
#: (compare it with ``folder`` in the same run) and ``search`` (an index
#: over ``--search-vectors``, 1M by default: minutes and ~6 GB).
OPT_IN_ROWS = ('accum', 'suite', 'index', 'search')
#: The suite row; its open_clip column is clip_benchmark (running
#: open_clip's model).
SUITE_ROW = ('zero-shot suite on {} exports vs clip_benchmark one by one '
             '(datasets/s)')


def measure_encoders(models: dict, args, sync, peak) -> dict:
    """Image and text encode rows and their MFU rows."""
    import open_clip
    px = ARCHS[args.arch][0][4]
    images = torch.randn(args.image_batch, 3, px, px, device=args.device,
                         dtype=args.torch_dtype)
    ids = open_clip.tokenize(make_prompts(args.text_batch)).to(args.device)
    rows = {}
    for i, (row, data) in enumerate([('image encode (img/s)', images),
                                     ('text encode (txt/s)', ids)]):
        fns = {name: partial(pair[i], data)
               for name, pair in encoders(models).items()}
        flops = {name: count_flops(fn) for name, fn in fns.items()}
        if args.compile:
            fns = {name: partial(torch.compile(pair[i]), data)
                   for name, pair in encoders(models).items()}
        rows[row] = best_rates(fns, len(data), args.repeats, sync)
        rows[flops_row_name(row, peak)] = flops_row(rows[row], flops,
                                                    len(data), peak)
    return rows


def measure_tokenizer(args) -> dict:
    """Captions/s of mmclip's and open_clip's BPE tokenizers (same ids)."""
    import open_clip

    from mmclip.benchmarks.data import make_benchmark_captions
    from mmclip.models.tokenizers import CLIPBPETokenizer
    captions = make_benchmark_captions(args.captions, seed=0)
    ours, theirs = CLIPBPETokenizer(), open_clip.tokenizer.SimpleTokenizer()
    assert torch.equal(ours(captions[:200]), theirs(captions[:200]))
    row = best_rates({'mmclip': partial(ours, captions),
                      'open_clip': partial(theirs, captions)}, len(captions),
                     args.repeats, lambda: None)
    row['transformers'] = None  # its CLIP tokenizer needs hub files
    return row


def measure_classifier_build(models: dict, args, sync) -> dict:
    """Classes/s building a zero-shot classifier, mmclip vs open_clip, the
    same number of prompts per text-tower call."""
    import open_clip

    from mmclip.datasets.zero_shot_data import (OPENAI_IMAGENET_TEMPLATES,
                                                resolve_classnames)
    from mmclip.models.utils import build_zero_shot_classifier
    classes = list(resolve_classnames('imagenet')[:args.zs_classes])
    templates = list(OPENAI_IMAGENET_TEMPLATES[:args.zs_templates])
    tokenizer = open_clip.get_tokenizer('ViT-B-32')
    classes_per_batch = 10
    fns = {
        'mmclip': lambda names: build_zero_shot_classifier(
            models['mmclip'].text_embedder(), names, templates,
            batch_size=classes_per_batch * len(templates)),
        'open_clip': lambda names: open_clip.build_zero_shot_classifier(
            models['open_clip'], tokenizer, names, templates,
            num_classes_per_batch=classes_per_batch, device=args.device),
    }
    fns = {name: fn for name, fn in fns.items() if name in models}
    rates = dict.fromkeys(models)
    for fn in fns.values():
        fn(classes[:1])  # warm-up on one class
    for name, fn in fns.items():  # a single timed run: open_clip is slow
        sync()
        start = time.perf_counter()
        fn(classes)
        sync()
        rates[name] = len(classes) / (time.perf_counter() - start)
    return rates


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


def measure(args) -> Dict[str, Dict[str, object]]:
    """Measure the selected rows; returns ``{row: {library: value}}``."""
    import open_clip

    from mmclip.benchmarks.pipelines import (measure_folder_indexing,
                                             measure_folder_inference,
                                             measure_input_pipeline)
    from mmclip.benchmarks.suite import measure_suite_vs_clip_benchmark
    from mmclip.benchmarks.train_step import measure_training
    wanted = set(args.rows)
    device = args.device
    sync = device_sync(device)
    peak = peak_tflops(device, args.peak_tflops)
    results = {}
    torch.manual_seed(0)
    if wanted & {'encode', 'zero-shot', 'folder', 'suite', 'index'}:
        models = build_models(args.arch, args.libraries, device,
                              args.torch_dtype)
        with torch.inference_mode():
            if 'encode' in wanted:
                results.update(measure_encoders(models, args, sync, peak))
            if 'tokenizer' in wanted:
                results['tokenizer (captions/s)'] = measure_tokenizer(args)
            if 'zero-shot' in wanted:
                results['zero-shot classifier build (classes/s)'] = \
                    measure_classifier_build(models, args, sync)
            if 'folder' in wanted:
                results['folder of JPEGs to label probabilities (img/s)'] = \
                    measure_folder_inference(
                        models, encoders(models), args,
                        ARCHS[args.arch][0][4], LABELS[:5], sync)
            if 'index' in wanted:
                rates = measure_folder_indexing(
                    models, encoders(models), args, ARCHS[args.arch][0][4],
                    sync, int8=True)
                int8 = rates.pop('mmclip int8', None)
                results['folder of JPEGs into a search index (img/s)'] = \
                    rates
                if int8 is not None:
                    results['folder of JPEGs into a search index, mmclip '
                            'with --int8 (img/s)'] = dict(rates, mmclip=int8)
            if 'suite' in wanted:
                results[SUITE_ROW.format(args.suite_datasets)] = \
                    measure_suite_vs_clip_benchmark(
                        models, args.suite_datasets, args.suite_images,
                        args.image_batch, args.repeats, sync)
        del models
    elif 'tokenizer' in wanted:
        results['tokenizer (captions/s)'] = measure_tokenizer(args)
    if 'train' in wanted:
        models = build_models(args.arch, args.libraries, device,
                              torch.float32)
        px = ARCHS[args.arch][0][4]
        x = torch.randn(args.train_batch, 3, px, px, device=device)
        ids = open_clip.tokenize(make_prompts(args.train_batch)).to(device)
        results.update(measure_training(models, x, ids, args, sync, peak))
        del models
    if 'pipeline' in wanted:
        results.update(measure_input_pipeline(args))
    return results


def format_table(results: dict) -> str:
    """Markdown table with a ratio column per peer (none on MFU rows)."""
    lines = ['| row | mmclip | open_clip | transformers | '
             'mmclip / open_clip | mmclip / transformers |',
             '|---|---|---|---|---|---|']
    for row, values in results.items():
        digits = 2 if 'GiB' in row else 1
        cells = [values.get(k) for k in LIBRARIES]
        cells = [c if isinstance(c, str) else '—' if c is None
                 else f'{c:,.{digits}f}' for c in cells]
        ratios = ['—', '—']
        if 'MFU' not in row and 'GFLOP/s' not in row:
            ours = values.get('mmclip')
            ratios = [
                f'{ours / values[k]:.2f}x' if isinstance(ours, float)
                and isinstance(values.get(k), float) else '—'
                for k in LIBRARIES[1:]]
        lines.append(f'| {row} | ' + ' | '.join(cells + ratios) + ' |')
    return '\n'.join(lines)


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else the platform's."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                key, _, value = line.partition(':')
                if key.strip() == 'model name':
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_machine(device: str) -> str:
    if device.startswith('cuda'):
        return f'{torch.cuda.get_device_name()}, torch {torch.__version__}'
    return (f'{cpu_name()}, {torch.get_num_threads()} threads, '
            f'torch {torch.__version__}')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--arch', default='b32', choices=list(ARCHS),
                   help="architecture of every library's model ('tiny' "
                   'only checks the tool)')
    p.add_argument('--device', default='cpu')
    p.add_argument('--dtype', default='fp32', choices=['fp32', 'bf16'])
    p.add_argument('--compile', action='store_true',
                   help='run every model row through torch.compile')
    p.add_argument('--rows',
                   default=','.join(r for r in ROWS if r not in OPT_IN_ROWS),
                   help=f'comma-separated subset of {",".join(ROWS)}')
    p.add_argument('--libraries', default=','.join(LIBRARIES),
                   help='comma-separated subset of the libraries (mmclip '
                   'always runs)')
    p.add_argument('--grad-ckpt', default='both',
                   choices=['off', 'on', 'both'],
                   help='train rows without / with gradient checkpointing')
    p.add_argument('--patch-dropout', type=float, default=0.,
                   help='also a train row dropping this share of patch '
                   'tokens (mmclip and open_clip)')
    p.add_argument('--peak-tflops', type=float, default=None,
                   help='dense bf16 peak for MFU on a device outside the '
                   'table of mmclip/benchmarks/flops.py')
    p.add_argument('--image-batch', type=int, default=16)
    p.add_argument('--text-batch', type=int, default=64)
    p.add_argument('--train-batch', type=int, default=32)
    p.add_argument('--accum-steps', type=int, default=4,
                   help='micro-batches of the accumulated train step (accum '
                   'row)')
    p.add_argument('--zs-classes', type=int, default=10)
    p.add_argument('--zs-templates', type=int, default=80)
    p.add_argument('--repeats', type=int, default=5)
    p.add_argument('--captions', type=int, default=20000)
    p.add_argument('--folder-images', type=int, default=64,
                   help='JPEG files (1024x768) in the folder inference row')
    p.add_argument('--pipeline-images', type=int, default=64,
                   help='JPEG files (1600x1200) in the input pipeline row')
    p.add_argument('--suite-datasets', type=int, default=4,
                   help='exports the suite row evaluates per round')
    p.add_argument('--suite-images', type=int, default=32,
                   help='JPEGs (500x375) in each export of the suite row')
    p.add_argument('--onnx-model', default='clip_vit-base-p32',
                   help='model of the ONNX Runtime row (CPU runs only)')
    p.add_argument('--search-vectors', type=int, default=1_000_000,
                   help='vectors in the search row\'s index (search row)')
    p.add_argument('--out', default=None,
                   help='also write the tables (markdown) to this file')
    p.add_argument('--quick', action='store_true',
                   help='tiny model and sizes: checks the tool runs, not '
                   'speed')
    args = p.parse_args(argv)
    args.rows = [r for r in args.rows.split(',') if r]
    args.libraries = ['mmclip'] + [
        name for name in args.libraries.split(',') if name != 'mmclip']
    for value, known, what in ((args.rows, ROWS, '--rows'),
                               (args.libraries, LIBRARIES, '--libraries')):
        unknown = sorted(set(value) - set(known))
        if unknown:
            p.error(f'{what}: unknown {unknown}; choose from {list(known)}')
    if args.quick:
        args.arch = 'tiny'
        args.image_batch, args.text_batch, args.train_batch = 2, 2, 2
        args.zs_classes, args.zs_templates = 2, 2
        args.repeats, args.captions, args.folder_images = 1, 200, 2
        args.pipeline_images = 4
        args.suite_datasets, args.suite_images = 2, 4
        args.onnx_model = 'clip_vit-tiny-p8_zeroshot-cls_digits-32px'
        args.search_vectors = 2000
    args.torch_dtype = dict(fp32=torch.float32, bf16=torch.bfloat16)[
        args.dtype]
    return args


def run(args) -> str:
    """Measure as ``args`` say, print the tables under a header that names
    the setup and the machine, write them to ``args.out`` too.

    Returns:
        str: The tables (markdown).
    """
    from mmclip.benchmarks.accumulation import (format_accumulation_table,
                                                measure_accumulation)
    from mmclip.benchmarks.int8 import (format_int8_table,
                                        measure_int8_image_encode)
    results = measure(args)
    tables = [format_table(results)] if results else []
    if 'onnx' in args.rows and args.device == 'cpu':  # ORT's CPU provider
        tables.append(format_onnx_table(measure_onnx_image_encode(args)))
    if 'int8' in args.rows and args.device == 'cpu':
        tables.append(format_int8_table(measure_int8_image_encode(
            args.arch, args.image_batch, args.repeats)))
    if 'accum' in args.rows:
        tables.append(format_accumulation_table(measure_accumulation(args),
                                                args.device))
    if 'search' in args.rows:
        from mmclip.benchmarks.search import (format_search_table,
                                              measure_query_latency)
        tables.append(format_search_table(
            measure_query_latency(args.search_vectors),
            args.search_vectors))
    table = '\n\n'.join(tables)
    accum = (f', accum steps {args.accum_steps}'
             if 'accum' in args.rows else '')
    header = (
        f'{ARCH_NAMES[args.arch]}, {args.dtype}'
        f'{", torch.compile" if args.compile else ""}, '
        f'{describe_machine(args.device)}; image batch {args.image_batch}, '
        f'text batch {args.text_batch}, train batch {args.train_batch}'
        f'{accum}, best of {args.repeats}')
    print(header)
    print(table)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(f'{header}\n\n{table}\n')
    return table


def main(argv=None) -> int:
    from mmclip.apis.cli import run_tool
    return run_tool(run, parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
