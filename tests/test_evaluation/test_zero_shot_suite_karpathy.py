"""Retrieval in the zero-shot suite from the Karpathy test splits in COCO's
captions layout, where mmclip's retrieval configs read them
(CocoCaptionDataset), scored with the suite's recall@k."""
import json
import os

from test_zero_shot_suite import (COLOURS, _evaluate, _png,  # noqa: F401
                                  model, write_retrieval_export)

from mmclip.evaluation.zero_shot_suite import (DATASETS, SuiteDataset,
                                               find_dataset)


def write_karpathy_split(root, annotations: str, prefix: str = '',
                         count: int = 4) -> None:
    """``count`` images with two captions each, the same as
    ``write_retrieval_export`` writes, as COCO captions JSON: ``images``
    ``{id, file_name}``, ``annotations`` ``{image_id, caption}``."""
    images, captions = [], []
    os.makedirs(root / prefix / 'val2014')
    for index in range(count):
        colour = COLOURS[index % len(COLOURS)]
        name = f'val2014/COCO_val2014_{index:012d}.png'
        (root / prefix / name).write_bytes(_png(colour, 20 * index))
        images.append(dict(id=500 + index, file_name=name))
        for caption in (f'a {colour} square {index}',
                        f'a plain {colour} picture'):
            captions.append(dict(image_id=500 + index, caption=caption))
    os.makedirs((root / annotations).parent, exist_ok=True)
    (root / annotations).write_text(
        json.dumps(dict(images=images, annotations=captions)))


def test_coco_karpathy_split_scores_as_its_export(model, tmp_path):  # noqa
    spec = DATASETS['mscoco_captions']
    write_karpathy_split(tmp_path / 'data' / 'coco', spec.annotations)
    data = find_dataset(spec, str(tmp_path / 'data'))
    assert [(key, ordinal) for key, _, ordinal in data.samples()] == [
        (f'val2014/COCO_val2014_{i:012d}.png', i) for i in range(4)]
    assert data.captions[1] == ['a green square 1', 'a plain green picture']
    report = _evaluate(model, [spec], tmp_path / 'data', tmp_path / 'out')
    assert report.records[0]['task'] == 'zeroshot_retrieval'
    assert report.counts['mscoco_captions'] == dict(samples=4, skipped=0)
    # The same images and captions as a clip_benchmark export: the same
    # scores.
    write_retrieval_export(str(tmp_path / 'export' / 'wds_squares'))
    export = _evaluate(model, [SuiteDataset('squares')],
                       tmp_path / 'export', tmp_path / 'out_export')
    assert report.records[0]['metrics'] == export.records[0]['metrics']


def test_flickr30k_images_are_under_their_prefix(tmp_path):
    spec = DATASETS['flickr30k']
    write_karpathy_split(tmp_path / 'flickr30k', spec.annotations,
                         prefix='flickr30k-images', count=2)
    data = find_dataset(spec, str(tmp_path))
    assert [key for key, _, _ in data.samples()] == [
        f'flickr30k-images/val2014/COCO_val2014_{i:012d}.png'
        for i in range(2)]
    assert all(os.path.isfile(path) for path in data.files)
    assert spec.where().startswith(
        'flickr30k/ (annotations/flickr30k_karpathy_test_captions.json: '
        "the Karpathy test split in COCO's captions layout")


def _karpathy_file(path, filepath: str = 'val2014') -> None:
    """Karpathy's dataset_coco.json layout: a train and two test images."""
    images = []
    for imgid, split in enumerate(('train', 'test', 'test')):
        image = dict(imgid=imgid, split=split, cocoid=900 + imgid,
                     filename=f'COCO_val2014_{imgid:012d}.png',
                     sentences=[dict(raw=f'caption {imgid}.{k}', sentid=k,
                                     tokens=['caption']) for k in range(2)])
        if filepath:
            image['filepath'] = filepath
        images.append(image)
    path.write_text(json.dumps(dict(images=images, dataset='coco')))


def test_karpathy_file_converts_for_the_suite_and_configs(tmp_path):
    from conftest import load_tool
    spec = DATASETS['mscoco_captions']
    root = tmp_path / 'coco'
    write_karpathy_split(root, 'ignored.json', count=3)
    _karpathy_file(tmp_path / 'dataset_coco.json')
    tool = load_tool('dataset_converters/karpathy_to_coco_captions.py')
    assert tool.main([str(tmp_path / 'dataset_coco.json'),
                      str(root / spec.annotations)]) == 0
    data = find_dataset(spec, str(tmp_path))
    # The test split only, images as filepath/filename.
    assert [key for key, _, _ in data.samples()] == [
        'val2014/COCO_val2014_000000000001.png',
        'val2014/COCO_val2014_000000000002.png']
    assert data.captions == {0: ['caption 1.0', 'caption 1.1'],
                             1: ['caption 2.0', 'caption 2.1']}


def test_karpathy_split_not_in_the_file_is_one_error_line(tmp_path,
                                                          capsys):
    from conftest import load_tool
    _karpathy_file(tmp_path / 'dataset_flickr30k.json', filepath='')
    tool = load_tool('dataset_converters/karpathy_to_coco_captions.py')
    assert tool.main([str(tmp_path / 'dataset_flickr30k.json'),
                      str(tmp_path / 'out.json'), '--split', 'val']) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith(
        "no image of split 'val' (the file has ['test', 'train']); pass one "
        "of those, or Karpathy's dataset_<name>.json.")
    assert tool.main([str(tmp_path / 'dataset_flickr30k.json'),
                      str(tmp_path / 'out.json')]) == 0
    out = json.loads((tmp_path / 'out.json').read_text())
    # Flickr30k's file has no filepath: the bare file names.
    assert [i['file_name'] for i in out['images']] == [
        'COCO_val2014_000000000001.png', 'COCO_val2014_000000000002.png']
