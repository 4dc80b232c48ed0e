"""What every command-line tool under ``tools/`` does around its work.

Every tool starts with PyTorch's CPU threads fitted to the machine
(:func:`mmclip.engine.threads.configure_threads`: the cores that other
processes leave free, at most ``OMP_NUM_THREADS``); ``tools/train.py`` and
``tools/test.py`` also take ``--threads N`` and ``--log-level`` (see
:func:`runtime_options`); messages below warnings stay off the console
until a runner logs with its config's console level.

Each tool builds its own parser and has a ``run(args)`` that tests can call;
its ``main()`` is::

    def main(argv=None) -> int:
        args = parse_args(argv)
        from mmclip.apis.cli import run_tool  # after parsing: --help is fast
        return run_tool(run, args)

:func:`run_tool` turns the errors a user can act on into one ``error: ...``
line on stderr and exit status 1; anything else keeps its traceback (a bug).
"""
import argparse
import sys
from typing import Callable, Tuple, Type

from mmengine.logging import MMLogger

from mmclip.engine.runner import DEFAULT_CONSOLE_LEVEL
from mmclip.engine.threads import configure_threads
from .preflight import USER_ERRORS


def format_user_error(err: BaseException) -> str:
    """``err`` as the one line a tool prints: ``error: MESSAGE``, the lines
    of a multi-line message joined."""
    message = ' '.join(line.strip() for line in str(err).splitlines())
    return f'error: {message}'


def run_tool(run: Callable[[argparse.Namespace], object],
             args: argparse.Namespace,
             user_errors: Tuple[Type[BaseException], ...] = ()) -> int:
    """Run a tool's work; a user error becomes one line and status 1.

    Args:
        run (callable): The tool's work, ``run(args)``; what it returns is
            not used.
        args (argparse.Namespace): The parsed command line.
        user_errors (tuple[type], optional): The tool's own user errors
            besides :data:`mmclip.apis.preflight.USER_ERRORS` (e.g.
            ``CheckpointMismatchError`` of WiSE-FT). Defaults to ``()``.

    Returns:
        int: The exit status: 0 done, 1 refused (the message is on stderr).
    """
    configure_threads('auto')
    # mmengine's default logger prints INFO; until a runner makes its own
    # (with the config's console level), the tool's messages are warnings.
    MMLogger.get_instance(f'mmclip-tool-{id(args)}',
                          log_level=getattr(args, 'log_level', None)
                          or DEFAULT_CONSOLE_LEVEL)
    try:
        run(args)
    except USER_ERRORS + tuple(user_errors) as err:
        print(format_user_error(err), file=sys.stderr)
        return 1
    return 0


def runtime_options(args: argparse.Namespace) -> dict:
    """``args.cfg_options`` with the runtime flags as config keys:
    ``--threads`` as ``cpu_threads`` and ``--log-level`` as
    ``console_log_level`` (read by :func:`mmclip.engine.build_runner`).

    Args:
        args (argparse.Namespace): A parsed command line with
            ``cfg_options`` and, optionally, ``threads`` and ``log_level``.

    Returns:
        dict: The options to merge into the config.
    """
    options = dict(args.cfg_options or {})
    if getattr(args, 'threads', None) is not None:
        options['cpu_threads'] = args.threads
    if getattr(args, 'log_level', None) is not None:
        options['console_log_level'] = args.log_level
    return options
