"""Exception types the CLI turns into one-line messages (style guideline 11)."""

from __future__ import annotations


class HarnessError(Exception):
    """Base class: a user-facing problem whose message names the culprit and what was expected."""


class ConfigError(HarnessError):
    """A config file, key or value is wrong."""


class RegistryError(HarnessError):
    """An unknown or duplicate name in a registry."""


class DataError(HarnessError):
    """A dataset file is missing, unreadable or malformed."""


class TrainingError(HarnessError):
    """Training cannot go on (e.g. a non-finite loss)."""


class CheckpointError(HarnessError):
    """A checkpoint is missing, corrupt or does not fit the model."""


class RunInterrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM stopped training gracefully: the state after the last step was checkpointed.

    A KeyboardInterrupt, so code that treats Ctrl-C as "stop now" keeps doing so.
    """

    def __init__(self, message: str, signum: int | None = None):
        super().__init__(message)
        self.signum = signum
