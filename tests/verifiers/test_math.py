import time
from decimal import Decimal
from fractions import Fraction

import pytest

from verifiers.base import ERROR, OK, Verifier
from verifiers.math import MathVerifier, extract_answer, parse_number

GSM8K_SOLUTION = (
    "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
    "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n"
    "#### 72"
)

# (completion, reference, expected reward, expected status)
CASES = [
    # plain numbers and the last-number fallback
    ("72", 72, 1.0, OK),
    ("72", "72", 1.0, OK),
    ("71", 72, 0.0, OK),
    ("She sold 24 in May and 72 in total.", 72, 1.0, OK),
    ("She sold 72 in total, 24 in May.", 72, 0.0, OK),  # the last number decides
    ("I am not sure.", 72, 0.0, OK),
    ("", 72, 0.0, OK),
    # boxed answers, nesting, several boxes
    ("So the total is \\boxed{72}.", 72, 1.0, OK),
    ("First \\boxed{3}, then corrected: \\boxed{5}", 5, 1.0, OK),
    ("First \\boxed{3}, then corrected: \\boxed{5}", 3, 0.0, OK),
    ("\\boxed{\\frac{1}{2}}", "0.5", 1.0, OK),
    ("\\boxed{\\boxed{7}}", 7, 1.0, OK),
    ("$\\boxed{-\\dfrac{3}{4}}$", -0.75, 1.0, OK),
    ("\\boxed{\\frac{1}{-2}}", "-1/2", 1.0, OK),
    ("\\boxed{x = -5}", -5, 1.0, OK),
    ("\\boxed{18 \\text{ dollars}}", 18, 1.0, OK),
    ("\\boxed{\\$1{,}250}", 1250, 1.0, OK),
    ("\\boxed{90^\\circ}", 90, 1.0, OK),
    ("\\boxed{3\\frac{1}{2}}", "7/2", 1.0, OK),  # mixed number, not 31/2
    ("\\boxed{\\sqrt{2}}", 2, 0.0, OK),  # symbolic: not a number, never "the 2 inside"
    ("\\boxed{2x}", 2, 0.0, OK),
    ("\\boxed{(1, 2)}", 2, 0.0, OK),
    ("\\boxed{}", 0, 0.0, OK),
    ("\\boxed{\\frac{1}{0}}", 0, 0.0, OK),
    ("The result is 12 then \\boxed{7", 12, 1.0, OK),  # unclosed box: fall back to the text
    # GSM8K answers and references
    ("Thinking...\n#### 72", GSM8K_SOLUTION, 1.0, OK),
    ("She sold 48 + 24 = 72 clips.", GSM8K_SOLUTION, 1.0, OK),
    ("#### 1,234", 1234, 1.0, OK),
    ("#### 1,234", GSM8K_SOLUTION, 0.0, OK),
    ("#### 24\nso 72 in total", 72, 0.0, OK),  # the #### line is the answer
    # "the answer is"
    ("The answer is 42.", 42, 1.0, OK),
    ("So the answer is: $-3$. Done.", -3, 1.0, OK),
    ("The answer is 5 because 2 + 3 = 5 and 9 is too big", 5, 1.0, OK),
    ("The answer is 6. Wait, the answer is 7.", 7, 1.0, OK),
    ("Answer: x^2 + 1 where x = 3", 3, 0.0, OK),  # a stated answer that is not a number
    # signs, fractions vs decimals, separators, tolerance
    ("-12", 12, 0.0, OK),
    ("\u221212", -12, 1.0, OK),  # unicode minus
    ("1/4", 0.25, 1.0, OK),
    ("0.3333333", "1/3", 1.0, OK),  # within rel_tol 1e-6
    ("0.33", "1/3", 0.0, OK),
    ("2.50", "5/2", 1.0, OK),
    ("1,000,000", "1000000", 1.0, OK),
    ("10,000.5", 10000.5, 1.0, OK),
    ("1e3", 1000, 1.0, OK),
    ("0.1", 0.1, 1.0, OK),  # float reference read as the decimal it prints as
    ("0", 0, 1.0, OK),
    ("0.0000001", 0, 0.0, OK),  # zero only matches zero
    ("50%", 50, 1.0, OK),
    ("50%", 0.5, 0.0, OK),  # a percentage is never its fraction
    ("The price was $18.", "$18.00", 1.0, OK),
    ("x^2", 2, 0.0, OK),  # an exponent is not a number on its own
    ("v2", 2, 0.0, OK),
    # references that cannot be trusted: masked, not scored
    ("72", "seventy-two", 0.0, ERROR),
    ("72", "The clips were sold in April and May.", 0.0, ERROR),
    ("72", "She sold 24 in May and 72 in all.", 0.0, ERROR),  # gold text needs a marked answer
    ("72", "\\sqrt{2}", 0.0, ERROR),
    ("72", None, 0.0, ERROR),
    ("72", float("nan"), 0.0, ERROR),
    ("1", True, 0.0, ERROR),
    ("72", "#### unknown", 0.0, ERROR),
]


