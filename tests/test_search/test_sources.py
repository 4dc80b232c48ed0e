"""What an index is built from: folders (recursive, non-images listed),
list files (relative paths, captions), webdataset shards (captions, samples
without an image, truncated shards), and the shard members read back."""
import io
import os
import tarfile

import pytest
from PIL import Image

from mmclip.search.sources import (SourceError, iter_shard, list_shards,
                                   open_image_bytes, read_list, source_kind,
                                   walk_folder)


def _png(color=(255, 0, 0)) -> bytes:
    buf = io.BytesIO()
    Image.new('RGB', (8, 8), color).save(buf, 'PNG')
    return buf.getvalue()


def _shard(path, samples, truncate_to=None):
    """A webdataset shard of ``samples`` (``key -> {ext: bytes}``)."""
    with tarfile.open(path, 'w') as tar:
        for key, members in samples.items():
            for ext, data in members.items():
                info = tarfile.TarInfo(f'{key}.{ext}')
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    if truncate_to is not None:
        with open(path, 'r+b') as f:
            f.truncate(truncate_to)
    return str(path)


def test_folder_is_walked_recursively_without_hidden_files(tmp_path):
    (tmp_path / 'b' / 'c').mkdir(parents=True)
    (tmp_path / '.thumbs').mkdir()
    for rel in ('a.jpg', 'b/x.PNG', 'b/c/y.webp', '.hidden.jpg',
                '.thumbs/t.jpg', 'notes.txt', 'b/raw.xmp'):
        (tmp_path / rel).write_bytes(b'x')
    images, others = walk_folder(str(tmp_path))
    rel = [os.path.relpath(p, tmp_path) for p in images]
    assert rel == ['a.jpg', 'b/x.PNG', 'b/c/y.webp']
    assert sorted(os.path.relpath(p, tmp_path) for p in others) == [
        'b/raw.xmp', 'notes.txt']
    assert source_kind(str(tmp_path)) == 'folder'


def test_source_kinds_and_errors(tmp_path):
    (tmp_path / 'list.csv').write_text('filepath,title\n')
    (tmp_path / 'shards').mkdir()
    (tmp_path / 'shards' / '0.tar').write_bytes(b'')
    (tmp_path / 'photo.jpg').write_bytes(b'x')
    assert source_kind(str(tmp_path / 'list.csv')) == 'list'
    assert source_kind(str(tmp_path / 'shards')) == 'shards'
    assert source_kind(str(tmp_path / 'shards' / '0.tar')) == 'shards'
    assert source_kind(str(tmp_path / '{0..1}.tar')) == 'shards'
    with pytest.raises(SourceError, match='does not exist'):
        source_kind(str(tmp_path / 'nope'))
    with pytest.raises(SourceError, match='put it in a folder'):
        source_kind(str(tmp_path / 'photo.jpg'))


def test_list_file_paths_relative_to_it_and_captions(tmp_path):
    (tmp_path / 'sub').mkdir()
    (tmp_path / 'sub' / 'list.csv').write_text(
        'filepath,title\nimg/a.jpg,a cat\n/abs/b.jpg,\n\n')
    records = read_list(str(tmp_path / 'sub' / 'list.csv'))
    assert [r['image_path'] for r in records] == [
        str(tmp_path / 'sub' / 'img' / 'a.jpg'), '/abs/b.jpg']
    assert records[0]['caption'] == 'a cat' and 'caption' not in records[1]
    (tmp_path / 'l.jsonl').write_text('{"path": "x.png"}\n')
    assert read_list(str(tmp_path / 'l.jsonl'), img_key='path')[0][
        'image_path'] == str(tmp_path / 'x.png')
    with pytest.raises(SourceError, match=r"no column 'filepath'.*\['path'\]"
                       r'.*--img-key'):
        read_list(str(tmp_path / 'l.jsonl'))


def test_shard_samples_captions_and_problems(tmp_path):
    shard = _shard(tmp_path / '0.tar', {
        's0': dict(jpg=_png(), txt=b'a red square'),
        's1': dict(json=b'{}'),  # no image member
        's2': dict(png=_png((0, 255, 0))),
    })
    problems = []
    records = list(iter_shard(shard, problems))
    assert [r['image_path'] for r in records] == [
        f'{shard}::s0.jpg', f'{shard}::s2.png']
    assert records[0]['caption'] == 'a red square'
    assert 'caption' not in records[1]
    assert len(problems) == 1 and "'s1' has no image member" in problems[0]
    # Read back by the name the index keeps.
    assert open_image_bytes(records[1]['image_path']) == _png((0, 255, 0))
    with pytest.raises(SourceError, match='no longer in'):
        open_image_bytes(f'{shard}::gone.jpg')


@pytest.mark.parametrize('cut', [2560 + 100, 2560])
def test_truncated_shard_is_named_with_what_was_read(tmp_path, cut):
    """Cut inside a member (tarfile raises) and on a block boundary after a
    whole member (tarfile ends quietly; the missing end blocks tell)."""
    samples = {f's{i}': dict(png=_png((i, 0, 0))) for i in range(6)}
    shard = _shard(tmp_path / 'cut.tar', samples, truncate_to=cut)
    problems = []
    records = list(iter_shard(shard, problems))
    assert 0 < len(records) < 6
    assert len(problems) == 1
    assert f'{shard}: truncated or corrupt after {len(records)} samples' in \
        problems[0]
    whole = _shard(tmp_path / 'whole.tar', samples)
    assert len(list(iter_shard(whole, problems))) == 6
    assert len(problems) == 1


def test_brace_pattern_lists_shards_and_names_missing(tmp_path):
    for i in range(3):
        _shard(tmp_path / f'{i:05d}.tar', {'s': dict(png=_png())})
    pattern = str(tmp_path / '{00000..00002}.tar')
    assert list_shards(pattern) == [str(tmp_path / f'{i:05d}.tar')
                                    for i in range(3)]
    assert list_shards(str(tmp_path)) == list_shards(pattern)
    with pytest.raises(SourceError, match=r'1 of the 4 shards.*00003.tar'):
        list_shards(str(tmp_path / '{00000..00003}.tar'))
