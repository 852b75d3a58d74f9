"""Agreement and answers per second on the math case table: this project's verifier against math-verify.

    python bench/math_verifier.py [--runs 3] [--only ours|math-verify|math-verify-boxed] [--workers N]

Both sides score every case of `tests/verifiers/math_cases.py` (prediction, gold, expected verdict)
and are compared with the expected verdicts, which follow this project's documented defaults.

- ours: `verifiers.math.MathVerifier()`, the whole table in one batched `verify` call, as training
  calls it. "cold" times constructing the verifier and that call, worker pool start included;
  "warm" then times the same call on a new verifier instance (an empty answer cache) whose pool
  is already up (an untimed symbolic pair from outside the table starts it if need be). A verdict is "equal" when it is status ok with reward 1.0.
- math-verify: `verify(parse(gold), parse(prediction))` per case, sequentially in the main thread,
  as its users call it (its own default timeouts). "cold" is the first pass in a fresh process,
  "warm" a second pass in the same process. An exception counts as "not equal".
- math-verify-boxed: the same, with a bare gold (no \\boxed, no ####) wrapped in \\boxed{...}
  first, as verl does before calling math-verify: math-verify finds LaTeX only behind an anchor
  ($...$, \\boxed), so a bare `\\frac34` gold parses to nothing. Predictions stay as written.

Each run happens in a fresh Python process, so nothing one run computed (an answer cache, a
parse cache) reaches another; imports are timed apart and not counted. `--runs K` reports the
median over K runs. The case table has no repeated (prediction, gold) pair, so the per-instance
answer cache never answers a case within a call either.

Predictions in the table include code that would create a file if evaluated; the bench reports
whether that file appeared after each side. Exits 0 either way: a benchmark, not a test.
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
    from verifiers.math import MathVerifier

    import_s = time.perf_counter() - started
    preds, golds = [c.prediction for c in cases], [c.gold for c in cases]
    options = {} if workers is None else {"workers": workers}

    started = time.perf_counter()
    cold_verifier = MathVerifier(**options)
    verdicts = cold_verifier.verify(preds, golds)
    cold_s = time.perf_counter() - started

    # A fresh instance: its answer cache is empty. One symbolic pair that is not in the table
    # goes first, untimed, so its worker pool is up even if instances did not share one.
    warm_verifier = MathVerifier(**options)
    warm_verifier.verify([_WARM_UP[0]], [_WARM_UP[1]])
    started = time.perf_counter()
    warm_verdicts = warm_verifier.verify(preds, golds)
    warm_s = time.perf_counter() - started
    warm_verifier.close()
    cold_verifier.close()

    equal = [v.status == "ok" and v.reward == 1.0 for v in verdicts]
    return {
        "import_s": import_s, "cold_s": cold_s, "warm_s": warm_s, "equal": equal,
        "workers": getattr(cold_verifier, "workers", workers),
        "status": [v.status for v in verdicts], "reason": [v.reason for v in verdicts],
        "warm_differs": sum(
            (a.status, a.reward) != (b.status, b.reward) for a, b in zip(verdicts, warm_verdicts)
        ),
    }


def _boxed_gold(gold: str) -> str:
    return gold if "\\boxed" in gold or "####" in gold else "\\boxed{" + gold + "}"


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
    cases = load_table(args.cases).CASES
    if args.child == "ours":
        result = run_ours(cases, args.workers)
    else:
        result = run_math_verify(cases, box_gold=args.child == "math-verify-boxed")
    print("RESULT " + json.dumps(result))


# --- the parent: K fresh runs per side, then the report -------------------------------------


def run_side(side: str, args, side_effect: Path) -> dict:
    side_effect.unlink(missing_ok=True)
    runs = []
    for _ in range(args.runs):
        command = [sys.executable, __file__, "--child", side, "--cases", str(args.cases)]
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
        "import_s": statistics.median(r["import_s"] for r in runs),
        "cold_s": statistics.median(r["cold_s"] for r in runs),
        "warm_s": statistics.median(r["warm_s"] for r in runs),
        "equal": first["equal"], "status": first["status"], "reason": first["reason"],
        "workers": first.get("workers"),
        # Verdicts that changed between runs, or between the cold and warm call of a run.
        "unstable": sum(a != b for r in runs[1:] for a, b in zip(r["equal"], first["equal"]))
        + sum(r["warm_differs"] for r in runs),
        "side_effect": side_effect.exists(),
    }


def _clip(text: str, n: int) -> str:
    text = text.replace("\n", "\\n")
    return text if len(text) <= n else text[: n - 1] + "…"


def report(cases, results: dict, args) -> None:
    n = len(cases)
    sides = [s for s in SIDES if s in results]
    workers = results.get("ours", {}).get("workers") or args.workers or "default"
    label = {"ours": f"ours ({workers} workers)", "math-verify": "math-verify",
             "math-verify-boxed": "math-verify, gold boxed"}
    print(f"\n{n} cases from {args.cases}, median of {args.runs} fresh-process run(s)\n")
    for s in sides:
        if "failed" in results[s]:
            print(f"{s} failed:\n  " + "\n  ".join(results[s]["failed"]))
    ok_sides = [s for s in sides if "failed" not in results[s]]
    if not ok_sides:
        return
    rows = [("", [label[s] for s in ok_sides])]

    def agree(s):
        return [e == c.expected for e, c in zip(results[s]["equal"], cases)]

    rows.append(("agreement with expected", [
        f"{sum(agree(s))}/{n} ({100 * sum(agree(s)) / n:.1f}%)" for s in ok_sides]))
    rows.append(("answers/s, cold (first call)", [f"{n / results[s]['cold_s']:.0f}" for s in ok_sides]))
    rows.append(("answers/s, warm", [f"{n / results[s]['warm_s']:.0f}" for s in ok_sides]))
    rows.append(("seconds, cold / warm", [
        f"{results[s]['cold_s']:.2f} / {results[s]['warm_s']:.2f}" for s in ok_sides]))
    rows.append(("import seconds (not counted)", [f"{results[s]['import_s']:.2f}" for s in ok_sides]))
    rows.append(("statuses", [
        ", ".join(f"{k} {v}" for k, v in Counter(results[s]["status"]).most_common()) for s in ok_sides]))
    rows.append(("unstable verdicts across calls", [str(results[s]["unstable"]) for s in ok_sides]))
    rows.append(("hostile prediction executed", [
        "YES" if results[s]["side_effect"] else "no" for s in ok_sides]))
    width = max(len(r[0]) for r in rows) + 2
    col = max(len(v) for r in rows for v in r[1]) + 2
    for name, values in rows:
        print(name.ljust(width) + "".join(v.ljust(col) for v in values))

    print("\nagreement per rule")
    rules = list(dict.fromkeys(c.rule for c in cases))
    for rule in rules:
        idx = [i for i, c in enumerate(cases) if c.rule == rule]
        cells = [f"{sum(agree(s)[i] for i in idx)}/{len(idx)}" for s in ok_sides]
        print("  " + rule.ljust(width - 2) + "".join(v.ljust(col) for v in cells))

    for s in ok_sides:
        wrong = [i for i, a in enumerate(agree(s)) if not a]
        print(f"\n{s}: {len(wrong)} disagreement(s) with the expected verdict")
        for i in wrong[: args.show]:
            c = cases[i]
            got = "equal" if results[s]["equal"][i] else f"not equal ({results[s]['status'][i]})"
            reason = f"  [{_clip(results[s]['reason'][i], 60)}]" if results[s]["reason"][i] else ""
            print(f"  {c.rule:<12} {_clip(c.prediction, 48)!s:<50} gold {_clip(c.gold, 28)!s:<30} "
                  f"expected {'equal' if c.expected else 'not equal'}, got {got}{reason}")
        if len(wrong) > args.show:
            print(f"  ... and {len(wrong) - args.show} more (--show N)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="fresh-process runs per side; the median is reported")
    parser.add_argument("--only", choices=SIDES, help="run one side only")
    parser.add_argument("--workers", type=int, default=None, help="MathVerifier workers (default: its own)")
    parser.add_argument("--cases", type=Path, default=CASES_FILE, help="the case table module")
    parser.add_argument("--show", type=int, default=40, help="disagreements listed per side")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--child", choices=SIDES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.cases = args.cases.resolve()
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if args.child:
        child(args)
        return
    table = load_table(args.cases)
    side_effect = Path(table.SIDE_EFFECT_FILE)
    results = {s: run_side(s, args, side_effect) for s in SIDES if args.only in (None, s)}
    report(table.CASES, results, args)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
