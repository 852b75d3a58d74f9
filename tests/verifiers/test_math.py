"""The math verifier's contract: extraction, references, options, and that it is safe and never
hangs, from the main thread and from worker threads. The equivalence rules are covered case by
case in test_math_cases.py."""

import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from fractions import Fraction

import pytest

from verifiers.base import ERROR, OK, TIMEOUT, Context, Verifier
from verifiers.math import MathVerifier, extract_answer, parse_answer

GSM8K_SOLUTION = (
    "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
    "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n"
    "#### 72"
)


@pytest.fixture(scope="module")
def verifier():
    with MathVerifier(timeout_s=2.0) as v:
        yield v


# (completion, reference, expected reward, expected status)
CASES = [
    ("72", 72, 1.0, OK),
    ("She sold 24 in May and 72 in total.", 72, 1.0, OK),
    ("She sold 72 in total, 24 in May.", 72, 0.0, OK),  # the last number decides
    ("I am not sure.", 72, 0.0, OK),
    ("", 72, 0.0, OK),
    ("First \\boxed{3}, then corrected: \\boxed{5}", 5, 1.0, OK),
    ("First \\boxed{3}, then corrected: \\boxed{5}", 3, 0.0, OK),
    ("\\boxed{\\boxed{7}}", 7, 1.0, OK),
    ("The result is 12 then \\boxed{7", 12, 1.0, OK),  # unclosed box: fall back to the text
    ("Thinking...\n#### 72", GSM8K_SOLUTION, 1.0, OK),
    ("She sold 48 + 24 = 72 clips.", GSM8K_SOLUTION, 1.0, OK),
    ("#### 24\nso 72 in total", 72, 0.0, OK),  # the #### line is the answer
    ("The answer is 6. Wait, the answer is 7.", 7, 1.0, OK),
    ("\u221212", -12, 1.0, OK),  # unicode minus
    ("0.1", 0.1, 1.0, OK),  # a float reference is the decimal it prints as
    ("0.0000001", 0, 0.0, OK),  # zero only matches zero
    ("1000001", 1000000, 0.0, OK),  # integers compare exactly, whatever rel_tol
    ("0.5", Decimal("0.5"), 1.0, OK),
    ("3/4", Fraction(3, 4), 1.0, OK),
    # references that cannot be trusted are masked, not scored
    ("72", "The clips were sold in April and May.", 0.0, ERROR),
    ("72", "She sold 24 in May and 72 in all.\nThat is all.", 0.0, ERROR),  # gold text needs a marked answer
    ("72", None, 0.0, ERROR),
    ("72", float("nan"), 0.0, ERROR),
    ("1", True, 0.0, ERROR),
    ("72", "#### 3 +* 4", 0.0, ERROR),
]


@pytest.mark.parametrize("completion, reference, reward, status", CASES)
def test_contract_cases(verifier, completion, reference, reward, status):
    (verdict,) = verifier.verify([completion], [reference])
    assert (verdict.reward, verdict.status) == (reward, status), verdict.reason
    assert verdict.latency_s >= 0


def test_wrong_answers_say_why_and_rewards_are_configurable():
    v = MathVerifier(reward_correct=2.0, reward_wrong=-1.0)
    right, wrong, symbolic_right = v.verify(["\\boxed{3}", "\\boxed{4}", "\\boxed{2\\sqrt{3}}"], [3, 3, "\\sqrt{12}"])
    assert (right.reward, right.reason) == (2.0, "")
    assert (wrong.reward, wrong.reason) == (-1.0, "answer 4 != reference 3")
    assert symbolic_right.reward == 2.0


def test_require_boxed_scores_an_unboxed_answer_as_wrong():
    unboxed, boxed = MathVerifier(require_boxed=True).verify(["The answer is 72.", "\\boxed{72}"], [72, 72])
    assert (unboxed.reward, unboxed.status, unboxed.reason) == (0.0, OK, "no \\boxed answer")
    assert (boxed.reward, boxed.status) == (1.0, OK)


