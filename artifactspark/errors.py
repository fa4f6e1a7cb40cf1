"""Exceptions. Each message says what was wrong and what to do about it."""


class ArtifactSparkError(Exception):
    """Base class of the project's errors."""


class ConfigError(ArtifactSparkError):
    """A configuration file or value is invalid; the message names the key."""


class EnvironmentProblem(ArtifactSparkError):
    """Java, Spark or a dependency is missing or of the wrong version."""


class StoreError(ArtifactSparkError):
    """The feature store is missing, from another configuration, or inconsistent."""


class Busy(StoreError):
    """Another run holds the lock (exit code 75, EX_TEMPFAIL: a scheduler should retry later)."""


class LabelError(ArtifactSparkError):
    """An exposure-checker export cannot be read at all (single bad records are counted, not raised)."""


class InputRejected(ArtifactSparkError):
    """One input CCD cannot be turned into a feature row; it goes to the quarantine table.

    ``reason`` is a short stable code (queryable), ``str(exc)`` the human detail.
    """

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class UnsafeStore(StoreError):
    """A store's metadata holds a pickle that names code outside the feature schema's own classes
    (a tampered or foreign store): it is refused before anything unpickles it."""