@pytest.mark.parametrize("completion, reference, reward, status", CASES)
def test_math_cases(completion, reference, reward, status):
    (verdict,) = MathVerifier().verify([completion], [reference])
    assert (verdict.reward, verdict.status) == (reward, status), verdict.reason
    assert verdict.latency_s > 0


def test_wrong_answers_say_why_and_rewards_are_configurable():
    verifier = MathVerifier(reward_correct=2.0, reward_wrong=-1.0)
    right, wrong, garbage = verifier.verify(["\\boxed{3}", "\\boxed{4}", "\\boxed{\\pi}"], [3, 3, 3])
    assert (right.reward, right.reason) == (2.0, "")
    assert (wrong.reward, wrong.reason) == (-1.0, "answer 4 != reference 3")
    assert (garbage.reward, garbage.reason) == (-1.0, "answer '\\\\pi' is not a number")


def test_require_boxed_scores_an_unboxed_answer_as_wrong():
    verifier = MathVerifier(require_boxed=True)
    unboxed, boxed = verifier.verify(["The answer is 72.", "\\boxed{72}"], [72, 72])
    assert (unboxed.reward, unboxed.status, unboxed.reason) == (0.0, OK, "no \\boxed answer")
    assert (boxed.reward, boxed.status) == (1.0, OK)


def test_bad_reference_is_an_error_even_when_the_answer_is_unboxed():
    (verdict,) = MathVerifier(require_boxed=True).verify(["72"], ["n/a"])
    assert verdict.status == ERROR and "reference 'n/a'" in verdict.reason


def test_rel_tol_is_configurable():
    # |100.5 - 100| / 100.5 ~ 0.005: inside 1e-2, outside the default 1e-6
    assert MathVerifier(rel_tol=1e-2).verify(["100.5"], [100])[0].reward == 1.0
    assert MathVerifier().verify(["100.5"], [100])[0].reward == 0.0
    assert MathVerifier(rel_tol=0).verify(["0.5"], [Decimal("0.5")])[0].reward == 1.0


def test_verifier_satisfies_the_protocol_and_checks_lengths():
    assert isinstance(MathVerifier(), Verifier)
    with pytest.raises(ValueError):
        MathVerifier().verify(["1", "2"], [1])


@pytest.mark.parametrize(
    "options", [{"rel_tol": -1e-3}, {"reward_correct": float("inf")}, {"reward_wrong": "0"}]
)
def test_invalid_options_are_refused(options):
    with pytest.raises(ValueError):
        MathVerifier(**options)


@pytest.mark.parametrize(
    "text, answer",
    [
        ("a \\boxed{\\frac{1}{\\boxed{2}}} b", "2"),  # the last box opened is the inner one
        ("\\boxed{a{b}c} and more", "a{b}c"),
        ("step\n#### 1,234\n", "1,234"),
        ("The final answer is 3/4, I think", "3/4"),
        ("5 apples and 7 pears", "7"),
        ("no digits here", None),
    ],
)
def test_extract_answer(text, answer):
    assert extract_answer(text) == answer


@pytest.mark.parametrize(
    "text, value",
    [
        ("1,234", Fraction(1234)),
        ("-0.25", Fraction(-1, 4)),
        ("\\tfrac{3}{6}", Fraction(1, 2)),
        ("\\frac12", Fraction(1, 2)),
        ("-2\\frac{1}{4}", Fraction(-9, 4)),
        ("12 / 4", Fraction(3)),
        ("1,2", None),  # not a thousands separator: a list
        ("2+3", None),  # arithmetic is not evaluated
        ("__import__('os')", None),
    ],
)
def test_parse_number(text, value):
    assert parse_number(text) == value


@pytest.mark.parametrize(
    "completion",
    [
        "\\boxed{" * 20_000,  # unclosed boxes: brace matching must stay linear
        "1" * 5_000 + "\\frac{1}{2}",  # int() refuses more than 4300 digits
        "\\boxed{1e99999999}",  # Fraction would build a 100-million-digit integer
        "\\boxed{1" + " a" * 50_000 + "}",
    ],
)
def test_hostile_completions_are_scored_quickly(completion):
    start = time.perf_counter()
    (verdict,) = MathVerifier().verify([completion], [12])
    assert (verdict.reward, verdict.status) == (0.0, OK)
    assert len(verdict.reason) < 120
    assert time.perf_counter() - start < 1.0