def test_verifier_satisfies_the_protocol_and_checks_lengths(verifier):
    assert isinstance(verifier, Verifier)
    with pytest.raises(ValueError):
        verifier.verify(["1", "2"], [1])


@pytest.mark.parametrize(
    "options",
    [{"rel_tol": -1e-3}, {"reward_correct": float("inf")}, {"reward_wrong": "0"}, {"percent": "half"},
     {"timeout_s": 0}, {"workers": 0}],
)
def test_invalid_options_are_refused(options):
    with pytest.raises(ValueError):
        MathVerifier(**options)


@pytest.mark.parametrize(
    "text, answer",
    [
        ("a \\boxed{\\frac{1}{\\boxed{2}}} b", "2"),  # the box opened last
        ("\\boxed{a{b}c} and more", "a{b}c"),
        ("\\fbox{\\{1, 2\\}}", "\\{1, 2\\}"),  # escaped braces do not nest
        ("step\n#### 1,234\n", "1,234"),
        ("The final answer is 3/4.", "3/4"),
        ("So the answer is: $-3$.", "-3"),
        ("La respuesta es 12.", "12"),
        ("Ответ: 5", "5"),
        ("答案是 7", "7"),
        ("5 apples and 7 pears are left over here", "7"),
        ("Hence we get $x = 5$ as the result, after some work on it.", "5"),  # a chain's last link
        ("3/4", "3/4"),  # a bare answer is its own answer
        ("2x+1", "2x+1"),
        ("no digits here at all", None),
    ],
)
def test_extract_answer(text, answer):
    assert extract_answer(text) == answer


def test_parse_builds_a_tree_and_never_evaluates():
    assert parse_answer("\\frac12") == ("div", ("num", Fraction(1), False), ("num", Fraction(2), False))
    assert parse_answer("50\\%")[0] == "percent"
    assert parse_answer("(1, 2]") [0] == "interval"
    assert parse_answer("\\text{Monday}") == ("text", "monday")


HOSTILE = [
    "__import__('os').system('touch {marker}')",
    "\\boxed{__import__('os').system('touch {marker}')}",
    "eval(\"__import__('os').system('touch {marker}')\")",
    "exec('import os; os.system(\"touch {marker}\")')",
    "lambda: __import__('os').system('touch {marker}')",
    "().__class__.__bases__[0].__subclasses__()",
    "Symbol('x').__class__.__init__.__globals__['os'].system('touch {marker}')",
]


@pytest.mark.parametrize("template", HOSTILE)
def test_hostile_text_is_never_executed_as_answer_or_reference(tmp_path, verifier, template):
    marker = tmp_path / "pwned"
    text = template.replace("{marker}", str(marker))
    verdicts = verifier.verify([text, "1", text], ["1", text, text])
    assert not marker.exists()
    assert all(v.reward == 0.0 or v.status != OK for v in verdicts[:2])


PATHOLOGICAL = [
    "5^(5^(5^5))",
    "\\boxed{5^{5^{5^{5}}}}",
    "10^{10^{10}}",
    "9^9^9^9",
    "(x+1)^{100000}",
    "x^{10^{10}}",
    "1000000!",
    "\\binom{10^{9}}{5000}",
    "2" * 100_000,  # a 100,000-character answer
    "\\boxed{" + "{" * 5000 + "1" + "}" * 5000 + "}",  # deeply nested braces
    "\\frac{1}{" * 3000 + "2" + "}" * 3000,
    "(" * 10_000 + "1" + ")" * 10_000,
    "\\boxed{" * 20_000,  # unclosed boxes: brace matching stays linear
    "\\sin(10^{300})^{10^{3}} + \\sqrt{2}^{\\sqrt{2}^{\\sqrt{2}^{\\sqrt{2}}}}",
    "\\boxed{1" + " a" * 50_000 + "}",
    # the extraction rules for real model text, each given a long input that could make it quadratic
    "x = 1 " * 6_000,
    "\\pm 1 " * 150,
    "$1 + $" * 5_000,
    "\\boxed{1} and " * 3_000,
    "1 \\approx " * 6_000,
    "**1** " * 6_000,
    "The answer is " * 3_000,
    "Final Answer: The final answer is $" * 1_000,
    "(" * 20_000 + "x = 1",
    "1,\\! " * 8_000,
]
BUDGET_S = 2.0


