"""Built-in tasks that generate their own verifiable data."""

from pipeline.tasks.arithmetic import ArithmeticProblem, ArithmeticTask
from pipeline.tasks.word_problems import WordProblemTask

__all__ = ["ArithmeticProblem", "ArithmeticTask", "WordProblemTask"]
