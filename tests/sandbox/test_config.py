import pytest
from pydantic import ValidationError

from sandbox.config import JobLimits, SandboxConfig


def test_defaults_suit_two_cores():
    config = SandboxConfig()
    assert config.pool_size == 4 and config.cpus == 1.0
    assert config.limits.memory_mb <= config.memory_mb


@pytest.mark.parametrize(
    "field, value",
    [
        ("pool_size", 0),
        ("pids_limit", 2),
        ("user", "0:0"),  # root is refused
        ("user", "root"),
        ("cpus", 0),
        ("memory_mb", 16),
        ("unknown_field", 1),
    ],
)
def test_bad_settings_name_the_field(field, value):
    with pytest.raises(ValidationError, match=field):
        SandboxConfig(**{field: value})


def test_a_job_must_fit_its_container():
    with pytest.raises(ValidationError, match="exceeds the container's memory_mb"):
        SandboxConfig(memory_mb=256, limits=JobLimits(memory_mb=512))


def test_job_limits_are_bounded():
    with pytest.raises(ValidationError, match="timeout_s"):
        JobLimits(timeout_s=0)
