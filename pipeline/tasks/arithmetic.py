"""The built-in verifiable task: integer arithmetic, deterministic by seed.

Three disjoint uses of one problem space: a held-out evaluation split, a limited set of labelled
demonstrations for SFT, and an endless stream of fresh RL prompts (never an evaluation problem)
whose gold answers only the verifier sees.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

from pipeline.config import ArithmeticTaskConfig

__all__ = ["ArithmeticProblem", "ArithmeticTask"]


@dataclass(frozen=True)
class ArithmeticProblem:
    prompt: str  # "12+7="
    answer: str  # "19"


def _evaluate(operands: list[int], ops: list[str]) -> int:
    """`*` first, then `+`/`-` left to right: terms are products, the sum of signed terms is the value."""
    terms = [operands[0]]
    signs = [1]
    for op, x in zip(ops, operands[1:]):
        if op == "*":
            terms[-1] *= x
        else:
            terms.append(x)
            signs.append(1 if op == "+" else -1)
    return sum(s * t for s, t in zip(signs, terms))


class ArithmeticTask:
    """Problems `a op b (op c ...)=` with operands in 0..max_operand, evaluated left to right
    with the usual precedence (Python's), so `*` binds tighter than `+`/`-`."""

    def __init__(self, cfg: ArithmeticTaskConfig):
        self.cfg = cfg
        self.eval_problems = self._draw_unique(random.Random(f"{cfg.seed}/eval"), cfg.eval_size, exclude=set())
        self._eval_prompts = {p.prompt for p in self.eval_problems}
        self.sft_problems = self._draw_unique(
            random.Random(f"{cfg.seed}/sft"), cfg.sft_size, exclude=self._eval_prompts
        )

    def problem(self, rng: random.Random) -> ArithmeticProblem:
        operands = [rng.randint(0, self.cfg.max_operand) for _ in range(self.cfg.num_operands)]
        ops = [rng.choice(self.cfg.operations) for _ in range(self.cfg.num_operands - 1)]
        expr = str(operands[0]) + "".join(f"{op}{x}" for op, x in zip(ops, operands[1:]))
        return ArithmeticProblem(prompt=f"{expr}=", answer=str(_evaluate(operands, ops)))

    def rl_problems(self, step: int, count: int, stream: str = "") -> list[ArithmeticProblem]:
        """The RL prompts of one step: fresh draws, deterministic by (seed, stream, step), never
        held-out. Each `stream` (a refill of a GRPO step, a generation stage's run) is a sequence of
        its own; the default one is the RL stages'."""
        rng = random.Random(f"{self.cfg.seed}/rl/{stream}/{step}" if stream else f"{self.cfg.seed}/rl/{step}")
        out: list[ArithmeticProblem] = []
        while len(out) < count:
            p = self.problem(rng)
            if p.prompt not in self._eval_prompts:
                out.append(p)
        return out

    def _draw_unique(self, rng: random.Random, count: int, exclude: set[str]) -> list[ArithmeticProblem]:
        """`count` distinct problems outside `exclude` (the config has checked that there are enough)."""
        space = self.cfg.distinct_problems
        if 2 * (len(exclude) + count) > space:
            # Dense: rejection sampling would need ~space * log(count) draws; shuffle the whole space.
            problems = [p for p in self._every_problem() if p.prompt not in exclude]
            rng.shuffle(problems)
            return problems[:count]
        seen = set(exclude)
        out: list[ArithmeticProblem] = []
        while len(out) < count:
            p = self.problem(rng)
            if p.prompt not in seen:
                seen.add(p.prompt)
                out.append(p)
        return out

    def _every_problem(self) -> list[ArithmeticProblem]:
        k, ops = self.cfg.num_operands, sorted(set(self.cfg.operations))
        return [
            ArithmeticProblem(str(xs[0]) + "".join(f"{op}{x}" for op, x in zip(os_, xs[1:])) + "=",
                              str(_evaluate(list(xs), list(os_))))
            for xs in itertools.product(range(self.cfg.max_operand + 1), repeat=k)
            for os_ in itertools.product(ops, repeat=k - 1)
        ]
