"""Rows of ``tools/benchmarks/benchmark.py`` that start from JPEG files.

- the training input pipeline: JPEG decode, RandomResizedCrop, tokenisation
  and collate of image-caption pairs, in one process with one torch thread,
  as one DataLoader worker runs it: samples/s per worker. mmclip's is the
  ``train_pipeline`` of ``configs/_base_/datasets/cc3m_wds_clip.py`` with
  mmengine's ``pseudo_collate`` (the default of mmclip's configs; the
  model's data preprocessor stacks and normalises on the device), open_clip's
  is ``image_transform(224, is_train=True)`` on ``Image.open`` plus its
  tokenizer per caption and torch's ``default_collate``, as its
  ``CsvDataset`` does; then mmclip's with the JPEGs left encoded for the
  device (``RandomResizedCropOnDevice``), and the device's side of that:
  decoding (nvJPEG on a GPU), cropping and normalising the batch
  (``DeviceDecodeDataPreprocessor``);
- folder inference: JPEG files to probabilities over 5 labels (decode,
  OpenAI preprocessing, image encode, softmax), mmclip's ``inference_model``
  on the folder vs the usual loop with open_clip's ``image_transform`` /
  transformers' ``CLIPImageProcessor`` and the encoders.
"""
import os
import os.path as osp
import tempfile
from functools import partial
from typing import Callable, Dict, Sequence

import torch

from .data import make_benchmark_captions, write_photo_folder
from .timing import best_rates, device_sync

#: The dataset config whose ``train_pipeline`` is measured, under mmclip's
#: configs (the installed package's copy or the source tree's).
TRAIN_DATA_CONFIG = osp.join('_base_', 'datasets', 'cc3m_wds_clip.py')


def input_pipelines(px: int = 224) -> Dict[str, Callable]:
    """``{library: fn(list of (jpeg path, caption)) -> collated batch}``."""
    import open_clip
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from PIL import Image
    from torch.utils.data import default_collate

    from mmclip.apis.model import config_roots
    from mmclip.datasets.pipelines import build_pipeline
    config = osp.join(config_roots()[0], TRAIN_DATA_CONFIG)
    ours = build_pipeline(Config.fromfile(config).train_pipeline)
    image_transform = open_clip.image_transform(
        px, is_train=True, mean=open_clip.OPENAI_DATASET_MEAN,
        std=open_clip.OPENAI_DATASET_STD)
    tokenize = open_clip.get_tokenizer('ViT-B-32')
    return {
        'mmclip': lambda pairs: pseudo_collate(
            [ours(dict(img_path=path, text=text)) for path, text in pairs]),
        'open_clip': lambda pairs: default_collate(
            [(image_transform(Image.open(path)), tokenize([text])[0])
             for path, text in pairs]),
    }


def device_decode_pipeline(px: int = 224) -> Callable:
    """The training pipeline of :func:`input_pipelines` with JPEGs left for
    the device (``RandomResizedCropOnDevice``): ``fn(pairs) -> batch``."""
    from mmengine.dataset import pseudo_collate

    from mmclip.datasets.pipelines import build_pipeline
    pipeline = build_pipeline([
        dict(type='SampleCaption'),
        dict(type='TokenizeText'),
        dict(type='RandomResizedCropOnDevice', scale=px,
             crop_ratio_range=(0.9, 1.0)),
        dict(type='PackImageText')])
    return lambda pairs: pseudo_collate(
        [pipeline(dict(img_path=path, text=text)) for path, text in pairs])


