"""The `judge` verifier (RLAIF): a local causal LM asked, through a prompt template, whether a
completion satisfies a rubric, or each principle of a constitution (Bai et al. 2022,
"Constitutional AI"; Lee et al. 2023, "RLAIF").

The judge's answer is never parsed from free text: its score is read from the log-probabilities
of the verdict tokens at the first position of its reply,

    score = P(yes) / (P(yes) + P(no)),   P(yes) = sum of the probabilities of the `yes` tokens,

in [0, 1], averaged over the principles of a constitution (or their minimum). When the judge puts
less than `min_mass` of its probability on the verdict tokens at all, it has not understood the
question: that verdict is an error (masked), not a guess. Prompts go through the judge's chat
template, `batch_size` per forward.

Options (`verifiers.options.judge`):
- `model`: a preset (`smollm2-135m`, offline; `tiny`) or a Hugging Face directory;
- `rubric`: the criterion, e.g. "The answer is the correct result of the arithmetic problem.";
  or `constitution`: a YAML file holding a list of principles (or `{principles: [...]}`);
- `template`: the question, with `{prompt}`, `{completion}`, `{criterion}` and optionally
  `{reference}` (the row's answer) and `{row[column]}` (another column of the row);
- `yes` / `no`: the verdict words (the first token of each counts); `min_mass`, `aggregate`
  (`mean` or `min`), `system`, `batch_size`, `max_length` (longer prompts are errors), `device`,
  `dtype`, `cache_dir` (where presets are built; default: the run's).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

from errors import ModelNotFoundError
from verifiers.base import ERROR, OK, Context, Verdict

__all__ = ["JudgeVerifier", "DEFAULT_TEMPLATE", "yes_probability", "load_constitution"]

DEFAULT_TEMPLATE = (
    "Here is a request and a response to it.\n\n"
    "Request: {prompt}\n"
    "Response: {completion}\n\n"
    "Criterion: {criterion}\n"
    "Does the response meet the criterion? Answer Yes or No."
)

_PRESETS = ("tiny", "smollm2-135m")


def yes_probability(logprobs: Sequence[float], yes_ids: Sequence[int], no_ids: Sequence[int]) -> tuple[float, float]:
    """(P(yes) / (P(yes) + P(no)), P(yes) + P(no)) from the next-token log-probs `(V,)` of the
    judge's reply; each side's probability is the sum over its verdict tokens."""
    p_yes = sum(math.exp(logprobs[i]) for i in yes_ids)
    p_no = sum(math.exp(logprobs[i]) for i in no_ids)
    mass = p_yes + p_no
    return (p_yes / mass if mass > 0 else 0.5), mass


def load_constitution(path: str) -> list[str]:
    """The principles of a constitution file: a YAML list of texts, or a mapping with `principles`."""
    import yaml

    file = Path(path).expanduser()
    if not file.is_file():
        raise ValueError(f"constitution file {path!r} not found")
    try:
        data = yaml.safe_load(file.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"constitution {path!r} is not valid YAML: {e}".replace("\n", " ")) from None
    principles = data.get("principles") if isinstance(data, dict) else data
    if not isinstance(principles, list) or not principles or not all(isinstance(p, str) and p.strip() for p in principles):
        raise ValueError(f"constitution {path!r} must hold a non-empty list of principles (texts), "
                         "or a mapping with one under 'principles'")
    return [p.strip() for p in principles]


class JudgeVerifier:
    name = "judge"
    wants_context = True

    @classmethod
    def run_defaults(cls, run: Mapping[str, Any], options: Mapping[str, Any]) -> dict[str, Any]:
        """Presets are built where the run builds its own."""
        return {"cache_dir": run["model_cache_dir"]} if "cache_dir" not in options and run.get("model_cache_dir") else {}

    def __init__(self, model: str = "smollm2-135m", rubric: str | None = None, constitution: str | None = None,
                 template: str = DEFAULT_TEMPLATE, yes: Sequence[str] = ("Yes", " Yes", "yes"),
                 no: Sequence[str] = ("No", " No", "no"), min_mass: float = 0.1,
                 aggregate: Literal["mean", "min"] = "mean", system: str | None = None, batch_size: int = 16,
                 max_length: int = 1024, device: str = "auto", dtype: str = "float32", cache_dir: str | None = None):
        if (rubric is None) == (constitution is None):
            raise ValueError("the judge needs exactly one of `rubric` (a criterion) or `constitution` (a YAML file of principles)")
        self.criteria = [rubric.strip()] if rubric is not None else load_constitution(constitution)  # type: ignore[arg-type]
        if not all(self.criteria):
            raise ValueError("rubric must be non-empty text")
        try:
            template.format(prompt="", completion="", criterion="", reference="", row=_AnyColumn())
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"template: {type(e).__name__} {e}; it may use {{prompt}}, {{completion}}, {{criterion}}, "
                             "{reference} and {row[column]}") from None
        if "{completion}" not in template:
            raise ValueError("template must show the judge the {completion}")
        if not 0 <= min_mass <= 1 or aggregate not in ("mean", "min") or batch_size < 1 or max_length < 8:
            raise ValueError(f"bad option: need 0 <= min_mass <= 1 (got {min_mass}), aggregate mean or min (got "
                             f"{aggregate!r}), batch_size >= 1 (got {batch_size}), max_length >= 8 (got {max_length})")
        self.template, self.system, self.min_mass, self.aggregate = template, system, min_mass, aggregate
        self.batch_size, self.max_length = batch_size, max_length
        self.model, self.tokenizer, self.device = _load_judge(model, dtype, device, cache_dir)
        yes_ids, no_ids = self._verdict_ids(yes), self._verdict_ids(no)
        # A first token both sides share (a lone space, in a byte-level vocabulary) decides nothing.
        self.yes_ids = [i for i in yes_ids if i not in no_ids]
        self.no_ids = [i for i in no_ids if i not in yes_ids]
        if not self.yes_ids or not self.no_ids:
            raise ValueError(f"the yes words {list(yes)} and the no words {list(no)} share every first token")

    def _verdict_ids(self, words: Sequence[str]) -> list[int]:
        if isinstance(words, str) or not words:
            raise ValueError(f"verdict words must be a non-empty list, got {words!r}")
        return list(dict.fromkeys(self.tokenizer(w, add_special_tokens=False)["input_ids"][0] for w in words))

    def verify(self, completions: Sequence[str], references: Sequence[Any],
               contexts: Sequence[Context] | None = None) -> list[Verdict]:
        from pipeline.tokens import encode_prompt

        contexts = list(contexts) if contexts is not None else [Context()] * len(completions)
        k = len(self.criteria)
        start = time.perf_counter()
        queries: list[list[int]] = []
        missing: dict[int, str] = {}  # completion -> the row column its template asked for in vain
        for i, (text, ref, ctx) in enumerate(zip(completions, references, contexts)):
            for criterion in self.criteria:
                try:
                    question = self.template.format(prompt=ctx.prompt, completion=text, criterion=criterion,
                                                    reference=ref, row=ctx.row)
                except (KeyError, IndexError) as e:
                    missing[i], question = str(e), ""
                queries.append(encode_prompt(self.tokenizer, question, self.system) if i not in missing else [])
        scores = self._score(queries)  # (N * k) of (score, mass), None when too long
        latency = (time.perf_counter() - start) / max(len(completions), 1)
        out = []
        for i in range(len(completions)):
            mine = scores[i * k : (i + 1) * k]
            if i in missing:
                out.append(Verdict(0.0, ERROR, f"the judge's template asks for row column {missing[i]}, which this "
                                   "row lacks", latency))
                continue
            if any(s is None for s in mine):
                out.append(Verdict(0.0, ERROR, f"judge prompt longer than max_length={self.max_length} tokens", latency))
                continue
            low = [m for _, m in mine if m < self.min_mass]  # type: ignore[misc]
            if low:
                out.append(Verdict(0.0, ERROR, f"judge put only {min(low):.3f} of its probability on the verdict "
                                   f"tokens (min_mass {self.min_mass:g}): no usable answer", latency))
                continue
            values = [s for s, _ in mine]  # type: ignore[misc]
            reward = sum(values) / k if self.aggregate == "mean" else min(values)
            reason = "" if k == 1 else "per principle: " + ", ".join(f"{v:.2f}" for v in values)
            out.append(Verdict(reward, OK, reason, latency))
        return out

    def _score(self, queries: list[list[int]]) -> list[tuple[float, float] | None]:
        import torch

        scores: list[tuple[float, float] | None] = [None] * len(queries)
        fits = [i for i, q in enumerate(queries) if 0 < len(q) <= self.max_length]
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        with torch.inference_mode():
            for start in range(0, len(fits), self.batch_size):
                chunk = fits[start : start + self.batch_size]
                width = max(len(queries[i]) for i in chunk)
                ids = torch.full((len(chunk), width), pad, dtype=torch.long)
                mask = torch.zeros((len(chunk), width), dtype=torch.long)
                for row, i in enumerate(chunk):  # left padding: every prompt ends where the reply starts
                    ids[row, width - len(queries[i]) :] = torch.tensor(queries[i])
                    mask[row, width - len(queries[i]) :] = 1
                positions = (mask.cumsum(-1) - 1).clamp(min=0)
                logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                    position_ids=positions.to(self.device), use_cache=False,
                                    logits_to_keep=1).logits[:, -1, :]  # (B, V)
                logprobs = torch.log_softmax(logits.float(), dim=-1).cpu()
                for row, i in enumerate(chunk):
                    scores[i] = yes_probability(logprobs[row].tolist(), self.yes_ids, self.no_ids)
        return scores


class _AnyColumn(dict):
    """A row that has every column (to check a template's fields before any row is seen)."""

    def __missing__(self, key: str) -> str:
        return ""


def _load_judge(model: str, dtype: str, device: str, cache_dir: str | None):
    import torch

    from pipeline.config import ModelConfig
    from pipeline.models import load_causal_lm, load_tokenizer, resolve_model

    if model not in _PRESETS and not Path(model).expanduser().is_dir():
        raise ModelNotFoundError(f"judge model {model!r} not found: set verifiers.options.judge.model to a Hugging Face "
                                 f"directory (one holding config.json) or a preset ({', '.join(_PRESETS)})")
    cfg = ModelConfig(name=model, dtype=dtype, cache_dir=cache_dir)
    source = resolve_model(model, cfg)
    tokenizer = load_tokenizer(source)
    lm = load_causal_lm(source, cfg, tokenizer)
    target = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else "cpu" if device == "auto" else device)
    return lm.to(target).eval().requires_grad_(False), tokenizer, target
