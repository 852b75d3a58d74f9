"""What the sampling stages share: the policy to sample from, K scored samples per prompt, and a
stream of prompts worked through in chunks that are written as they finish, so a stopped stage
resumes after its last full chunk and samples exactly what it would have.

A chunk's prompts are `TaskData.rl_batch(chunk, chunk_size, stream)` (a stream of the stage's own,
so its prompts are fresh for each run seed) and its sampling seed is a function of (run seed,
stream, chunk). Each chunk appends one line per prompt to `<name>.samples.jsonl`: the prompt, its
reference and verifier, and every sample's text, score, status and reason (kept for inspection),
and a row of counts to `metrics.jsonl` (the `train` stream) or `<name>.metrics.jsonl`.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from pipeline.config import RunConfig, config_hash
from pipeline.data import PromptRow, TaskData, build_task_data
from pipeline.metrics import MetricsLog, read_metrics
from pipeline.rollout import SamplingParams, make_engine
from pipeline.rollout.collect import collect
from pipeline.scoring import Scorer

__all__ = ["Sampler", "sample_streams", "sampled_prompts", "scored_candidates", "write_jsonl"]


@dataclass
class Sampler:
    """A stage's policy, engine, prompts and scorer."""

    cfg: RunConfig
    section: Any  # the stage's config (a _SamplingStageConfig)
    data: TaskData
    tokenizer: Any
    engine: Any
    scorer: Scorer
    sampling: SamplingParams
    identity: str  # what a resumed run must share with the stopped one
    vocabulary: str | None = None  # the policy tokenizer's fingerprint (model verifiers score ids)

    @classmethod
    def start(cls, cfg: RunConfig, section_name: str, init: str | None, inputs: Mapping[str, str] | None) -> "Sampler":
        import torch

        from pipeline.forward import vocabulary_fingerprint
        from pipeline.models import load_causal_lm, load_tokenizer, resolve_model

        if inputs and inputs.get("reward_model"):  # the round's reward_model stage result
            cfg = cfg.model_copy(update={"reward_model": cfg.reward_model.model_copy(update={"path": inputs["reward_model"]})})
        section = getattr(cfg, section_name)
        torch.set_num_threads(cfg.threads)
        source = resolve_model(init or cfg.model.name, cfg.model)
        tokenizer = load_tokenizer(source)
        model = load_causal_lm(source, cfg.model, tokenizer, seed=cfg.seed).eval()
        data = build_task_data(cfg)
        names = {section.verifier} if section.verifier else data.verifier_names()
        r = cfg.rollout
        sampling = SamplingParams(temperature=section.temperature or r.temperature, top_p=r.top_p,
                                  max_new_tokens=r.max_new_tokens)
        identity = hashlib.sha256(json.dumps([
            config_hash(section), config_hash(cfg.task), config_hash(cfg.rollout), config_hash(cfg.verifiers),
            config_hash(cfg.model), str(cfg.reward_model_path), _fingerprint(init or cfg.model.name), cfg.seed,
        ]).encode()).hexdigest()[:16]
        return cls(cfg, section, data, tokenizer, make_engine(r, tokenizer, model=model, model_path=source.path),
                   Scorer(cfg, names), sampling, identity, vocabulary_fingerprint(tokenizer))

    def rows(self, stream: str, chunk: int, count: int) -> list[PromptRow]:
        rows = self.data.rl_batch(chunk, count, stream)
        if self.section.verifier:
            rows = [PromptRow(r.prompt, r.answer, self.section.verifier, r.row, r.where) for r in rows]
        return rows

    def sample(self, rows: list[PromptRow], seed: int) -> list[dict[str, Any]]:
        """K scored samples for each row, as the lines of a samples file."""
        sampling = SamplingParams(**{**vars(self.sampling), "seed": seed})
        k = self.section.samples_per_prompt
        c = collect(self.engine, self.scorer, self.tokenizer, rows, k, sampling, self.data.system, self.vocabulary)
        lines = []
        for p, row in enumerate(rows):
            samples = []
            for i in range(p * k, (p + 1) * k):
                v = c.verdicts[i]
                samples.append({"text": c.rollouts.texts[i], "score": v.reward if v.scored else None,
                                "status": v.status, "reason": v.reason, "truncated": c.rollouts.truncated[i],
                                **({"parts": {n: pv.reward for n, pv in v.parts}} if v.parts else {})})
            lines.append({"prompt": row.prompt, "answer": row.answer, "verifier": row.verifier, "samples": samples})
        return lines

    def close(self) -> None:
        self.engine.close()


