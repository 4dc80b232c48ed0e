"""tools/search/serve.py: --help without torch, one error line for a
missing index or a taken port, and the arguments it
hands to ImageSearch and the server."""
import os
import os.path as osp
import socket
import subprocess
import sys
import types

import pytest

from conftest import REPO_ROOT, load_tool

TOOL = osp.join(REPO_ROOT, 'tools', 'search', 'serve.py')


def test_help_answers_without_loading_torch():
    code = ('import runpy, sys; sys.argv = ["serve.py", "--help"]\n'
            'try:\n'
            f'    runpy.run_path("{TOOL}", run_name="__main__")\n'
            'except SystemExit:\n'
            '    pass\n'
            'assert "torch" not in sys.modules, "torch was imported"\n')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True,
                          text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=REPO_ROOT))
    assert proc.returncode == 0, proc.stderr
    assert '--k-max' in proc.stdout and '127.0.0.1' in proc.stdout


def test_a_missing_index_is_one_error_line(tmp_path):
    proc = subprocess.run([sys.executable, TOOL, 'my_index'],
                          cwd=str(tmp_path), capture_output=True, text=True,
                          timeout=300,
                          env=dict(os.environ, PYTHONPATH=REPO_ROOT))
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr
    assert proc.stderr.splitlines() == [
        'error: The index folder my_index does not exist: build it with '
        'python tools/search/index.py FOLDER --model NAME_OR_CONFIG --out '
        'my_index']


class Recorder:
    """Stands in for ImageSearch and serve, recording their arguments."""

    def __init__(self):
        self.calls = []

    def image_search(self, index, model=None, checkpoint=None):
        self.calls.append(('ImageSearch', index, model, checkpoint))
        return 'the searcher'

    def serve(self, searcher, **kwargs):
        self.calls.append(('serve', searcher, kwargs))


@pytest.fixture
def recorder(monkeypatch):
    recorder = Recorder()
    module = types.ModuleType('mmclip.apis.search')
    module.ImageSearch = recorder.image_search
    monkeypatch.setitem(sys.modules, 'mmclip.apis.search', module)
    monkeypatch.setattr('mmclip.search.server.serve', recorder.serve)
    return recorder


def test_hands_the_arguments_to_image_search_and_serve(tmp_path, recorder):
    tool = load_tool('search/serve.py')
    tool.run(tool.parse_args([
        str(tmp_path), '--model', 'clip_vit-base-p32', '--checkpoint',
        'c.pth', '--port', '0', '--k-max', '50', '--max-body-mb', '2']))
    assert recorder.calls == [
        ('ImageSearch', str(tmp_path), 'clip_vit-base-p32', 'c.pth'),
        ('serve', 'the searcher', dict(host='127.0.0.1', port=0, max_k=50,
                                       max_body_bytes=2 * 2**20))]


def test_a_taken_port_is_one_error_line(tmp_path, monkeypatch, capsys):
    tool = load_tool('search/serve.py')
    searcher = types.SimpleNamespace(
        name='x', count=0, query_text=None, query_image=None,
        image_path=None)
    monkeypatch.setattr(tool, 'load_searcher', lambda args: searcher)
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert tool.main([str(tmp_path), '--port', str(port)]) == 1
    err = capsys.readouterr().err
    assert err == (f'error: Cannot listen on 127.0.0.1:{port} (Address '
                   'already in use); pass another --port (0 picks a free '
                   'one) or --host.\n')
