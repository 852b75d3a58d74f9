"""A GSM8K solution restated with its final number in many styles is right; the same solution
stating another number is wrong. (bench/math_verifier.py runs this over GSM8K's training rows.)"""

import importlib.util
from pathlib import Path

import pytest


def _load_table():
    spec = importlib.util.spec_from_file_location("math_cases", Path(__file__).with_name("math_cases.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


table = _load_table()


def _pairs():
    for row_index, row in enumerate(table.GSM8K_STYLE_ROWS):
        solution, _, n = row.rpartition("####")
        n = n.strip()
        for style in table.FINAL_STATEMENTS:
            yield row, style, table.restate(solution, n, style), table.restate(solution, table.changed_number(n, row_index), style)


PAIRS = list(_pairs())


@pytest.fixture(scope="module")
def verdicts():
    from verifiers.math import MathVerifier

    with MathVerifier() as verifier:
        right = verifier.verify([p[2] for p in PAIRS], [p[0] for p in PAIRS])
        changed = verifier.verify([p[3] for p in PAIRS], [p[0] for p in PAIRS])
    return right, changed


def test_number_forms_and_changes_are_what_the_styles_need():
    assert table.number_forms("1,234,500") == {"n": "1234500", "grouped": "1,234,500", "latex": "1{,}234{,}500",
                                               "spaced": "1 234 500", "thin": "1\\,234\\,500"}
    assert table.number_forms("-5")["grouped"] == "-5"
    assert table.number_forms("2.5")["spaced"] == "2.5"
    assert [table.changed_number("14", seed) for seed in (0, 8, 9)] == ["15", "23", "15"]
    assert table.changed_number("2.5", 0) == "3.5"
    assert len(PAIRS) == len(table.GSM8K_STYLE_ROWS) * len(table.FINAL_STATEMENTS) >= 150


@pytest.mark.parametrize("index", range(len(PAIRS)), ids=[f"{p[1]}-{i}" for i, p in enumerate(PAIRS)])
def test_restated_solution_is_right_and_a_changed_number_is_wrong(verdicts, index):
    right, changed = verdicts[0][index], verdicts[1][index]
    row, style, right_text, changed_text = PAIRS[index]
    assert (right.status, right.reward) == ("ok", 1.0), f"{style}: {right.reason}\n{right_text}"
    assert (changed.status, changed.reward) == ("ok", 0.0), f"{style}: scored right\n{changed_text}"
