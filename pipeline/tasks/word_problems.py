"""Arithmetic word problems, deterministic by seed: the built-in task a pretrained chat model starts
weak at (SmolLM2-135M-Instruct rambles, miscounts and runs out of tokens) and a verifier scores.

A problem is an operation (a, op, b) told as a short story with a name and an object. The
held-out split, the SFT demonstrations and the endless RL stream are drawn from disjoint sets of
(a, op, b), so no held-out sum is ever trained on in another wording.
"""

from __future__ import annotations

import itertools
import random

from pipeline.config import WordProblemTaskConfig
from pipeline.tasks.arithmetic import ArithmeticProblem

__all__ = ["WordProblemTask"]

NAMES = [("Tom", "He"), ("Anna", "She"), ("Sam", "He"), ("Lily", "She"), ("Ben", "He"), ("Mia", "She"),
         ("Omar", "He"), ("Zoe", "She")]
OBJECTS = ["apples", "books", "marbles", "cookies", "stickers", "pencils", "cards", "shells"]
TEMPLATES = {
    "+": ["{name} has {a} {things}. {he} gets {b} more {things}. How many {things} does {name} have now?",
          "There are {a} {things} in a box. {name} puts {b} more {things} in the box. How many {things} are in the box now?"],
    "-": ["{name} has {a} {things}. {he} gives {b} {things} to a friend. How many {things} does {name} have left?",
          "There are {a} {things} on a table. {name} takes {b} of them. How many {things} are left on the table?"],
    "*": ["{name} has {a} bags with {b} {things} in each bag. How many {things} does {name} have in all?",
          "There are {a} boxes and each box holds {b} {things}. How many {things} are there in all?"],
}
_APPLY = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}


class WordProblemTask:
    """The same three uses as `ArithmeticTask`: `eval_problems`, `sft_problems` (a worked answer
    each) and `rl_problems(step, count)`, fresh draws outside the held-out and SFT operations."""

    def __init__(self, cfg: WordProblemTaskConfig):
        self.cfg = cfg
        ops = sorted(set(cfg.operations))
        span = range(cfg.min_operand, cfg.max_operand + 1)
        every = [(a, op, b) for op in ops for a, b in itertools.product(span, span) if op != "-" or a >= b]
        random.Random(f"{cfg.seed}/split").shuffle(every)
        held, demos = every[: cfg.eval_size], every[cfg.eval_size : cfg.eval_size + cfg.sft_size]
        self._train = every[cfg.eval_size + cfg.sft_size :]
        self.eval_problems = self._render(held, random.Random(f"{cfg.seed}/eval"))
        self.sft_problems = [ArithmeticProblem(p.prompt, _worked(t, p.answer))
                             for t, p in zip(demos, self._render(demos, random.Random(f"{cfg.seed}/sft")))]

    def rl_problems(self, step: int, count: int, stream: str = "") -> list[ArithmeticProblem]:
        """The RL problems of one step: deterministic by (seed, stream, step), never a held-out
        operation. Each `stream` (a refill of a GRPO step, a generation stage's run) is a sequence of
        its own; the default one is the RL stages'."""
        rng = random.Random(f"{self.cfg.seed}/rl/{stream}/{step}" if stream else f"{self.cfg.seed}/rl/{step}")
        return self._render([rng.choice(self._train) for _ in range(count)], rng)

    def _render(self, triples, rng: random.Random) -> list[ArithmeticProblem]:
        out = []
        for a, op, b in triples:
            name, he = rng.choice(NAMES)
            story = rng.choice(TEMPLATES[op]).format(name=name, he=he, a=a, b=b, things=rng.choice(OBJECTS))
            prompt = f"{story} {self.cfg.instruction}".strip()
            out.append(ArithmeticProblem(prompt=prompt, answer=str(_APPLY[op](a, b))))
        return out


def _worked(triple: tuple[int, str, int], answer: str) -> str:
    a, op, b = triple
    return f"{a} {op} {b} = {answer}. The answer is {answer}."
