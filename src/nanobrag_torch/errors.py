"""Errors that end a run with a one-line message instead of a traceback."""


class NanoBraggError(Exception):
    """Base class; `exit_code` is the process exit status the CLI uses."""

    exit_code = 1


class UsageError(NanoBraggError):
    """Command-line misuse: unknown option, missing or bad value."""

    exit_code = 2


class InputFileError(NanoBraggError):
    """An input file is missing, unreadable or malformed (message names file and line)."""

    exit_code = 1