def _check_budget(verifier, answers):
    start = time.perf_counter()
    verdicts = verifier.verify(answers, ["5"] * len(answers))
    elapsed = time.perf_counter() - start
    for answer, v in zip(answers, verdicts):
        assert v.status in (OK, TIMEOUT, ERROR) and v.reward == 0.0, (answer[:40], v)
        assert v.latency_s <= BUDGET_S + 0.5, (answer[:40], v)
    return elapsed, verdicts


def test_pathological_answers_return_within_the_budget_from_the_main_thread(verifier):
    for answer in PATHOLOGICAL:  # one at a time: each must come back within its own budget
        elapsed, _ = _check_budget(verifier, [answer])
        assert elapsed < BUDGET_S + 1.0, (answer[:40], elapsed)


def test_pathological_answers_return_within_the_budget_from_worker_threads(verifier):
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda a: _check_budget(verifier, [a]), PATHOLOGICAL))
    # Calls are served one at a time, so a thread may wait for others' budgets; each answer's own
    # time in a worker stays within the budget (checked inside), and the whole lot is bounded.
    assert sum(elapsed for elapsed, _ in results) < len(PATHOLOGICAL) * (BUDGET_S + 1.0) * 4


def test_an_answer_over_budget_is_a_timeout_verdict_not_a_score():
    # A budget far below what any sympy comparison needs: the worker is killed and replaced.
    # The slow pair costs tens of milliseconds at every call (cosines of huge arguments at fresh
    # points); one that sympy settles from its caches, like (x+1)^{50} against (1+x)^{50}, can
    # come back within even this budget.
    slow_pair = ("\\cos(10^{9999}x) + \\cos(10^{9998}x) + \\cos(10^{9997}x)", "x")
    with MathVerifier(timeout_s=0.001) as v:
        slow, quick = v.verify([slow_pair[0], "7"], [slow_pair[1], "7"])
    assert (slow.status, slow.reward, slow.scored) == (TIMEOUT, 0.0, False)
    assert "0.001s" in slow.reason
    assert (quick.status, quick.reward) == (OK, 1.0)  # numbers never wait for the pool


def test_thread_pool_gives_the_main_thread_verdicts():
    answers = ["x < -1 \\text{ or } x > 2", "2x+2", "\\sqrt{2}/2", "0.333", "\\{1,2\\}", "x > 3", "y = 2x+1", "(B)", "50\\%", "7", "2y"]
    golds = ["(-\\infty, -1) \\cup (2, \\infty)", "2(x+1)", "\\frac{1}{\\sqrt2}", "1/3", "\\{2,1\\}", "(3, \\infty)", "2x - y + 1 = 0", "B", "0.5", "8", "2x"]
    main = [(v.reward, v.status) for v in MathVerifier(cache_size=0).verify(answers, golds)]
    assert main == [(1.0, OK), (1.0, OK), (1.0, OK), (0.0, OK), (1.0, OK), (1.0, OK), (1.0, OK), (1.0, OK), (1.0, OK),
                    (0.0, OK), (0.0, OK)]

    def score(i):
        return [(v.reward, v.status) for v in MathVerifier(cache_size=0).verify(answers[i:] + answers[:i],
                                                                                golds[i:] + golds[:i])]

    with ThreadPoolExecutor(4) as pool:
        rotated = list(pool.map(score, range(len(answers))))
    for i, got in enumerate(rotated):
        assert got == main[i:] + main[:i]


def test_repeated_pairs_come_from_the_cache(verifier):
    first = verifier.verify(["x^2 - 1"], ["(x-1)(x+1)"])
    hits = verifier.cache_hits
    again = verifier.verify(["x^2 - 1"] * 3, ["(x-1)(x+1)"] * 3)
    assert [v.reward for v in first + again] == [1.0] * 4
    assert verifier.cache_hits == hits + 3


