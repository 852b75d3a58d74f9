"""The `format` verifier: does a completion have the required shape? A regular expression it must
match, and/or tags it must contain (`<think>...</think><answer>...</answer>`), in order.

Options (`verifiers.options.format`): `pattern` (a Python regular expression), `full_match`
(the whole stripped completion must match, not just a part of it), `required_tags` (tag names,
each needing an opening and a closing tag, in the given order), `partial_credit` (the share of
the checks passed, instead of all or nothing). The reference is not read. Mostly a component of a
composite reward: `{math: 1.0, format: 0.2}`.
"""

from __future__ import annotations

import re
import time
from typing import Any, Sequence

from verifiers.base import OK, Verdict

__all__ = ["FormatVerifier"]


class FormatVerifier:
    name = "format"

    def __init__(self, pattern: str | None = None, full_match: bool = False, required_tags: Sequence[str] = (),
                 partial_credit: bool = False):
        if isinstance(required_tags, str):
            required_tags = [required_tags]
        if pattern is None and not required_tags:
            raise ValueError("the format verifier needs a `pattern` or `required_tags` to check")
        try:
            self.pattern = re.compile(pattern, re.DOTALL) if pattern is not None else None
        except re.error as e:
            raise ValueError(f"pattern {pattern!r} is not a valid regular expression: {e}") from None
        for tag in required_tags:
            if not isinstance(tag, str) or not re.fullmatch(r"[\w:.-]+", tag):
                raise ValueError(f"required_tags: {tag!r} is not a tag name (letters, digits, _ : . -)")
        self.full_match = full_match
        self.tags = list(required_tags)
        self.partial_credit = partial_credit

    def verify(self, completions: Sequence[str], references: Sequence[Any]) -> list[Verdict]:
        out = []
        for text in completions:
            start = time.perf_counter()
            failed = self._failed_checks(text)
            checks = (self.pattern is not None) + len(self.tags)
            if self.partial_credit:
                reward = 1.0 - len(failed) / checks
            else:
                reward = 0.0 if failed else 1.0
            out.append(Verdict(reward, OK, "; ".join(failed), time.perf_counter() - start))
        return out

    def _failed_checks(self, text: str) -> list[str]:
        failed = []
        if self.pattern is not None:
            stripped = text.strip()
            found = self.pattern.fullmatch(stripped) if self.full_match else self.pattern.search(stripped)
            if found is None:
                failed.append(f"does not {'fully ' if self.full_match else ''}match {self.pattern.pattern!r}")
        position = 0
        for tag in self.tags:  # each <tag>...</tag> after the previous one
            opened = text.find(f"<{tag}>", position)
            closed = text.find(f"</{tag}>", opened + len(tag) + 2) if opened >= 0 else -1
            if opened < 0 or closed < 0:
                failed.append(f"no <{tag}>...</{tag}>" + (" after the previous tag" if position else ""))
                continue
            position = closed + len(tag) + 3
        return failed
