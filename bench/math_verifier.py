"""Agreement and answers per second: this project's math verifier against math-verify.

    python bench/math_verifier.py [--runs 3] [--only ours|math-verify|math-verify-boxed] [--workers N]
                                  [--gsm8k PATH] [--gsm8k-rows N] [--gsm8k-mv-rows N] [--no-gsm8k]
    python bench/math_verifier.py --disagreements COMPLETIONS.jsonl [--out FILE]

Part 1, the case table (`tests/verifiers/math_cases.py`: written cases and real model completions
decided by hand). Every side scores every case, and is compared with the expected verdicts, on
the whole table and on the real completions alone.

Each set (the whole table; the real completions alone) is timed in its own fresh processes:

- ours: `verifiers.math.MathVerifier()`, the set in one `verify` call, as training calls it.
  "cold" times constructing the verifier and that call, worker pool start included; "warm" times
  the same call on a new verifier instance (an empty answer cache; the references it read stay
  cached per process, as in training, where a group's completions share one) whose pool is
  already up. A verdict is "equal" when it is status ok with reward 1.0.
- math-verify: `verify(parse(gold), parse(prediction))` per case, sequentially in the main thread,
  as its users call it (its own default timeouts): a first pass ("cold") and a second ("warm",
  where its own parse caches may answer). An exception counts as "not equal".
- math-verify-boxed: the same, with a bare gold (no \\boxed, no ####, no $) wrapped in \\boxed{...}
  first, as verl does before calling math-verify: math-verify finds LaTeX only behind an anchor
  ($...$, \\boxed), so a bare `\\frac34` gold parses to nothing. Predictions stay as written.

Each run happens in a fresh Python process, so nothing one run computed reaches another; imports
are timed apart and not counted. `--runs K` reports the median over K runs. Predictions in the
table include code that would create a file if evaluated; the bench reports whether that file
appeared after each side.

Part 2, the GSM8K check: for each GSM8K training row, the gold's own worked solution (the text
before `####`) followed by its final number stated in each style of FINAL_STATEMENTS (answer
lines in several languages, boxes, bold, `$` amounts, thousands separators, an unmarked last
line) must score right against the row, and the same text stating another number must score
wrong. Rates per style and overall; math-verify on the first `--gsm8k-mv-rows` rows alongside.

`--disagreements`: instead of the above, score a file of sampled completions
(`bench/math_completions.py`) with this verifier and with math-verify (GSM8K golds given to it as
their number after `####`), and write the completions the two score differently as JSON lines,
each to be decided by reading it and added to `tests/verifiers/math_real_cases.jsonl`.

Exits 0 either way: a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CASES_FILE = REPO / "tests" / "verifiers" / "math_cases.py"
SIDES = ("ours", "math-verify", "math-verify-boxed")
GSM8K = next((p for p in (d / "shared" / "data" / "gsm8k" / "train.jsonl" for d in (REPO.parent, REPO.parent.parent))
              if p.is_file()), REPO.parent / "shared" / "data" / "gsm8k" / "train.jsonl")


def load_table(path: Path):
    """The case module, loaded by path: tests/ is not a package."""
    spec = importlib.util.spec_from_file_location("math_cases", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- one run, in its own process -------------------------------------------------------------


_WARM_UP = (r"\sqrt{5} + y", r"y + \sqrt{5}")


def run_ours(cases, workers: int | None) -> dict:
    sys.path.insert(0, str(REPO))
    started = time.perf_counter()
    from verifiers.base import Context
    from verifiers.math import MathVerifier

    import_s = time.perf_counter() - started
    preds, golds = [c.prediction for c in cases], [c.gold for c in cases]
    contexts = [Context(prompt=c.question) for c in cases]  # the prompt, as training passes it
    options = {} if workers is None else {"workers": workers}

    started = time.perf_counter()
    cold_verifier = MathVerifier(**options)
    verdicts = cold_verifier.verify(preds, golds, contexts)
    cold_s = time.perf_counter() - started

    # A fresh instance: an empty answer cache (references stay read, as in training). One
    # symbolic pair that is not in the table goes first, untimed, so the pool is up.
    warm_verifier = MathVerifier(**options)
    warm_verifier.verify([_WARM_UP[0]], [_WARM_UP[1]])
    started = time.perf_counter()
    warm_verdicts = warm_verifier.verify(preds, golds, contexts)
    warm_s = time.perf_counter() - started
    warm_verifier.close()
    cold_verifier.close()

    equal = [v.status == "ok" and v.reward == 1.0 for v in verdicts]
    return {
        "import_s": import_s, "cold_s": cold_s, "warm_s": warm_s, "equal": equal,
        "workers": getattr(cold_verifier, "workers", workers),
        "status": [v.status for v in verdicts], "reason": [v.reason for v in verdicts],
        "warm_differs": sum((a.status, a.reward) != (b.status, b.reward) for a, b in zip(verdicts, warm_verdicts)),
    }


def _boxed_gold(gold: str) -> str:
    return gold if "\\boxed" in gold or "####" in gold or "$" in gold else "\\boxed{" + gold + "}"


def run_math_verify(cases, box_gold: bool = False) -> dict:
    started = time.perf_counter()
    from math_verify import parse, verify

    import_s = time.perf_counter() - started

    golds = [_boxed_gold(c.gold) if box_gold else c.gold for c in cases]

    def one_pass() -> tuple[float, list[bool], list[str]]:
        equal, status = [], []
        started = time.perf_counter()
        for case, gold in zip(cases, golds):
            try:
                equal.append(bool(verify(parse(gold), parse(case.prediction))))
                status.append("ok")
            except Exception as e:  # noqa: BLE001  (its failure is a "not equal" for its users)
                equal.append(False)
                status.append(f"error: {type(e).__name__}")
        return time.perf_counter() - started, equal, status

    cold_s, equal, status = one_pass()
    warm_s, warm_equal, _ = one_pass()
    return {
        "import_s": import_s, "cold_s": cold_s, "warm_s": warm_s, "equal": equal, "status": status,
        "reason": [""] * len(cases), "warm_differs": sum(a != b for a, b in zip(equal, warm_equal)),
    }


def child(args) -> None:
    cases = [c for c in load_table(args.cases).CASES if args.subset == "all" or c.source == args.subset]
    if args.child == "ours":
        result = run_ours(cases, args.workers)
    else:
        result = run_math_verify(cases, box_gold=args.child == "math-verify-boxed")
    print("RESULT " + json.dumps(result))


# --- the parent: K fresh runs per side, then the report -------------------------------------


def run_side(side: str, subset: str, args, side_effect: Path) -> dict:
    side_effect.unlink(missing_ok=True)
    runs = []
    for _ in range(args.runs):
        command = [sys.executable, __file__, "--child", side, "--subset", subset, "--cases", str(args.cases)]
        if args.workers is not None:
            command += ["--workers", str(args.workers)]
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode != 0 or not lines:
            return {"failed": (done.stderr or done.stdout).strip().splitlines()[-12:]}
        runs.append(json.loads(lines[-1][len("RESULT "):]))
    first = runs[0]
    return {
        "runs": runs,
        **{key: statistics.median(r[key] for r in runs) for key in ("import_s", "cold_s", "warm_s")},
        "equal": first["equal"], "status": first["status"], "reason": first["reason"],
        "workers": first.get("workers"),
        # Verdicts that changed between runs, or between the calls of a run.
        "unstable": sum(a != b for r in runs[1:] for a, b in zip(r["equal"], first["equal"]))
        + sum(r["warm_differs"] for r in runs),
        "side_effect": side_effect.exists(),
    }


def _clip(text: str, n: int) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= n else text[: n - 1] + "…"


def _print_rows(rows: list[tuple[str, list[str]]]) -> None:
    width = max(len(r[0]) for r in rows) + 2
    col = max(len(v) for r in rows for v in r[1]) + 2
    for name, values in rows:
        print(name.ljust(width) + "".join(v.ljust(col) for v in values))


def report(cases, results: dict, real_results: dict, args) -> None:
    n = len(cases)
    real = [i for i, c in enumerate(cases) if c.source == "real"]
    sides = [s for s in SIDES if s in results]
    workers = results.get("ours", {}).get("workers") or args.workers or "default"
    label = {"ours": f"ours ({workers} workers)", "math-verify": "math-verify",
             "math-verify-boxed": "math-verify, gold boxed"}
    print(f"\n{n} cases ({len(real)} real completions, {n - len(real)} written) from {args.cases}, "
          f"median of {args.runs} fresh-process run(s) per side and set\n")
    for s in sides:
        for name, res in (("whole table", results[s]), ("real completions", real_results.get(s, {}))):
            if "failed" in res:
                print(f"{s} ({name}) failed:\n  " + "\n  ".join(res["failed"]))
    ok_sides = [s for s in sides if "failed" not in results[s] and "failed" not in real_results.get(s, {})]
    if not ok_sides:
        return

    def agree(s):
        return [e == c.expected for e, c in zip(results[s]["equal"], cases)]

    def share(s, picked):
        hits = sum(agree(s)[i] for i in picked)
        return f"{hits}/{len(picked)} ({100 * hits / max(1, len(picked)):.1f}%)"

    def rate(res, key, count):
        return f"{count / max(res[key], 1e-9):.0f}"

    rows = [("", [label[s] for s in ok_sides])]
    rows.append(("agreement, real completions", [share(s, real) for s in ok_sides]))
    rows.append(("agreement, whole table", [share(s, range(n)) for s in ok_sides]))
    rows.append(("answers/s, real, warm", [rate(real_results[s], "warm_s", len(real)) for s in ok_sides]))
    rows.append(("answers/s, real, cold", [rate(real_results[s], "cold_s", len(real)) for s in ok_sides]))
    rows.append(("answers/s, whole table, warm", [rate(results[s], "warm_s", n) for s in ok_sides]))
    rows.append(("answers/s, whole table, cold", [rate(results[s], "cold_s", n) for s in ok_sides]))
    rows.append(("import seconds (not counted)", [f"{results[s]['import_s']:.2f}" for s in ok_sides]))
    rows.append(("statuses", [
        ", ".join(f"{k} {v}" for k, v in Counter(results[s]["status"]).most_common()) for s in ok_sides]))
    rows.append(("unstable verdicts across calls", [
        str(results[s]["unstable"] + real_results[s]["unstable"]) for s in ok_sides]))
    rows.append(("hostile prediction executed", ["YES" if results[s]["side_effect"] else "no" for s in ok_sides]))
    _print_rows(rows)
    if "ours" in ok_sides:
        for s in ok_sides[1:]:
            ratios = [f"{name} {res[s][key] / res['ours'][key]:.1f}x" for name, res, key in (
                ("real warm", real_results, "warm_s"), ("real cold", real_results, "cold_s"),
                ("whole warm", results, "warm_s"), ("whole cold", results, "cold_s"))]
            print(f"answers/s, ours over {s}: " + ", ".join(ratios))

    print("\nagreement per rule")
    rule_rows = []
    for rule in dict.fromkeys(c.rule for c in cases):
        idx = [i for i, c in enumerate(cases) if c.rule == rule]
        rule_rows.append(("  " + rule, [f"{sum(agree(s)[i] for i in idx)}/{len(idx)}" for s in ok_sides]))
    _print_rows(rule_rows)

    for s in ok_sides:
        wrong = [i for i, a in enumerate(agree(s)) if not a]
        print(f"\n{s}: {len(wrong)} disagreement(s) with the expected verdict")
        for i in wrong[: args.show]:
            c = cases[i]
            got = "equal" if results[s]["equal"][i] else f"not equal ({results[s]['status'][i]})"
            reason = f"  [{_clip(results[s]['reason'][i], 60)}]" if results[s]["reason"][i] else ""
            print(f"  {c.rule:<12} {c.source:<7} {_clip(c.prediction[-48:], 48)!s:<50} gold {_clip(c.gold[-28:], 28)!s:<30} "
                  f"expected {'equal' if c.expected else 'not equal'}, got {got}{reason}")
        if len(wrong) > args.show:
            print(f"  ... and {len(wrong) - args.show} more (--show N)")


# --- part 2: the GSM8K check -----------------------------------------------------------------


def gsm8k_check(table, args) -> None:
    if not args.gsm8k.is_file():
        print(f"\nGSM8K check skipped: {args.gsm8k} not found (--gsm8k PATH)")
        return
    sys.path.insert(0, str(REPO))
    from verifiers.base import Context
    from verifiers.math import MathVerifier

    rows = [json.loads(line) for line in args.gsm8k.read_text().splitlines() if line.strip()]
    rows = rows[: args.gsm8k_rows] if args.gsm8k_rows else rows
    styles = list(table.FINAL_STATEMENTS)
    right: Counter = Counter()
    changed: Counter = Counter()
    misses: list[str] = []
    mv_right: Counter = Counter()
    mv_changed: Counter = Counter()
    started = time.perf_counter()
    with MathVerifier() as verifier:
        for style in styles:
            texts, others, golds, questions = [], [], [], []
            for i, row in enumerate(rows):
                solution, _, n = row["answer"].rpartition("####")
                texts.append(table.restate(solution, n.strip(), style))
                others.append(table.restate(solution, table.changed_number(n.strip(), i), style))
                golds.append(row["answer"])
                questions.append(Context(prompt=row["question"]))  # the question as the prompt, as in training
            for i, (a, b) in enumerate(zip(verifier.verify(texts, golds, questions),
                                           verifier.verify(others, golds, questions))):
                right[style] += a.status == "ok" and a.reward == 1.0
                changed[style] += b.status == "ok" and b.reward == 0.0
                if not (a.status == "ok" and a.reward == 1.0) or not (b.status == "ok" and b.reward == 0.0):
                    misses.append(f"  {style:<16} row {i}: right {a.status}/{a.reward:g} changed {b.status}/{b.reward:g}"
                                  f"  {_clip(texts[i][-70:], 70)}")
    seconds = time.perf_counter() - started
    mv_rows = min(args.gsm8k_mv_rows, len(rows))
    if mv_rows:
        from math_verify import parse, verify

        for style in styles:
            for i, row in enumerate(rows[:mv_rows]):
                solution, _, n = row["answer"].rpartition("####")
                gold = parse(row["answer"])
                for text, target, counter in ((table.restate(solution, n.strip(), style), True, mv_right),
                                              (table.restate(solution, table.changed_number(n.strip(), i), style),
                                               False, mv_changed)):
                    try:
                        got = bool(verify(gold, parse(text)))
                    except Exception:  # noqa: BLE001
                        got = False
                    counter[style] += got == target
    total = len(rows) * len(styles)
    print(f"\nGSM8K check: {len(rows)} training rows x {len(styles)} final-answer styles = {total} solutions, "
          f"each restated right and with its final number changed ({args.gsm8k})")
    print(f"ours: right scored right {sum(right.values())}/{total} ({100 * sum(right.values()) / total:.2f}%), "
          f"changed scored wrong {sum(changed.values())}/{total} ({100 * sum(changed.values()) / total:.2f}%), "
          f"{2 * total / seconds:.0f} answers/s")
    if mv_rows:
        mv_total = mv_rows * len(styles)
        print(f"math-verify, first {mv_rows} rows: right scored right {sum(mv_right.values())}/{mv_total} "
              f"({100 * sum(mv_right.values()) / mv_total:.2f}%), changed scored wrong {sum(mv_changed.values())}/{mv_total} "
              f"({100 * sum(mv_changed.values()) / mv_total:.2f}%)")
    style_rows = [("style", ["ours right", "ours changed=wrong"] + (["math-verify right", "math-verify changed=wrong"]
                                                                    if mv_rows else []))]
    for style in styles:
        cells = [f"{right[style]}/{len(rows)}", f"{changed[style]}/{len(rows)}"]
        if mv_rows:
            cells += [f"{mv_right[style]}/{mv_rows}", f"{mv_changed[style]}/{mv_rows}"]
        style_rows.append(("  " + style, cells))
    _print_rows(style_rows)
    if misses:
        print(f"{len(misses)} solution(s) scored otherwise:")
        print("\n".join(misses[: args.show]))


def disagreements(path: Path, out: Path | None) -> None:
    sys.path.insert(0, str(REPO))
    from math_verify import parse, verify

    from verifiers.base import Context
    from verifiers.math import MathVerifier

    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    with MathVerifier() as ours:
        verdicts = ours.verify([r["completion"] for r in rows], [r["gold"] for r in rows],
                               [Context(prompt=r.get("problem", "")) for r in rows])
    found = []
    for row, verdict in zip(rows, verdicts):
        gold = row["gold"].split("####")[-1].strip() if "####" in row["gold"] else _boxed_gold(row["gold"])
        try:
            theirs = bool(verify(parse(gold), parse(row["completion"])))
        except Exception:  # noqa: BLE001  (its failure is a "not equal" for its users)
            theirs = False
        mine = verdict.status == "ok" and verdict.reward == 1.0
        if mine != theirs:
            found.append(row | {"ours": mine, "math_verify": theirs, "reason": verdict.reason})
    print(f"{len(found)} disagreement(s) in {len(rows)} completions "
          f"({sum(f['ours'] for f in found)} where only this verifier says equal)")
    for f in found:
        print(f"- {f['id']}: ours {f['ours']}, math-verify {f['math_verify']}; gold {_clip(f['gold'], 40)!r}; "
              f"…{_clip(f['completion'][-160:], 160)}")
    if out is not None:
        out.write_text("".join(json.dumps(f, ensure_ascii=False) + "\n" for f in found))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="fresh-process runs per side; the median is reported")
    parser.add_argument("--only", choices=SIDES, help="run one side only")
    parser.add_argument("--workers", type=int, default=None, help="MathVerifier workers (default: its own)")
    parser.add_argument("--cases", type=Path, default=CASES_FILE, help="the case table module")
    parser.add_argument("--show", type=int, default=40, help="disagreements listed per side")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--gsm8k", type=Path, default=GSM8K, help="GSM8K training rows (JSONL) for the GSM8K check")
    parser.add_argument("--gsm8k-rows", type=int, default=0, help="rows of the GSM8K check (default: all)")
    parser.add_argument("--gsm8k-mv-rows", type=int, default=200, help="rows math-verify also scores in the check")
    parser.add_argument("--no-gsm8k", action="store_true", help="skip the GSM8K check")
    parser.add_argument("--disagreements", type=Path, help="completions (JSONL) to score with both; see above")
    parser.add_argument("--out", type=Path, help="with --disagreements: write them here as JSON lines")
    parser.add_argument("--child", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--subset", choices=("all", "real"), default="all", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.cases = args.cases.resolve()
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if args.child:
        child(args)
        return
    if args.disagreements:
        disagreements(args.disagreements, args.out)
        return
    table = load_table(args.cases)
    side_effect = Path(table.SIDE_EFFECT_FILE)
    sides = [s for s in SIDES if args.only in (None, s)]
    results = {s: run_side(s, "all", args, side_effect) for s in sides}
    real_results = {s: run_side(s, "real", args, side_effect) for s in sides}
    report(table.CASES, results, real_results, args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"whole": results, "real": real_results}, indent=1))
    if not args.no_gsm8k:
        gsm8k_check(table, args)


if __name__ == "__main__":
    main()