def measure_input_pipeline(args) -> Dict[str, dict]:
    """Samples/s per worker of the training input pipelines on
    ``args.pipeline_images`` JPEGs of 1600x1200 (1.9 MP) with captions,
    best of ``args.repeats`` passes (:func:`~.timing.best_rates`); then
    mmclip's with the JPEGs left for the device, and the decoding, cropping
    and normalising of those batches by ``DeviceDecodeDataPreprocessor`` on
    ``args.device``.

    Returns:
        dict: ``{row: {library: samples/s}}``.
    """
    from mmclip.models.multimodal.clip_model import CLIP_DATA_PREPROCESSOR
    from mmclip.registry import MODELS
    fns = input_pipelines()
    deferred = device_decode_pipeline()
    decode = MODELS.build(dict(CLIP_DATA_PREPROCESSOR,
                               type='DeviceDecodeDataPreprocessor'))
    decode.to(args.device)
    sync = device_sync(args.device)
    captions = make_benchmark_captions(args.pipeline_images, seed=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # what a DataLoader worker gets
    try:
        with tempfile.TemporaryDirectory() as folder:
            paths = write_photo_folder(
                folder, len(captions), size=(1600, 1200))
            pairs = list(zip(paths, captions))
            rates = best_rates(
                {name: lambda fn=fn: fn(pairs) for name, fn in fns.items()},
                len(pairs), args.repeats, lambda: None)
            worker = best_rates({'mmclip': lambda: deferred(pairs)},
                                len(pairs), args.repeats, lambda: None)
            batch = deferred(pairs)
    finally:
        torch.set_num_threads(threads)
    on_device = best_rates({'mmclip': lambda: decode(batch, True)},
                           len(pairs), args.repeats, sync)
    rates['transformers'] = None  # no training pipeline
    return {
        'training input pipeline, 1 worker (samples/s)': rates,
        'training input pipeline, JPEGs left for the device, 1 worker '
        '(samples/s)': worker,
        f'JPEG decode + crop + normalise on {args.device} (img/s)':
        on_device,
    }


def peer_pixels(px: int) -> Dict[str, Callable]:
    """``{library: paths -> (B, 3, px, px) pixels}`` for the peers, each
    with its own preprocessing at OpenAI's settings (no hub files), decoding
    one file after another as their examples do."""
    import open_clip
    from PIL import Image
    from transformers import CLIPImageProcessor
    oc_pre = open_clip.image_transform(
        px, is_train=False, mean=open_clip.OPENAI_DATASET_MEAN,
        std=open_clip.OPENAI_DATASET_STD)
    hf_pre = CLIPImageProcessor(size={'shortest_edge': px},
                                crop_size={'height': px, 'width': px})

    def open_clip_pixels(batch):
        return torch.stack([oc_pre(Image.open(p)) for p in batch])

    def hf_pixels(batch):
        images = [Image.open(p).convert('RGB') for p in batch]
        return hf_pre(images=images, return_tensors='pt')['pixel_values']

    return dict(open_clip=open_clip_pixels, transformers=hf_pixels)


def measure_folder_inference(models: dict, encoders: dict, args, px: int,
                             names: Sequence[str],
                             sync: Callable[[], None]) -> Dict[str, float]:
    """Images/s from ``args.folder_images`` JPEG files (1024x768) to
    probabilities over prompts of a few class names.

    Args:
        models (dict): ``{library: model}`` in eval mode.
        encoders (dict): ``{library: (image encoder, text encoder)}``.
        args (Namespace): ``device``, ``torch_dtype``, ``image_batch``,
            ``folder_images``, ``repeats`` of
            ``tools/benchmarks/benchmark.py``.
        px (int): The models' input resolution.
        names (Sequence[str]): Class names, prompted as "a photo of a
            {name}.".
        sync (callable): Waits for the device.

    Returns:
        dict: ``{library: images/s}``.
    """
    import open_clip

    from mmclip.apis import inference_model
    labels = [f'a photo of a {name}.' for name in names]
    ids = open_clip.tokenize(labels).to(args.device)
    pixels = peer_pixels(px)

    def loop(name, paths):
        img_enc, txt_enc = encoders[name]
        txt = torch.nn.functional.normalize(txt_enc(ids).float(), dim=-1)
        probs = []
        for i in range(0, len(paths), args.image_batch):
            x = pixels[name](paths[i:i + args.image_batch]).to(
                args.device, args.torch_dtype)
            img = torch.nn.functional.normalize(img_enc(x).float(), dim=-1)
            probs.append((100 * img @ txt.t()).softmax(-1).cpu())
        return torch.cat(probs)

    with tempfile.TemporaryDirectory() as folder:
        paths = write_photo_folder(folder, args.folder_images)
        fns = {
            'mmclip': lambda: inference_model(
                models['mmclip'], folder, texts=labels,
                batch_size=args.image_batch, progress=False),
            'open_clip': lambda: loop('open_clip', paths),
            'transformers': lambda: loop('transformers', paths),
        }
        fns = {name: fn for name, fn in fns.items() if name in models}
        return best_rates(fns, len(paths), args.repeats, sync)


def measure_folder_indexing(models: dict, encoders: dict, args, px: int,
                            sync: Callable[[], None],
                            int8: bool = False) -> Dict[str, float]:
    """Images/s from ``args.folder_images`` JPEG files (1024x768) into a
    search index: mmclip's :func:`mmclip.apis.index_images` (decoding
    threads, parts and metadata written, faiss ``IndexFlatIP``) into a fresh
    folder each round; the peers encode the files in order, normalise and
    add them to the same faiss index, with nothing written.

    Args:
        models, encoders, args, px, sync: As in
            :func:`measure_folder_inference`.
        int8 (bool): On the CPU, also index with the int8 image tower of
            mmclip's model (exported and quantised here), as
            ``'mmclip int8'``. Defaults to False.

    Returns:
        dict: ``{library: images/s}``.
    """
    import faiss

    from mmclip.apis import index_images
    pixels = peer_pixels(px)

    def peer(name, paths):
        img_enc = encoders[name][0]
        index = None
        for i in range(0, len(paths), args.image_batch):
            x = pixels[name](paths[i:i + args.image_batch]).to(
                args.device, args.torch_dtype)
            emb = torch.nn.functional.normalize(img_enc(x).float(), dim=-1)
            emb = emb.cpu().numpy()
            index = index or faiss.IndexFlatIP(emb.shape[1])
            index.add(emb)
        return index

    with tempfile.TemporaryDirectory() as folder:
        os.makedirs(osp.join(folder, 'photos'))
        paths = write_photo_folder(osp.join(folder, 'photos'),
                                   args.folder_images)

        def mmclip(int8_dir=None):
            out = tempfile.mkdtemp(dir=folder)
            index_images(osp.join(folder, 'photos'), out, models['mmclip'],
                         batch_size=args.image_batch, device=args.device,
                         int8_dir=int8_dir, int8_recall_images=0,
                         progress=False)

        fns = {'mmclip': mmclip}
        fns.update({name: (lambda name=name: peer(name, paths))
                    for name in ('open_clip', 'transformers')
                    if name in models})
        if int8 and args.device == 'cpu':
            from mmclip.deployment import export_onnx, quantize_image_tower
            export = osp.join(folder, 'onnx')
            export_onnx(models['mmclip'], export, verify=False)
            quantize_image_tower(export)
            fns['mmclip int8'] = partial(mmclip, export)
        return best_rates(fns, len(paths), args.repeats, sync)
