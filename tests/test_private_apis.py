"""mmclip reads no private name (``obj._name``) of torch, mmengine or
mmpretrain objects, except where no public way exists: each such place is
listed here with the reason, and has a test that fails if the library
changes the name."""
import ast
import glob
import os.path as osp

from conftest import REPO_ROOT

#: (file, attribute): why it is allowed.
ALLOWED = {
    ('mmclip/utils/checkpoint.py', '_get_checkpoint_loader'):
    'mmengine has no public getter for a registered checkpoint scheme '
    '(registered_checkpoint_loader; tests/test_utils/test_checkpoint.py)',
    ('mmclip/models/multimodal/clip_model.py', '_version'):
    "Tensor._version, torch's in-place version counter, has no public "
    'equivalent (text_fingerprint)',
    # Set on mmclip's own model: the attributes mmpretrain.get_model sets and
    # its inferencers read.
    ('mmclip/apis/model.py', '_config'): 'mmpretrain.get_model protocol',
    ('mmclip/apis/model.py', '_metainfo'): 'mmpretrain.get_model protocol',
    ('mmclip/apis/model.py', '_dataset_meta'): 'mmpretrain.get_model protocol',
}


def private_attributes(path: str):
    """``(line, name)`` of every ``x._name`` in ``path`` whose ``x`` is not
    ``self`` or ``cls`` (dunders left out)."""
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if (isinstance(node, ast.Attribute) and node.attr.startswith('_')
                and not node.attr.startswith('__') and not (
                    isinstance(node.value, ast.Name)
                    and node.value.id in ('self', 'cls'))):
            yield node.lineno, node.attr


def test_no_private_names_of_other_objects():
    found = sorted(
        f'{osp.relpath(path, REPO_ROOT)}:{line} reads .{name}'
        for path in glob.glob(
            osp.join(REPO_ROOT, 'mmclip', '**', '*.py'), recursive=True)
        for line, name in private_attributes(path)
        if (osp.relpath(path, REPO_ROOT), name) not in ALLOWED)
    assert not found, found