def test_numbers_are_decided_without_starting_the_pool():
    v = MathVerifier(workers=1, timeout_s=1.25, prestart=False)  # settings no other test uses
    v.verify(["\\boxed{72}", "1,234", "50%"], [72, "1234", "0.5"])
    from verifiers.math.verifier import _pools

    assert (1, 1.25, v.memory_mb) not in _pools


def test_prepare_reference_reads_a_gold_once_and_verify_takes_it():
    from verifiers.math import MathReference

    v = MathVerifier(prestart=False)
    ref = v.prepare_reference(GSM8K_SOLUTION)
    assert isinstance(ref, MathReference) and ref.answer == "72"
    assert v.prepare_reference(GSM8K_SOLUTION) is ref  # cached per distinct reference
    assert v.prepare_reference(r"$(m, n) = (4, 2)$").answer == "(m, n) = (4, 2)"
    assert v.prepare_reference(r"\boxed{1} and \boxed{2}").answer == "1, 2"
    assert v.prepare_reference(3.5).answer == "3.5"
    right, wrong = v.verify(["So she sold 72 clips.", "She sold 24."], [ref, ref])
    assert (right.reward, right.status, wrong.reward, wrong.status) == (1.0, OK, 0.0, OK)


@pytest.mark.parametrize(
    "reference, reason",
    [
        ("The clips were sold in April and May.", "has no readable answer"),
        ("#### 3 +* 4", "does not parse"),
        (float("nan"), "has no readable answer"),
        (True, "has no readable answer"),
        (None, "has no readable answer"),
        (r"\boxed{}", "has no readable answer"),
    ],
)
def test_prepare_reference_says_why_a_gold_cannot_be_read(reference, reason):
    with pytest.raises(ValueError, match=reason):
        MathVerifier(prestart=False).prepare_reference(reference)


def test_a_dataset_with_unreadable_golds_is_reported_by_row_when_loaded():
    from verifiers import prepare_references

    golds = ["#### 72", "x = 3", "no answer given here", "\\boxed{\\frac{1}{2}}", "#### 3 +* 4"]
    with pytest.raises(ValueError) as raised:
        prepare_references(MathVerifier(prestart=False), golds, rows=[f"train.jsonl line {i + 1}" for i in range(5)])
    message = str(raised.value)
    assert "2 reference(s) that verifier 'math' cannot read" in message
    assert "train.jsonl line 3: reference 'no answer given here' has no readable answer" in message
    assert "train.jsonl line 5: reference '3 +* 4' does not parse" in message


def test_the_question_as_context_tells_a_restated_number_from_a_conversion(verifier):
    question = Context(prompt="Write 2.75 as a mixed number.")
    answers = ["So it is 2.75.", r"So it is $2\frac{3}{4}$.", "11/4"]
    # Without the question every answer is judged against the gold alone: all three are the value.
    assert [v.reward for v in verifier.verify(answers, [r"2\frac{3}{4}"] * 3)] == [1.0, 1.0, 1.0]
    verdicts = verifier.verify(answers, [r"2\frac{3}{4}"] * 3, [question] * 3)
    assert [(v.status, v.reward) for v in verdicts] == [(OK, 0.0), (OK, 1.0), (OK, 1.0)]
    assert "restates the question's 2.75" in verdicts[0].reason
    # A question stating its answer in the gold's own form is no conversion.
    [same] = verifier.verify(["He keeps all 5."], ["5"], [Context(prompt="Tom has 5 pens and loses none. How many?")])
    assert same.reward == 1.0
    with pytest.raises(ValueError, match="contexts"):
        verifier.verify(["5"], ["5"], [question, question])


def test_an_answer_that_parses_but_cannot_be_compared_is_wrong_not_masked(verifier):
    # `0.6 x 100 = 66.67%` parses (a percent of a relation) but is no value: the model's doing, so
    # it scores wrong with status ok; a masked verdict would hide it from training.
    [verdict] = verifier.verify(["The final answer is $0.6 x 100 = 66.67%."], [r"60\%"])
    assert (verdict.status, verdict.reward) == (OK, 0.0)
