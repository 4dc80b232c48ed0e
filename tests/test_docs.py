"""The README and the guides in ``docs/`` run as written: every
``python tools/...`` command of their ``bash`` blocks parses with the tool's
own argument parser, every config, tool and guide they name exists, and
every ``python`` block is valid Python. (``docs/training.md``'s launcher
commands are followed further, into torchrun and srun, by
``tests/test_tools/test_launch.py``.)"""
import ast
import glob
import os.path as osp
import re
import shlex

import pytest

from conftest import REPO_ROOT, load_tool, markdown_blocks

PAGES = sorted([osp.join(REPO_ROOT, 'README.md')] +
               glob.glob(osp.join(REPO_ROOT, 'docs', '*.md')))
GUIDES = ('getting_started', 'training', 'evaluation', 'inference',
          'converting_weights', 'fine_tuning', 'benchmarks', 'deployment',
          'own_data', 'search')


def commands(page: str):
    """Shell commands of a page, continuation lines joined, as word lists
    without comments and leading ``VAR=value`` assignments."""
    found = []
    for block in markdown_blocks(page, 'bash'):
        for line in block.replace('\\\n', ' ').splitlines():
            words = shlex.split(line, comments=True)
            while words and re.match(r'^[A-Z_]+=', words[0]):
                words.pop(0)
            if words:
                found.append(words)
    return found


def page_id(page):
    return osp.relpath(page, REPO_ROOT)


def test_every_guide_exists_and_the_readme_links_it():
    with open(osp.join(REPO_ROOT, 'README.md')) as f:
        readme = f.read()
    for guide in GUIDES:
        path = f'docs/{guide}.md'
        assert osp.isfile(osp.join(REPO_ROOT, path)), path
        assert f']({path})' in readme, f'README.md does not link {path}'


@pytest.mark.parametrize('page', PAGES, ids=page_id)
def test_tool_commands_parse(page, monkeypatch):
    # tools/train.py and tools/test.py export LOCAL_RANK for mmengine.
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    for words in commands(page):
        for word in words:
            if re.match(r'^(configs|tools)/\S+\.(py|sh)$', word):
                assert osp.isfile(osp.join(REPO_ROOT, word)), \
                    f'{page_id(page)} names a missing {word}'
        if words[0] != 'python' or not words[1].startswith('tools/'):
            continue
        tool = load_tool(osp.relpath(words[1], 'tools'))
        try:
            tool.parse_args(words[2:])
        except SystemExit as exit:
            raise AssertionError(
                f'{page_id(page)}: {shlex.join(words)!r} does not parse '
                f'(exit {exit.code})') from None


#: Arguments of the tools that name a file or folder they write.
OUTPUT_ARGUMENTS = ('out', 'out_dir', 'dst', 'show_dir', 'save_features',
                    'work_dir')


def git_ignored_folders() -> set:
    """The top-level folders the repository's ``.gitignore`` ignores
    (``work_dirs/``, ``/data/``, ...)."""
    with open(osp.join(REPO_ROOT, '.gitignore')) as f:
        entries = [line.strip() for line in f]
    return {e.strip('/') for e in entries
            if e.endswith('/') and '*' not in e and '/' not in e.strip('/')}


@pytest.mark.parametrize('page', PAGES, ids=page_id)
def test_tool_outputs_land_in_ignored_folders(page, monkeypatch):
    """A documented command, run in a checkout, leaves nothing untracked:
    what it writes goes below a git-ignored folder such as work_dirs/."""
    monkeypatch.delenv('LOCAL_RANK', raising=False)
    ignored = git_ignored_folders()
    assert 'work_dirs' in ignored
    for words in commands(page):
        if words[0] != 'python' or not words[1].startswith('tools/'):
            continue
        args = load_tool(osp.relpath(words[1], 'tools')).parse_args(words[2:])
        for name in OUTPUT_ARGUMENTS:
            path = getattr(args, name, None)
            if isinstance(path, str) and not osp.isabs(path):
                assert path.split('/')[0] in ignored, (
                    f'{page_id(page)}: {shlex.join(words)!r} writes '
                    f'{path!r}, outside the git-ignored {sorted(ignored)}')


@pytest.mark.parametrize('page', PAGES, ids=page_id)
def test_python_blocks_are_valid_python(page):
    for block in markdown_blocks(page, 'python'):
        ast.parse(block)


@pytest.mark.parametrize('page', PAGES, ids=page_id)
def test_links_to_repository_files_resolve(page):
    with open(page) as f:
        text = f.read()
    for target in re.findall(r'\]\(([^)#\s]+)\)', text):
        if re.match(r'^[a-z]+://', target):
            continue
        path = osp.normpath(osp.join(osp.dirname(page), target))
        assert osp.exists(path), f'{page_id(page)} links a missing {target}'
