"""The user-error tree and its exit codes."""

import pytest

from errors import (
    EXIT_RUN_HEALTH,
    EXIT_USER_ERROR,
    NOT_RETRYABLE_EXIT_CODES,
    ConfigError,
    DataError,
    ModelNotFoundError,
    PipelineError,
    RunHealthError,
    UserError,
)


@pytest.mark.parametrize("cls", [UserError, ConfigError, DataError, ModelNotFoundError])
def test_user_errors_exit_2(cls):
    assert issubclass(cls, PipelineError) and cls("x").exit_code == EXIT_USER_ERROR == 2


def test_a_tripped_guard_is_no_user_error_and_exits_3():
    assert not issubclass(RunHealthError, UserError)
    assert RunHealthError("x").exit_code == EXIT_RUN_HEALTH == 3


def test_neither_code_is_worth_retrying_and_a_crash_is():
    assert NOT_RETRYABLE_EXIT_CODES == {2, 3}
    assert 1 not in NOT_RETRYABLE_EXIT_CODES
