"""kerascnn's error classes for failures a user can fix.

:class:`UserInputError` (a ``ValueError``) is raised for expected failures caused by the
input: a bad data file, a run folder that would be clobbered, a recipe value that cannot
train, a model file that is not a ``.keras`` file. The command line prints such errors as one
line; unexpected exceptions keep their traceback (see :mod:`kerascnn.cli`).
"""

from __future__ import annotations

__all__ = [
    "DataValidationError",
    "KerascnnError",
    "RunFolderError",
    "UserInputError",
]


class KerascnnError(Exception):
    """Base class of kerascnn's expected errors."""


class UserInputError(KerascnnError, ValueError):
    """An input the user can fix; the message names the file / argument, the value and the
    way forward."""


class RunFolderError(UserInputError):
    """The run folder cannot be used: it holds a finished run (pass ``overwrite=True``), is
    not writable, or holds a backup that does not belong to this run."""


class DataValidationError(UserInputError):
    """A data set cannot be trained on or evaluated as given (pixel dtype or range, labels,
    empty classes); the message names the file and the value."""
