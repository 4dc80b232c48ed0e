"""The library's rooms import downwards only: the runtime pieces below
``mmclip.apis`` (hooks, datasets, metrics, the models, the ONNX export) do
not reach up into it, so ``apis`` can build on them without import cycles or
lazy imports that hide the dependency."""
import ast
import glob
import os.path as osp

import pytest

from conftest import REPO_ROOT

#: Packages that must not import ``mmclip.apis`` (at any depth, lazily
#: inside functions included).
BELOW_APIS = ('datasets', 'deployment', 'engine', 'evaluation', 'models',
              'search')

#: mmclip's rooms from the top down. A module imports from its own room and
#: from lower layers only (lazy imports inside functions included); rooms of
#: one layer do not import each other. ``utils`` is high because
#: ``register_all_modules`` imports every room that registers modules.
LAYERS = (('benchmarks', ), ('apis', ), ('utils', ),
          ('converters', 'evaluation', 'search'), ('deployment', 'engine'),
          ('visualization', ), ('models', ), ('datasets', ),
          ('dependencies', 'deprecation', 'errors', 'model_index',
           'registry', 'version', 'zero_shot_cache'))


def imported_modules(path: str):
    """Absolute names of every module ``path`` imports, relative imports
    resolved against its package."""
    package = osp.relpath(osp.dirname(path), REPO_ROOT).split(osp.sep)
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level \
                else []
            module = '.'.join(base + ([node.module] if node.module else []))
            yield module
            yield from (f'{module}.{alias.name}' for alias in node.names)


@pytest.mark.parametrize('room', BELOW_APIS)
def test_room_does_not_import_apis(room):
    files = glob.glob(osp.join(REPO_ROOT, 'mmclip', room, '**', '*.py'),
                      recursive=True)
    assert files
    upward = sorted(
        f'{osp.relpath(path, REPO_ROOT)} imports {name}' for path in files
        for name in set(imported_modules(path))
        if name == 'mmclip.apis' or name.startswith('mmclip.apis.'))
    assert not upward, upward


def test_every_import_points_down():
    layer_of = {room: depth for depth, rooms in enumerate(LAYERS)
                for room in rooms}
    files = glob.glob(osp.join(REPO_ROOT, 'mmclip', '**', '*.py'),
                      recursive=True)
    upward = []
    for path in files:
        parts = osp.relpath(path, osp.join(REPO_ROOT, 'mmclip')).split(osp.sep)
        room = osp.splitext(parts[0])[0]
        if room == '__init__':  # the package itself may import any room
            continue
        assert room in layer_of, f'{room} is not in LAYERS'
        for name in set(imported_modules(path)):
            target = name.split('.')
            if target[0] != 'mmclip' or len(target) < 2 or target[1] == room:
                continue
            if layer_of.get(target[1], -1) <= layer_of[room]:
                upward.append(f'{osp.relpath(path, REPO_ROOT)} imports {name}')
    assert not upward, sorted(upward)


def test_only_the_tools_import_the_benchmarks():
    """``mmclip.benchmarks`` measures the public API, above ``apis``: no
    other room imports it."""
    files = [path for path in glob.glob(
        osp.join(REPO_ROOT, 'mmclip', '**', '*.py'), recursive=True)
        if osp.join('mmclip', 'benchmarks', '') not in path]
    upward = sorted(
        f'{osp.relpath(path, REPO_ROOT)} imports {name}' for path in files
        for name in set(imported_modules(path))
        if name.startswith('mmclip.benchmarks'))
    assert not upward, upward


@pytest.mark.parametrize('module', ['errors', 'zero_shot_cache'])
def test_bottom_modules_import_nothing_of_mmclip(module):
    """Every room raises mmclip.errors and both zero-shot classifiers
    (PyTorch head, ONNX scorer) use mmclip.zero_shot_cache: they stand
    below all of them."""
    path = osp.join(REPO_ROOT, 'mmclip', f'{module}.py')
    assert not [name for name in imported_modules(path)
                if name.startswith('mmclip')]
