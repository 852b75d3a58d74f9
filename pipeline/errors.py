"""Errors a user can cause. The CLI prints them as one line, without a traceback."""

__all__ = ["UserError", "ConfigError", "DataError", "ModelNotFoundError"]


class UserError(Exception):
    """A mistake in the user's input: the message says what, where, and what to do."""


class ConfigError(UserError):
    """A config file or override that does not validate."""


class DataError(UserError):
    """A dataset file or row that does not have the expected shape."""


class ModelNotFoundError(UserError):
    """A model name that is neither a preset, a local directory, nor reachable on the hub."""

