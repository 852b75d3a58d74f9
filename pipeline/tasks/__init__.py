"""Built-in tasks that generate their own verifiable data."""

from pipeline.tasks.arithmetic import ArithmeticProblem, ArithmeticTask

__all__ = ["ArithmeticProblem", "ArithmeticTask"]