def sample_streams(cfg: RunConfig, stage: str, init: str | None, inputs: Mapping[str, str] | None,
                   streams: Mapping[str, tuple[str, int]], summarize: Callable[[list[dict[str, Any]]], dict[str, Any]],
                   ) -> tuple[Path, dict[str, list[dict[str, Any]]], float]:
    """A sampling stage's work: its policy samples each stream (`name -> (stream, prompts)`) in
    chunks under `<output_dir>/<stage>/`. Returns the directory, the samples lines by name, and the
    seconds spent sampling and scoring (over every run that wrote a chunk)."""
    stage_dir = cfg.output_path / stage
    stage_dir.mkdir(parents=True, exist_ok=True)
    sampler = Sampler.start(cfg, stage, init, inputs)
    try:
        lines = {name: sampled_prompts(sampler, stage_dir, name, stream, count, summarize)
                 for name, (stream, count) in streams.items()}
    finally:
        sampler.close()
    seconds = sum(r.get("time_s", 0.0) for name in streams for r in read_metrics(_metrics_file(stage_dir, name)))
    return stage_dir, lines, round(seconds, 2)


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rows as JSON lines, written whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(json.dumps(row, default=str) + "\n" for row in rows))
    os.replace(tmp, path)


def sampled_prompts(sampler: Sampler, stage_dir: Path, name: str, stream: str, count: int,
                    summarize: Callable[[list[dict[str, Any]]], dict[str, Any]]) -> list[dict[str, Any]]:
    """The samples lines of `count` prompts of `stream`, in chunks; `summarize(lines)` gives each
    chunk's row of metrics.jsonl. Chunks written by an earlier run with the same identity are kept."""
    size = sampler.section.chunk_size
    chunks = -(-count // size)
    samples_file, progress_file = stage_dir / f"{name}.samples.jsonl", stage_dir / f"{name}.progress.json"
    done = _chunks_done(progress_file, sampler.identity)
    # Lines of unfinished chunks (and a line cut short by a crash) are dropped.
    write_jsonl(samples_file, [line for line in read_metrics(samples_file) if line.get("chunk", chunks) < done])
    log = MetricsLog(_metrics_file(stage_dir, name), resume_step=done)
    for chunk in range(done, chunks):
        started = time.perf_counter()
        rows = sampler.rows(stream, chunk, size)[: count - chunk * size]
        seed = int(hashlib.sha256(f"{sampler.cfg.seed}/{stream}/{chunk}".encode()).hexdigest()[:8], 16)
        lines = [{"chunk": chunk, **line} for line in sampler.sample(rows, seed)]
        with samples_file.open("a") as f:
            f.writelines(json.dumps(line, default=str) + "\n" for line in lines)
        _write_progress(progress_file, sampler.identity, chunk + 1)
        log.log({"step": chunk + 1, **summarize(lines), "time_s": round(time.perf_counter() - started, 3)})
    return read_metrics(samples_file)


def scored_candidates(samples: list[dict[str, Any]], usable: Callable[[dict[str, Any]], bool] = lambda s: True,
                      ) -> list[tuple[str, float]]:
    """(text, score) of a prompt's scored samples with non-blank text that pass `usable`, each
    distinct text once (the first)."""
    seen: dict[str, float] = {}
    for s in samples:
        if s["score"] is not None and s["text"].strip() and usable(s) and s["text"] not in seen:
            seen[s["text"]] = s["score"]
    return list(seen.items())


def _fingerprint(model: str) -> str:
    """A model name, or for a directory its files' names, sizes and times: a policy retrained in
    the same place is another policy, whose samples a resumed run must not reuse."""
    path = Path(model)
    if not path.is_dir():
        return model
    return json.dumps([str(path.resolve())] + sorted((str(f.relative_to(path)), f.stat().st_size, f.stat().st_mtime_ns)
                                                     for f in path.rglob("*") if f.is_file()))


def _metrics_file(stage_dir: Path, name: str) -> Path:
    """The training stream's chunks log to metrics.jsonl, which the flow shows as the stage's table."""
    return stage_dir / ("metrics.jsonl" if name == "train" else f"{name}.metrics.jsonl")


def _chunks_done(progress_file: Path, identity: str) -> int:
    try:
        progress = json.loads(progress_file.read_text())
    except (OSError, ValueError):
        return 0
    return int(progress.get("chunks", 0)) if progress.get("identity") == identity else 0


def _write_progress(path: Path, identity: str, chunks: int) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"identity": identity, "chunks": chunks}))
    os.replace(tmp, path)
