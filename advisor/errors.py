"""Domain exceptions: every error a user can cause, each with a one-line message and what to do next."""

from __future__ import annotations

from collections.abc import Sequence


class AdvisorError(Exception):
    """Base class for errors the CLI turns into one line (no traceback) and a non-zero exit.

    Args:
        message: what is wrong, naming the file/model involved.
        hint: what the user can do about it (the next command to run, a flag to pass).
    """

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(AdvisorError):
    """Bad option values or combinations."""

    exit_code = 2


def check_choice(value: object, choices: Sequence[str], what: str) -> None:
    """Raise ``UsageError("unknown {what} {value!r}")``, hinting at `choices`, when `value` is not one of them."""
    if value not in choices:
        raise UsageError(f"unknown {what} {value!r}", hint=f"use one of {', '.join(choices)}")


class CatalogError(AdvisorError):
    """The catalog data is missing or invalid."""


class CatalogEntryNotFound(CatalogError):
    """A model id that is not in the catalog."""


class DatasetError(AdvisorError):
    """The user's dataset cannot be read as given."""


class ModelLoadError(AdvisorError):
    """A model could not be built or its weights could not be loaded."""


class WeightsUnavailableOffline(ModelLoadError):
    """Weights need a download but the network or the local cache is unavailable."""


class ScoreError(AdvisorError):
    """Transferability scores cannot be computed from the given inputs."""


class BenchError(AdvisorError):
    """A benchmark could not run as configured."""


class ResultsError(AdvisorError):
    """A stored result or run directory is missing or unreadable."""


class StorageError(AdvisorError):
    """A file could not be written: the disk is full, or the folder is read-only or not ours to write."""


class ResultsNotSaved(StorageError):
    """The work finished but its files could not be written; ``results`` holds what was computed, so the caller
    can still show it before reporting the error."""

    def __init__(self, message: str, hint: str | None = None, results: object = None) -> None:
        super().__init__(message, hint)
        self.results = results
