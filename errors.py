"""The errors every layer raises for things a retry cannot fix. It imports nothing of the project,
so `pipeline/`, `verifiers/`, `sandbox/` and `flows/` all import it downward.

The command-line entry points print these as one line (`error: ...`), without a traceback, and
exit with the class's `exit_code`; the round flow never retries a stage that exited with one.
"""

__all__ = [
    "PipelineError",
    "UserError",
    "ConfigError",
    "DataError",
    "ModelNotFoundError",
    "RunHealthError",
    "EXIT_USER_ERROR",
    "EXIT_RUN_HEALTH",
    "NOT_RETRYABLE_EXIT_CODES",
]

EXIT_USER_ERROR = 2  # the input is wrong: fix it, then run again
EXIT_RUN_HEALTH = 3  # a run-health guard stopped training: the run would go on wasting compute
NOT_RETRYABLE_EXIT_CODES = frozenset({EXIT_USER_ERROR, EXIT_RUN_HEALTH})


class PipelineError(Exception):
    """A failure with a message meant for the user; running the same thing again cannot help."""

    exit_code = EXIT_USER_ERROR


class UserError(PipelineError):
    """A mistake in the user's input: the message says what, where, and what to do."""


class ConfigError(UserError):
    """A config file, override or cross-field rule that does not validate."""


class DataError(UserError):
    """A dataset file or row that does not have the expected shape."""


class ModelNotFoundError(UserError):
    """A model name that is neither a preset, a local directory, nor reachable on the hub."""


class RunHealthError(PipelineError):
    """A run-health guard tripped (masked verdicts, no learning signal, collapse...): the stage
    stops with the guard's reason; its last checkpoint stays for inspection."""

    exit_code = EXIT_RUN_HEALTH
