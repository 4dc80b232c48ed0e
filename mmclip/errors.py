"""Errors about input a user can fix: a value that cannot work, a file that
is not there. Their message names the input and the fix, so the tools print
them as one ``error: ...`` line with exit status 1 (see
:mod:`mmclip.apis.cli`) instead of a traceback.

Plain Python with no imports, so that every room of the package, down to
the datasets, can raise them.
"""


class ConfigError(ValueError):
    """A config or command-line value that cannot work, with its fix."""


class MissingFileError(FileNotFoundError):
    """A file or folder that a config or command line names is missing."""
