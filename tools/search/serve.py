"""Serve an image index on a page in the browser and clip-retrieval's
``/knn-service`` API.

    python tools/search/serve.py INDEX [--model NAME_OR_CONFIG]
        [--checkpoint CKPT] [--port 8000] [--host 127.0.0.1]
        [--k-max 1000] [--max-body-mb 16]

``INDEX`` is a folder written by ``tools/search/index.py``; the model and
checkpoint default to the ones it was built with. Open the printed address,
type a query or drop an image on the page. The server listens on
127.0.0.1 (this machine only) unless ``--host`` says otherwise; Ctrl-C
stops it. The routes and the request/response JSON are described in
:mod:`mmclip.search.server`.
"""
import argparse
import errno
import os.path as osp
import sys


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description='Serve an image index: a search page and '
        "clip-retrieval's /knn-service API")
    p.add_argument('index', metavar='INDEX',
                   help='index folder written by tools/search/index.py')
    p.add_argument('--model', help='config name, model name or config '
                   'file (default: the one the index was built with)')
    p.add_argument('--checkpoint', help='mmclip checkpoint (default: the '
                   'one the index was built with)')
    p.add_argument('--port', type=int, default=8000,
                   help='TCP port; 0 picks a free one (default: 8000)')
    p.add_argument('--host', default='127.0.0.1',
                   help='address to listen on (default: 127.0.0.1, this '
                   'machine only; 0.0.0.0 opens it to the network)')
    p.add_argument('--k-max', type=int, default=1000,
                   help='most results one request gets (default: 1000)')
    p.add_argument('--max-body-mb', type=float, default=16,
                   help='largest request body in MiB, e.g. a base64 query '
                   'image (default: 16)')
    return p.parse_args(argv)


def load_searcher(args):
    """:class:`mmclip.apis.search.ImageSearch` over ``args.index``.

    Raises:
        MissingFileError: The index folder is not there.
    """
    from mmclip.errors import MissingFileError
    if not osp.isdir(args.index):
        raise MissingFileError(
            f'The index folder {args.index} does not exist: build it with '
            'python tools/search/index.py FOLDER --model NAME_OR_CONFIG '
            f'--out {args.index}')
    from mmclip.apis.search import ImageSearch
    return ImageSearch(args.index, model=args.model,
                       checkpoint=args.checkpoint)


def run(args) -> None:
    """Load the index and model, then answer requests until Ctrl-C.

    Raises:
        ConfigError: A bad ``--k-max``/``--max-body-mb``, or the port is
            taken or not allowed.
    """
    from mmclip.errors import ConfigError
    from mmclip.search.server import serve
    if args.k_max < 1 or args.max_body_mb <= 0:
        raise ConfigError('--k-max and --max-body-mb must be positive.')
    searcher = load_searcher(args)
    try:
        serve(searcher, host=args.host, port=args.port, max_k=args.k_max,
              max_body_bytes=int(args.max_body_mb * 2**20))
    except OSError as err:
        if err.errno not in (errno.EADDRINUSE, errno.EACCES,
                             errno.EADDRNOTAVAIL):
            raise
        raise ConfigError(
            f'Cannot listen on {args.host}:{args.port} ({err.strerror}); '
            'pass another --port (0 picks a free one) or --host.') from None


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmclip.apis.cli import run_tool  # after parsing: --help is fast
    return run_tool(run, args)


if __name__ == '__main__':
    sys.exit(main())
