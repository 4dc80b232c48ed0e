"""The zero-shot suite against clip_benchmark on the same small datasets:
``N`` classification exports in clip_benchmark's webdataset layout, each
evaluated from scratch (classifier built, images decoded and encoded,
metrics) by :func:`mmclip.evaluation.zero_shot_suite.evaluate_suite` with
mmclip's model, and by clip_benchmark's ``eval`` path dataset by dataset
(its wds reader, ``zero_shot_classifier``, ``run_classification``) with
open_clip's model of the same architecture.

clip_benchmark's DataLoader runs in the main process (``num_workers=0``):
each export is one shard, which one worker would read anyway, and worker
start-up would count against it. The suite decodes with its default
threads.
"""
import io
import os
import os.path as osp
import shutil
import tarfile
import tempfile
from typing import Callable, Dict, List, Union

import torch
from sklearn.metrics import balanced_accuracy_score

from .data import write_photo_folder
from .timing import best_rates

#: Class names of the generated exports (the label is the image's index
#: modulo their count).
SUITE_CLASSES = ('astronaut', 'cat', 'coffee', 'rocket', 'dog')


def write_exports(root: str, count: int, images: int) -> List[str]:
    """``count`` exports ``wds_bench<i>`` under ``root``, each of
    ``images`` JPEGs (scikit-image's photos at 500x375), 5 classes and 2
    templates. Returns the dataset names."""
    os.makedirs(osp.join(root, 'photos'))
    photos = write_photo_folder(osp.join(root, 'photos'), images, (500, 375))
    names = []
    for index in range(count):
        name = f'bench{index}'
        folder = osp.join(root, f'wds_{name}')
        os.makedirs(osp.join(folder, 'test'))
        with tarfile.open(osp.join(folder, 'test', '0.tar'), 'w') as tar:
            for number, photo in enumerate(photos):
                with open(photo, 'rb') as f:
                    members = dict(jpg=f.read(), cls=str(
                        number % len(SUITE_CLASSES)).encode())
                for ext, data in members.items():
                    info = tarfile.TarInfo(f's{number:06d}.{ext}')
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        for file, lines in (
            ('test/nshards.txt', ['1']),
            ('classnames.txt', SUITE_CLASSES),
            ('zeroshot_classification_templates.txt',
             ['a photo of a {c}.', 'a picture of the {c}.']),
        ):
            with open(osp.join(folder, file), 'w') as f:
                f.write('\n'.join(lines) + '\n')
        names.append(name)
    return names


def measure_suite_vs_clip_benchmark(
        models: Dict[str, torch.nn.Module], datasets: int, images: int,
        batch_size: int, repeats: int,
        sync: Callable[[], None]) -> Dict[str, Union[float, str]]:
    """Datasets/s of the suite (``'mmclip'``) and of clip_benchmark
    (``'open_clip'``: it runs open_clip's model).

    Args:
        models (dict): ``mmclip`` and ``open_clip`` models
            (:func:`~.peers.build_models`).
        datasets (int): Exports evaluated per round.
        images (int): Images per export.
        batch_size (int): Images per forward pass, both sides.
        repeats (int): Timed rounds (:func:`~.timing.best_rates`).
        sync (callable): Waits for the device.

    Returns:
        dict: ``{'mmclip': datasets/s, 'open_clip': datasets/s}``, or the
        reason as ``'open_clip'``'s value when clip-benchmark cannot be
        imported.
    """
    from mmclip.apis.preprocess import build_eval_transform, collate_images
    from mmclip.evaluation.zero_shot_suite import SuiteDataset, evaluate_suite
    model = models['mmclip']
    try:
        import open_clip
        from clip_benchmark.datasets.builder import build_wds_dataset
        from clip_benchmark.metrics import zeroshot_classification as cb
    except ImportError as err:
        return dict(mmclip='—', open_clip='clip-benchmark cannot be '
                    f'imported ({err}): pip install clip-benchmark')
    reference = models['open_clip']
    root = tempfile.mkdtemp(prefix='mmclip_suite_bench_')
    try:
        names = write_exports(root, datasets, images)
        transform = build_eval_transform(model)
        preprocess = open_clip.image_transform(
            reference.visual.image_size, is_train=False)
        device = next(reference.parameters()).device.type

        def encode(packed):
            return model.encode_image(collate_images(model, packed))

        def suite():
            out = tempfile.mkdtemp(dir=root)  # no kept features
            evaluate_suite(model, [SuiteDataset(n) for n in names], root,
                           out, transform, encode, 'bench', 'random',
                           cache_dir=None, batch_size=batch_size)
            shutil.rmtree(out)

        def clip_benchmark():
            for name in names:
                dataset = build_wds_dataset(
                    name, transform=preprocess,
                    data_dir=osp.join(root, f'wds_{name}'))
                classifier = cb.zero_shot_classifier(
                    reference, open_clip.tokenize, dataset.classes,
                    dataset.templates, device, amp=False)
                logits, target = cb.run_classification(
                    reference, classifier,
                    torch.utils.data.DataLoader(dataset,
                                                batch_size=batch_size),
                    device, amp=False)
                # Its metrics (evaluate()'s accuracy() stops under NumPy 2).
                logits.topk(min(5, logits.shape[1]), 1)
                balanced_accuracy_score(target, logits.argmax(1))

        return best_rates(dict(mmclip=suite, open_clip=clip_benchmark),
                          datasets, repeats, sync)
    finally:
        shutil.rmtree(root, ignore_errors=True)
