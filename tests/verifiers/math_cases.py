r"""The `math` verifier's case table: (prediction, gold, expected, rule, source).

Cases come from two sources. "written": written by hand, each expected verdict following the
documented defaults of `verifiers.math.MathVerifier`. "real": completions that SmolLM2-135M-Instruct
wrote (`bench/math_completions.py`) where this verifier and math-verify disagreed, or sampled from
where they agreed, each decided by reading it, kept in math_real_cases.jsonl with their origin.
Every expected verdict is what a careful human grader would say; none depends on how an
implementation gets there. The `rule` tag names the rule (or, for real cases, the class of text)
a case exercises; every rule has cases that must be equal and near misses that must not.

    extraction    1  last \boxed / \fbox, GSM8K `####`, "the answer is" in seven languages,
                     else the last number or $...$ expression; golds extracted the same way
    numbers       2  thousands separators, decimals vs fractions, rel_tol 1e-6
    percent       3  "either": 50% equals 50 and 0.5
    mixed         4  3\frac{1}{2} = 7/2 = 3 1/2
    radicals      5  radicals, pi, e
    scientific    6  1.5 \times 10^3 = 1500 = 1.5e3
    units         7  units and currency stripped
    text          8  \text{...} answers as normalised text
    choice        9  multiple-choice letters
    sets         10  sets unordered, tuples ordered, bare lists unordered
    intervals    11  intervals and unions
    matrices     12  pmatrix / bmatrix, entries as expressions
    equations    13  lone-variable assignments, equations up to a non-zero multiple
    inequalities 14  inequalities, and their intervals
    symbolic     15  symbolic equivalence; different variables differ
    no_answer    16  no answer scores 0 (status ok); an unreadable gold is an error
    hostile      17  code-like text is never executed
    currency     18  `$12 + $30 = $42` is money, not LaTeX
    final_line   19  "A: 42", "Final Answer: The final answer is $7$. I hope it is correct.",
                     "**Answer:** 7", bold values, answers in many languages, a reason after it
    boxes        20  several boxes give one answer; a later box retracts an earlier one
    formatting   21  12{,}345, 56,\!789, 7\,654.25, 2 750, decimal commas, \frac1{9}
    named        22  golds that name what they give: (m, n) = (4, 2), h(2) = 11, V_1 : V_2 = 5 : 7
    shapes       23  sets written {2, 4, 8}, x \in [a, b] vs inequalities, array vs pmatrix
    ratios       24  ratios, clock times, numbers in a base (231_4)
    golds        25  golds as graders' datasets write them (text around math, escaped twice)
    unmarked     26  answers without a marker, the last value of the last sentence
    model_output     real completions: whatever else a model wrote

`status` lists the verdict statuses a case accepts. A wrong answer is a judgement (status ok): a
timeout or error there would mask a wrong answer out of training, so only unreadable golds expect
"error", and hostile predictions may be refused with either status.

`OPTION_CASES` holds (prediction, gold, options, expected) rows for the non-default options.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["Case", "OptionCase", "CASES", "OPTION_CASES", "RULES", "SIDE_EFFECT_FILE", "REAL_CASES_FILE",
           "FINAL_STATEMENTS", "GSM8K_STYLE_ROWS", "number_forms", "restate", "changed_number"]

OK_ONLY = ("ok",)
ERROR_ONLY = ("error",)
OK_OR_ERROR = ("ok", "error")

# Hostile predictions try to create this file; the test asserts it never appears.
SIDE_EFFECT_FILE = "/tmp/rlvr_math_cases_pwned"


class Case(NamedTuple):
    prediction: str
    gold: str
    expected: bool  # True: the verdict must be status ok with reward 1.0
    rule: str
    status: tuple[str, ...] = OK_ONLY  # the statuses the verdict may have
    source: str = "written"  # "written" by hand, or "real": a model's completion, decided by hand
    origin: str = ""  # for a real case: the model, the problem and the prompt style it came from
    # A decided case this verifier gets wrong, and why (kept in the table, tested as a known miss).
    known_miss: str = ""
    # The question the prediction answers, when known: the verifier sees it as the prompt.
    question: str = ""


class OptionCase(NamedTuple):
    prediction: str
    gold: str
    options: dict[str, Any]  # MathVerifier(**options)
    expected: bool


RULES = (
    "extraction", "numbers", "percent", "mixed", "radicals", "scientific", "units", "text",
    "choice", "sets", "intervals", "matrices", "equations", "inequalities", "symbolic",
    "no_answer", "hostile", "currency", "final_line", "boxes", "formatting", "named", "shapes",
    "ratios", "golds", "unmarked", "restated",
)

# Golds written as full solutions: MATH style (a \boxed) and GSM8K style (a #### line).
GSM8K_CLIPS = (
    "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
    "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n"
    "#### 72"
)
GSM8K_EGGS = (
    "Janet's ducks lay 16 eggs per day. She eats 3 and bakes with 4, so she sells "
    "16 - 3 - 4 = <<16-3-4=9>>9 eggs.\n"
    "She makes 9 * 2 = <<9*2=18>>18 dollars every day at the farmers' market.\n"
    "#### 18"
)
GSM8K_BIG = (
    "The factory makes 1,234 units a day for 1,000 days, so it makes "
    "1234 * 1000 = <<1234*1000=1234000>>1234000 units.\n"
    "#### 1,234,000"
)
MATH_HALF = (
    "There are $\\binom{4}{2} = 6$ ways to pick two coins, and 3 of them give one head and "
    "one tail, so the probability is $\\frac{3}{6} = \\boxed{\\frac{1}{2}}$."
)
MATH_SQRT = (
    "By the Pythagorean theorem the diagonal of the unit square is "
    "$\\sqrt{1^2 + 1^2} = \\boxed{\\sqrt{2}}$."
)
MATH_POINT = (
    "Solving the two equations together, $x = 1$ and then $y = 2x = 2$, so the lines meet at "
    "$\\boxed{(1,2)}$."
)
MATH_INTERVAL = (
    "The expression under the root must be non-negative: $x^2 - 1 \\ge 0$. Hence the domain is "
    "$\\boxed{(-\\infty,-1]\\cup[1,\\infty)}$."
)
MATH_MATRIX = (
    "Multiplying row by column, $\\mathbf{A}\\mathbf{B} = "
    "\\boxed{\\begin{pmatrix} 19 & 22 \\\\ 43 & 50 \\end{pmatrix}}$."
)
MATH_LINE = (
    "The slope is $\\frac{5 - 1}{2 - 0} = 2$ and the intercept is 1, so the line is "
    "$\\boxed{y = 2x + 1}$."
)
MATH_SYMBOLIC = (
    "Expanding, $(x+1)^2 - (x-1)^2 = (x^2 + 2x + 1) - (x^2 - 2x + 1) = \\boxed{4x}$."
)
MATH_TEXT = (
    "Counting 100 days forward from a Thursday: $100 = 14 \\cdot 7 + 2$, so we move two days "
    "forward, which is $\\boxed{\\text{Saturday}}$."
)
MATH_CHOICE = (
    "Only option (C) satisfies both inequalities, since $3 \\cdot 4 = 12 > 10$. "
    "The answer is $\\boxed{\\text{(C)}}$."
)


def _cases() -> list[Case]:
    c = Case
    t, f = True, False
    cases: list[Case] = []
    add = cases.append

    # ---------------------------------------------------------------- 1. extraction
    R = "extraction"
    add(c(r"First I got \boxed{5}, but wait, actually the sum is 7, so \boxed{7}.", "7", t, R))
    add(c(r"First I got \boxed{5}, but wait, actually the sum is 7, so \boxed{7}.", "5", f, R))
    add(c(r"Wait, actually \boxed{3}", "3", t, R))
    add(c(r"The total is \fbox{12}.", "12", t, R))
    add(c(r"The total is \fbox{12}.", "21", f, R))
    add(c(r"So the probability is $\boxed{\frac{3}{4}}$.", "0.75", t, R))
    add(c(r"So the probability is $\boxed{\frac{3}{4}}$.", "0.7", f, R))
    add(c(r"\boxed{\frac{\sqrt{3}}{2}}", r"\frac{\sqrt3}{2}", t, R))
    add(c("Adding the two days: 48 + 24 = 72.\n#### 72", "72", t, R))
    add(c("Adding the two days: 48 + 24 = 72.\n#### 72", "48", f, R))
    add(c("She sold 24 clips in May and 72 clips in total.\n#### 72", GSM8K_CLIPS, t, R))
    add(c("She sold 48 clips in April and 24 clips in May.\n#### 24", GSM8K_CLIPS, f, R))
    add(c("The answer is 42.", "42", t, R))
    add(c("Answer: 3/4.", r"\frac{3}{4}", t, R))
    add(c("Final answer: -8", "-8", t, R))
    add(c("Final answer: -8", "8", f, R))
    add(c(
        "The answer is 12. Wait, let me double-check: 3 * 5 = 15, not 12.\nSo the answer is 15.",
        "15", t, R))
    add(c(
        "The answer is 12. Wait, let me double-check: 3 * 5 = 15, not 12.\nSo the answer is 15.",
        "12", f, R))
    add(c("The answer is 8.\nI hope this helps!", "8", t, R))
    add(c("Primero calculamos 3 por 4, que es 12, y luego sumamos 5. La respuesta es 17.", "17", t, R))
    add(c("Primero calculamos 3 por 4, que es 12, y luego sumamos 5. La respuesta es 17.", "12", f, R))
    add(c(r"On factorise puis on simplifie. Donc la réponse est $\frac{3}{4}$.", "0.75", t, R))
    add(c("On additionne 19 et 23. La réponse est 42.", "24", f, R))
    add(c("Wir multiplizieren 6 mit 7 und erhalten 42. Die Antwort ist 42.", "42", t, R))
    add(c("Zuerst 10 - 3 = 7, dann 7 * 2 = 14.\nAntwort: 14", "14", t, R))
    add(c("Zuerst 10 - 3 = 7, dann 7 * 2 = 14.\nAntwort: 14", "7", f, R))
    add(c("Somamos 15 e 27 e obtemos 42. Portanto, a resposta é 42.", "42", t, R))
    add(c("Temos 9 caixas com 4 livros cada.\nResposta: 36", GSM8K_EGGS, f, R))
    add(c("Ela vende 9 ovos por 2 dólares cada.\nResposta: 18", GSM8K_EGGS, t, R))
    add(c("Сначала найдём сумму: 8 + 9 = 17.\nОтвет: 17.", "17", t, R))
    add(c("Сначала найдём сумму: 8 + 9 = 17.\nОтвет: 17.", "8", f, R))
    add(c("Площадь прямоугольника 3 на 5, значит ответ равен 15", "15", t, R))
    add(c("Периметр квадрата со стороной 4 равен 16, значит ответ равен 16", "4", f, R))
    add(c("一共有 3 + 9 = 12 个球，所以答案是 12。", "12", t, R))
    add(c("小明有 5 个苹果，又买了 7 个，一共有 12 个。答案是 12", "12", t, R))
    add(c("小明有 5 个苹果，又买了 7 个，一共有 12 个。答案是 12", "5", f, R))
    add(c("三角形的内角和是 180 度，所以第三个角是 180 - 50 - 60。\n答案：70", "70", t, R))
    add(c("She has 3 apples and buys 4 more, so now she has 7 apples.", "7", t, R))
    add(c("She has 3 apples and buys 4 more, so now she has 7 apples.", "4", f, R))
    add(c(r"Dividing both sides by 4 gives the value $\frac{3}{4}$.", MATH_HALF, f, R))
    add(c(r"Three of the six pairs work, so the probability is $\frac{1}{2}$.", MATH_HALF, t, R))
    add(c(r"Hence \(x = 5\).", "5", t, R))
    add(c("3/4", r"\boxed{\frac{3}{4}}", t, R))
    add(c("2x+1", "2x+1", t, R))
    add(c("0.5", MATH_HALF, t, R))
    add(c("72", GSM8K_CLIPS, t, R))
    add(c("24", GSM8K_CLIPS, f, R))
    add(c(
        "Let's work it out step by step. Natalia sold 48 clips in April. In May she sold half as many, "
        "which is 48 / 2 = 24 clips. Altogether she sold 48 + 24 = 72 clips.\nThe answer is 72.",
        GSM8K_CLIPS, t, R))
    add(c(
        "Let's work it out step by step. Natalia sold 48 clips in April. In May she sold twice as many, "
        "which is 48 * 2 = 96 clips. Altogether she sold 48 + 96 = 144 clips.\nThe answer is 144.",
        GSM8K_CLIPS, f, R))
    add(c(
        "Janet's ducks lay 16 eggs. She uses 3 + 4 = 7 of them, leaving 9. At 2 dollars each she "
        "makes 9 * 2 = 18 dollars.\n#### 18",
        GSM8K_EGGS, t, R))
    add(c(
        "Primero, los patos ponen 16 huevos. Janet usa 7 y vende 9. Cada huevo cuesta 2 dólares, "
        "así que gana 18 dólares. La respuesta es 18.",
        GSM8K_EGGS, t, R))
    add(c(
        "Primero, los patos ponen 16 huevos. Janet usa 7 y vende 9. Cada huevo cuesta 2 dólares, "
        "así que gana 9 + 2 = 11 dólares. La respuesta es 11.",
        GSM8K_EGGS, f, R))

    # ---------------------------------------------------------------- 2. numbers
    R = "numbers"
    add(c("1,234,567", "1234567", t, R))
    add(c("1234000", GSM8K_BIG, t, R))
    add(c("1,234", GSM8K_BIG, f, R))
    add(c("12,345", "12345", t, R))
    add(c(r"1{,}250", "1250", t, R))
    add(c("1.234", "1234", f, R))
    add(c("0.5", "1/2", t, R))
    add(c("0.5", r"\frac{1}{2}", t, R))
    add(c(r"\dfrac12", "0.5", t, R))
    add(c(r"\tfrac{1}{2}", "0.5", t, R))
    add(c(r"\frac{6}{8}", r"\frac34", t, R))
    add(c("0.333", "1/3", f, R))
    add(c("0.3333333333", "1/3", t, R))
    add(c("0.142857142857", r"\frac{1}{7}", t, R))
    add(c("0.1667", r"\frac{1}{6}", f, R))
    add(c("1/3", "0.33", f, R))
    add(c("-3", "3", f, R))
    add(c("3", "-3", f, R))
    add(c("+7", "7", t, R))
    add(c(".75", "3/4", t, R))
    add(c(".5", "5", f, R))
    add(c("2.50", "2.5", t, R))
    add(c("3.0", "3", t, R))
    add(c(r"-\frac{1}{2}", r"\frac{-1}{2}", t, R))
    add(c(r"-\frac{1}{2}", r"\frac{1}{2}", f, R))
    add(c("1000", "1001", f, R))
    add(c(r"\frac{22}{7}", r"\frac{7}{22}", f, R))
    add(c(r"\boxed{\frac{3}{-2}}", "1.5", f, R))
    add(c(r"\boxed{\frac{3}{-2}}", "-1.5", t, R))
    add(c("So each friend gets 7/2 = 3.5 cookies.", "3.5", t, R))
    add(c("Each of the 4 friends gets 14/4 = 3.5 cookies.", "4", f, R))

    # ---------------------------------------------------------------- 3. percent (default "either")
    R = "percent"
    add(c(r"50\%", "50", t, R))
    add(c(r"50\%", "0.5", t, R))
    add(c("50%", r"\frac12", t, R))
    add(c("25%", "0.25", t, R))
    add(c(r"25\%", "25", t, R))
    add(c(r"25\%", "0.025", f, R))
    add(c("40", r"40\%", t, R))
    add(c("0.4", "40%", t, R))
    add(c(r"12.5\%", r"\frac18", t, R))
    add(c("100%", "1", t, R))
    add(c(r"150\%", "1.5", t, R))
    add(c(r"\boxed{75\%}", r"\frac{3}{4}", t, R))
    add(c(r"\boxed{7.5\%}", r"\frac{3}{4}", f, R))
    add(c("50%", "5", f, R))
    add(c(r"20\%", "0.02", f, R))
    add(c("0.5", "50", f, R))
    add(c("50", "0.5", f, R))
    add(c("The sale takes 20 dollars off 100, which is 20% of the price. The answer is 20%.",
          "#### 20", t, R))
    add(c("El descuento es de 30 sobre 200, es decir, la respuesta es 15%.", "0.15", t, R))
    add(c("El descuento es de 30 sobre 200, es decir, la respuesta es 15%.", "0.015", f, R))

    # ---------------------------------------------------------------- 4. mixed numbers
    R = "mixed"
    add(c(r"3\frac{1}{2}", "7/2", t, R))
    add(c(r"The answer is $2\frac34$.", "2.75", t, R))  # a one-digit argument needs no braces
    add(c(r"The answer is $2\frac34$.", "1.5", f, R))
    add(c("3 1/2", "7/2", t, R))
    add(c("3 1/2", r"3\frac{1}{2}", t, R))
    add(c("3 1/2", "3.5", t, R))
    add(c(r"2\frac{3}{4}", "2.75", t, R))
    add(c(r"5\frac{2}{3}", r"\frac{17}{3}", t, R))
    add(c(r"3\frac{1}{2}", r"\frac{31}{2}", f, R))
    add(c("3 1/2", "3/2", f, R))
    add(c(r"3\frac{1}{2}", "1.5", f, R))
    add(c(r"2\frac{3}{4}", r"\frac{3}{2}", f, R))
    add(c(r"-2\frac{1}{3}", r"-\frac{7}{3}", t, R))
    add(c(r"-2\frac{1}{3}", r"-\frac{5}{3}", f, R))
    add(c("Half of 7 cups is 3.5 cups, so the answer is 3 1/2 cups.", "7/2", t, R))
    add(c(r"2\frac{x}{3}", r"\frac{2x}{3}", t, R))
    add(c("Cada persona recibe 7/2 tazas. La respuesta es 3 1/2.", "3.5", t, R))
    add(c("Cada persona recibe 7/2 tazas. La respuesta es 3 1/2.", "1.5", f, R))

    # ---------------------------------------------------------------- 5. radicals, pi, e
    R = "radicals"
    add(c(r"\sqrt{2}/2", r"\frac{1}{\sqrt{2}}", t, R))
    add(c(r"\frac{\sqrt2}{2}", r"\frac{1}{\sqrt{2}}", t, R))
    add(c(r"2\sqrt{3}", r"\sqrt{12}", t, R))
    add(c(r"\sqrt{8}", r"2\sqrt{2}", t, R))
    add(c(r"\sqrt[3]{8}", "2", t, R))
    add(c(r"\sqrt[3]{9}", "3", f, R))
    add(c(r"2\pi", "6.283185307179586", t, R))
    add(c("3.14", r"\pi", f, R))
    add(c(r"\frac{\pi}{2}", r"\pi/2", t, R))
    add(c(r"\frac{\pi}{3}", r"\frac{\pi}{6}", f, R))
    add(c("e^2", r"\exp(2)", t, R))
    add(c("2.718", "e", f, R))
    add(c("2.7182818", "e", t, R))
    add(c("1.41", r"\sqrt{2}", f, R))
    add(c("1.4142136", r"\sqrt{2}", t, R))
    add(c(r"\sqrt{2}+\sqrt{3}", r"\sqrt{5}", f, R))
    add(c(r"\frac{\sqrt{3}}{2}", r"\frac{\sqrt{2}}{2}", f, R))
    add(c(r"\sqrt{3}", "3", f, R))
    add(c(r"\frac{2}{\sqrt{3}}", r"\frac{2\sqrt{3}}{3}", t, R))
    add(c(r"3\sqrt{2}", r"\sqrt{6}", f, R))
    add(c(r"So the diagonal is \boxed{\sqrt 2}.", MATH_SQRT, t, R))
    add(c(r"So the diagonal is \boxed{2}.", MATH_SQRT, f, R))
    add(c(r"La diagonal mide $\sqrt{1+1}$, así que la respuesta es $\sqrt{2}$.", MATH_SQRT, t, R))
    add(c(r"4\pi", "12.566370614359172", t, R))

    # ---------------------------------------------------------------- 6. scientific notation
    R = "scientific"
    add(c(r"1.5 \times 10^{3}", "1500", t, R))
    add(c("1.5e3", "1500", t, R))
    add(c(r"1.5 \cdot 10^3", r"1.5 \times 10^{3}", t, R))
    add(c(r"3 \times 10^{-2}", "0.03", t, R))
    add(c(r"6.02 \times 10^{23}", "6.02e23", t, R))
    add(c("1e-3", "0.001", t, R))
    add(c(r"10^{6}", "1,000,000", t, R))
    add(c(r"2.5 \times 10^{4}", "2500", f, R))
    add(c(r"1.5 \times 10^{3}", r"1.5 \times 10^{4}", f, R))
    add(c("1.5e3", "15000", f, R))
    add(c(r"3 \times 10^{-2}", "0.3", f, R))
    add(c(r"\boxed{1.2 \times 10^{-3}}", "0.0012", t, R))
    add(c(r"\boxed{1.2 \times 10^{-3}}", "0.012", f, R))
    add(c(r"6.02 \times 10^{23}", r"6.02 \times 10^{-23}", f, R))
    add(c(r"The light travels $3 \times 10^{8}$ m/s for 2 s, so the distance is \boxed{6 \times 10^{8}}.",
          "600000000", t, R))
    add(c(r"La distance vaut $1.5 \times 10^{3}$ mètres. La réponse est $1.5 \times 10^{3}$.", "1500", t, R))
    add(c(r"La distance vaut $1.5 \times 10^{3}$ mètres. La réponse est $1.5 \times 10^{3}$.", "150", f, R))

    # ---------------------------------------------------------------- 7. units and currency
    R = "units"
    add(c("5 cm", "5", t, R))
    add(c("5 cm", "6", f, R))
    add(c(r"\$5", "5", t, R))
    add(c("$5.00", "5", t, R))
    add(c(r"\$5", "50", f, R))
    add(c(r"5^\circ", "5", t, R))
    add(c("5°", r"5^\circ", t, R))
    add(c(r"30^{\circ}", "30", t, R))
    add(c(r"5^\circ", "50", f, R))
    add(c(r"5\text{ cm}", "5", t, R))
    add(c("18 dollars", "18", t, R))
    add(c("18 dollars", "81", f, R))
    add(c(r"45\mbox{ meters}", "45", t, R))
    add(c(r"\$1,250", "1250", t, R))
    add(c(r"\$4.50", "4.05", f, R))
    add(c(r"12 \text{ inches}", "12", t, R))
    add(c(r"9\text{ cm}^2", "9", t, R))
    add(c(r"12\text{ m/s}", "12", t, R))
    add(c(r"12\text{ m/s}", "21", f, R))
    add(c("She makes 9 * 2 = 18 dollars a day, so the answer is $18.", GSM8K_EGGS, t, R))
    add(c("She makes 9 * 3 = 27 dollars a day, so the answer is $27.", GSM8K_EGGS, f, R))
    add(c("Cada entrada cuesta 5 euros. La respuesta es 5 euros.", "5", t, R))

    # ---------------------------------------------------------------- 8. text answers
    R = "text"
    add(c(r"\text{Monday}", "monday", t, R))
    add(c(r"\textbf{Tuesday}", r"\text{Tuesday}", t, R))
    add(c("Monday.", r"\text{Monday}", t, R))
    add(c(r"\text{ Paris }", "Paris", t, R))
    add(c(r"\text{yes}", "Yes", t, R))
    add(c(r"\text{NO}", r"\text{no}", t, R))
    add(c("New York", r"\text{new york}", t, R))
    add(c("Friday is 5 days after Sunday, so the answer is Friday.", r"\text{Friday}", t, R))
    add(c("Die Antwort ist Berlin.", r"\text{Berlin}", t, R))
    add(c(r"Moving two days on from Thursday gives \boxed{\text{Saturday}}.", MATH_TEXT, t, R))
    add(c(r"\text{Evelyn}", r"\text{Emily}", f, R))
    add(c(r"\text{Mondays}", r"\text{Monday}", f, R))
    add(c(r"\text{odd}", r"\text{even}", f, R))
    add(c(r"\text{yes}", r"\text{no}", f, R))
    add(c("Friday is 5 days after Sunday, so the answer is Friday.", r"\text{Thursday}", f, R))
    add(c(r"\text{Bobby}", r"\text{Bob}", f, R))
    add(c(r"Moving one day on from Thursday gives \boxed{\text{Friday}}.", MATH_TEXT, f, R))

    # ---------------------------------------------------------------- 9. multiple choice
    R = "choice"
    add(c("(B)", "B", t, R))
    add(c("B", "(B)", t, R))
    add(c(r"\textbf{(B)}", "B", t, R))
    add(c("The answer is (B).", "B", t, R))
    add(c("B) 12", "B", t, R))
    add(c("b", "B", t, R))
    add(c("C", r"\text{(C)}", t, R))
    add(c(r"\boxed{C}", "C", t, R))
    add(c("e", "E", t, R))
    add(c("C", "B", f, R))
    add(c("The answer is (C).", "(B)", f, R))
    add(c("B) 12", "C", f, R))
    add(c("(A)", "D", f, R))
    add(c(r"\textbf{(D)}", r"\text{(C)}", f, R))
    add(c("Option (A) gives 10, which is too small; (D) gives 14. Après vérification, la réponse est (D).",
          "D", t, R))
    add(c("La respuesta es (D).", "(A)", f, R))
    add(c("Проверим каждый вариант: только вариант A подходит.\nОтвет: A", "(A)", t, R))
    add(c("逐个检验选项，只有 C 满足条件。答案是 C", "C", t, R))
    add(c("逐个检验选项，只有 C 满足条件。答案是 C", "B", f, R))
    add(c(r"Checking each option, only (C) works: \boxed{\text{(C)}}", MATH_CHOICE, t, R))
    add(c(r"Checking each option, only (B) works: \boxed{\text{(B)}}", MATH_CHOICE, f, R))
    add(c("A. Because the other options are all odd.", "A", t, R))
    add(c("A. Because the other options are all odd.", "B", f, R))
    add(c("Option (B) overcounts the pairs, so it has to be (D).", "D", t, R))
    add(c("Option (B) overcounts the pairs, so it has to be (D).", "B", f, R))

    # ---------------------------------------------------------------- 10. sets, tuples, lists
    R = "sets"
    add(c(r"\{1,2,3\}", r"\{3,1,2\}", t, R))
    add(c(r"\{-2, 2\}", r"\{2, -2\}", t, R))
    add(c("1, 2, 3", "3, 2, 1", t, R))
    add(c("-2, 2", "2, -2", t, R))
    add(c("(1, 2)", "(1,2)", t, R))
    add(c(r"(\frac12, 3)", "(0.5, 3)", t, R))
    add(c(r"\left(1, 2\right)", "(1,2)", t, R))
    add(c("(1,2)", MATH_POINT, t, R))
    add(c(r"Setting each factor to zero gives the roots \boxed{2, 3}.", "3, 2", t, R))
    add(c("(1,2)", "(2,1)", f, R))
    add(c(r"\{1,2\}", r"\{1,2,3\}", f, R))
    add(c(r"\{1,2,3\}", r"\{1,2\}", f, R))
    add(c("(1,2)", "[1,2]", f, R))
    add(c("1, 2, 3", "1, 2, 4", f, R))
    add(c("(1, 2)", "(1, 2, 0)", f, R))
    add(c("(3, -4)", "(-3, 4)", f, R))
    add(c("(2,1)", MATH_POINT, f, R))
    add(c(r"Les droites se coupent au point $(2, 1)$. La réponse est $(2, 1)$.", MATH_POINT, f, R))

    # ---------------------------------------------------------------- 11. intervals
    R = "intervals"
    add(c("[1, 3)", "[1,3)", t, R))
    add(c(r"(-\infty, 2]", r"(-\infty,2]", t, R))
    add(c(r"(-\infty,0)\cup(1,\infty)", r"(1,\infty)\cup(-\infty,0)", t, R))
    add(c(r"\left[1, 3\right)", "[1,3)", t, R))
    add(c(r"[0, \frac{1}{2}]", "[0, 0.5]", t, R))
    add(c(r"\left( -2, 5 \right]", "(-2,5]", t, R))
    add(c(r"(-\infty, -1] \cup [1, \infty)", MATH_INTERVAL, t, R))
    add(c(r"The root needs $x - 2 \ge 0$, so the domain is \boxed{[2, \infty)}.", r"[2,\infty)", t, R))
    add(c(r"Resolviendo obtenemos $x \ge 2$, así que la respuesta es $[2, \infty)$.", r"[2,\infty)", t, R))
    add(c(r"Resolviendo obtenemos $x > 2$, así que la respuesta es $(2, \infty)$.", r"[2,\infty)", f, R))
    add(c("[1,3]", "(1,3)", f, R))
    add(c(r"(-\infty, 2)", r"(-\infty, 2]", f, R))
    add(c("[1,3)", "(1,3]", f, R))
    add(c(r"(-\infty,0)\cup(1,\infty)", r"(-\infty,0]\cup[1,\infty)", f, R))
    add(c(r"(0, \infty)", r"[0, \infty)", f, R))
    add(c("[2, 5]", "[2, 6]", f, R))
    add(c(r"(-\infty, -1) \cup (1, \infty)", MATH_INTERVAL, f, R))
    add(c(r"(-\infty,0)\cup(1,\infty)", r"(-\infty,1)", f, R))

    # ---------------------------------------------------------------- 12. matrices
    R = "matrices"
    add(c(r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", r"\begin{bmatrix}1&2\\3&4\end{bmatrix}", t, R))
    add(c(r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}", r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", t, R))
    add(c(r"\begin{pmatrix}\frac12&0\\0&1\end{pmatrix}", r"\begin{pmatrix}0.5&0\\0&1\end{pmatrix}", t, R))
    add(c(r"\begin{pmatrix} 2 \\ -1 \end{pmatrix}", r"\begin{bmatrix}2\\-1\end{bmatrix}", t, R))
    add(c(
        r"\begin{pmatrix}\sqrt{2}/2 & -\sqrt{2}/2 \\ \sqrt{2}/2 & \sqrt{2}/2\end{pmatrix}",
        r"\begin{pmatrix}\frac{1}{\sqrt2} & -\frac{1}{\sqrt2} \\ \frac{1}{\sqrt2} & \frac{1}{\sqrt2}\end{pmatrix}",
        t, R))
    add(c(r"Row times column gives $\boxed{\begin{bmatrix} 19 & 22 \\ 43 & 50 \end{bmatrix}}$.", MATH_MATRIX, t, R))
    add(c("Перемножим матрицы, строка на столбец.\n"
          r"Ответ: $\begin{pmatrix} 19 & 22 \\ 43 & 50 \end{pmatrix}$", MATH_MATRIX, t, R))
    add(c(r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", r"\begin{pmatrix}1&2\\3&5\end{pmatrix}", f, R))
    add(c(r"\begin{pmatrix}1&3\\2&4\end{pmatrix}", r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", f, R))
    add(c(r"\begin{pmatrix} 1 \\ 2 \end{pmatrix}", r"\begin{pmatrix} 1 & 2 \end{pmatrix}", f, R))
    add(c(r"\begin{pmatrix}1&2&0\\3&4&0\end{pmatrix}", r"\begin{pmatrix}1&2\\3&4\end{pmatrix}", f, R))
    add(c(r"\begin{pmatrix} 2 \\ 1 \end{pmatrix}", r"\begin{pmatrix} 2 \\ -1 \end{pmatrix}", f, R))
    add(c(r"\begin{pmatrix} -1 \\ 4 \end{pmatrix}", r"\begin{pmatrix} 4 \\ -1 \end{pmatrix}", f, R))
    add(c(r"Row times column gives $\boxed{\begin{pmatrix} 19 & 22 \\ 43 & 48 \end{pmatrix}}$.", MATH_MATRIX, f, R))

    # ---------------------------------------------------------------- 13. equations
    R = "equations"
    add(c("x = 3", "3", t, R))
    add(c("x=3", r"Subtracting 2 and dividing by 3 gives $x = \boxed{3}$.", t, R))
    add(c("k = \\frac{3}{4}", "0.75", t, R))
    add(c("y = 2x+1", "2x+1", t, R))
    add(c("2x+1-y = 0", "y = 2x+1", t, R))
    add(c("2y = 4x + 2", "y = 2x+1", t, R))
    add(c("-y = -2x - 1", MATH_LINE, t, R))
    add(c("x + y = 5", "y = 5 - x", t, R))
    add(c("3x - 6y = 9", "x - 2y = 3", t, R))
    add(c(r"y = -\frac{1}{2}x + 3", "x + 2y = 6", t, R))
    add(c("Despejando, obtenemos $x = 4$. La respuesta es $x = 4$.", "4", t, R))
    add(c("y = 2x-1", "y = 2x+1", f, R))
    add(c("y = 2x - 1", MATH_LINE, f, R))
    add(c("x = 4", "3", f, R))
    add(c("x = 3", "x = -3", f, R))
    add(c("x + y = 5", "x - y = 5", f, R))
    add(c("x^2 + y^2 = 5", "x^2 + y^2 = 25", f, R))
    add(c("y = 3x", "x = 3y", f, R))
    add(c("2y = 4x + 1", "y = 2x + 1", f, R))
    add(c("y = 2(x + 1)", "y = 2x + 1", f, R))
    add(c(r"\boxed{y=-2x+3}", "2x + y = 3", t, R))
    add(c(r"\boxed{y=-2x+3}", "2x - y = 3", f, R))

    # ---------------------------------------------------------------- 14. inequalities
    R = "inequalities"
    add(c("x > 3", "3 < x", t, R))
    add(c(r"x \ge 3", r"x \geq 3", t, R))
    add(c(r"x \geq 3", r"3 \leq x", t, R))
    add(c("x > 3", r"(3, \infty)", t, R))
    add(c(r"x \geq 3", r"[3, \infty)", t, R))
    add(c(r"x \le -2", r"(-\infty, -2]", t, R))
    add(c("-1 < x < 2", "(-1, 2)", t, R))
    add(c("x ≥ 3", r"x \geq 3", t, R))
    add(c(r"Subtracting 4 from both sides gives $2x > 6$, so $\boxed{x > 3}$.", r"(3,\infty)", t, R))
    add(c(r"x \geq 3", "x > 3", f, R))
    add(c("x > 3", "x < 3", f, R))
    add(c("x > 3", r"[3, \infty)", f, R))
    add(c("x < 5", r"(-\infty, 5]", f, R))
    add(c("x > -3", "x > 3", f, R))
    add(c(r"x \le 2", r"x \ge 2", f, R))
    add(c("x > 3", "3", f, R))
    add(c(r"3 \le x < 5", "[3, 5)", t, R))
    add(c(r"3 < x \le 5", "[3, 5)", f, R))
    add(c("Dividindo por 2, obtemos x > 3. A resposta é x > 3.", r"(3,\infty)", t, R))
    add(c(r"En divisant par 2 on obtient $x \geq 3$. La réponse est $x \geq 3$.", "x > 3", f, R))
    add(c(r"Subtracting 4 from both sides gives $2x \geq 6$, so $\boxed{x \geq 3}$.", r"(3,\infty)", f, R))

    # ---------------------------------------------------------------- 15. symbolic expressions
    R = "symbolic"
    add(c("2x+2", "2(x+1)", t, R))
    add(c("x^2-1", "(x-1)(x+1)", t, R))
    add(c(r"\frac{x}{2}", r"\frac12 x", t, R))
    add(c(r"\sin^2 x + \cos^2 x", "1", t, R))
    add(c("(x+1)^2", "x^2+2x+1", t, R))
    add(c(r"\frac{x^2-1}{x-1}", "x+1", t, R))
    add(c(r"2\sin x\cos x", r"\sin(2x)", t, R))
    add(c(r"1 - 2\sin^2 x", r"\cos(2x)", t, R))
    add(c(r"\frac{1}{x} + \frac{1}{y}", r"\frac{x+y}{xy}", t, R))
    add(c("x(x+1)", "x^2 + x", t, R))
    add(c(r"\frac{n(n+1)}{2}", r"\frac{n^2+n}{2}", t, R))
    add(c("4x", MATH_SYMBOLIC, t, R))
    add(c(r"Die Differenz der Quadrate ist $(x+1)^2-(x-1)^2$. Die Antwort ist $2 \cdot 2x$.", MATH_SYMBOLIC, t, R))
    add(c(r"\frac{a+b}{2}", r"a + \frac{b}{2}", f, R))
    add(c("x^2", "2x", f, R))
    add(c("2y", "2x", f, R))
    add(c("x^3", "x^2", f, R))
    add(c("(a+b)^2", "a^2+b^2", f, R))
    add(c("a^2 - b^2", "(a-b)^2", f, R))
    add(c(r"\sin(2x)", r"2\sin x", f, R))
    add(c(r"\frac{x}{2}", "2x", f, R))
    add(c("|x-1|", "x-1", f, R))
    add(c(r"\frac{a}{b}", r"\frac{b}{a}", f, R))
    add(c("4x^2", MATH_SYMBOLIC, f, R))
    add(c("2x", MATH_SYMBOLIC, f, R))

    # ---------------------------------------------------------------- 16. no answer, unreadable gold
    R = "no_answer"
    add(c("I don't know.", "5", f, R))
    add(c("", "5", f, R))
    add(c("Let me think step by step.", "12", f, R))
    add(c("I cannot solve this without more information about the triangle.", GSM8K_CLIPS, f, R))
    add(c(r"\boxed{}", "5", f, R))
    add(c("No sé cómo resolver este problema.", "12", f, R))
    add(c("I'm not completely sure, but I believe it is 5.", "5", t, R))
    add(c(r"Hmm, hard to say. My best guess: \boxed{5}", "5", t, R))
    add(c("5", "", f, R, ERROR_ONLY))
    add(c("5", "   \n", f, R, ERROR_ONLY))
    add(c(r"\boxed{5}", r"\boxed{}", f, R, ERROR_ONLY))

    # ---------------------------------------------------------------- 17. hostile text, never run
    R = "hostile"
    touch = f"touch {SIDE_EFFECT_FILE}"
    # os.system returns 0 on success: an evaluated prediction would "equal" the gold 0.
    add(c(f"__import__('os').system('{touch}')", "0", f, R, OK_OR_ERROR))
    add(c(f"\\boxed{{__import__('os').system('{touch}')}}", "0", f, R, OK_OR_ERROR))
    add(c(f'The answer is __import__("os").system("{touch}")', "0", f, R, OK_OR_ERROR))
    add(c(f"exec(\"import os; os.system('{touch}')\")", "0", f, R, OK_OR_ERROR))
    add(c(f"\\boxed{{\\text{{__import__('os').system('{touch}')}}}}", "0", f, R, OK_OR_ERROR))
    # chr(52) is "4" when evaluated; read as text it holds no 4 at all.
    add(c('eval("chr(52)")', "4", f, R, OK_OR_ERROR))
    add(c("().__class__.__base__.__subclasses__()", "0", f, R, OK_OR_ERROR))
    add(c("(lambda: __import__('os').getpid())()", "0", f, R, OK_OR_ERROR))
    add(c("open('/etc/hostname').read()", "0", f, R, OK_OR_ERROR))
    add(c(r"I could run `eval('6*7')`, but by hand $6 \times 7 = 42$, so \boxed{42}.", "42", t, R))
    add(c(f"Never run `__import__('os').system('{touch}')` on input; the answer is \\boxed{{0}}.",
          "0", t, R))
    return cases


def _cases_of_model_text() -> list[Case]:
    """Classes seen in real model output and in graders' datasets (written here by hand)."""
    c = Case
    t, f = True, False
    cases: list[Case] = []
    add = cases.append

    # ---------------------------------------------------------------- 18. currency dollars
    R = "currency"
    add(c("Tom pays $15 + $25 = $40 for the tickets.\nA: 40", "40", t, R))
    add(c("Tom pays $15 + $25 = $40 for the tickets.\nA: 40", "25", f, R))
    add(c("The shirt costs $8 and the hat costs $7, so together they cost $15.", "15", t, R))
    add(c("The shirt costs $8 and the hat costs $7, so together they cost $15.", "7", f, R))
    add(c("He earns $9 an hour for 6 hours, which is $54.", "#### 54", t, R))
    add(c("He earns $9 an hour for 6 hours, which is $54.", "#### 9", f, R))
    add(c("She had $100 and spent $37, so she has $63 left.", "63", t, R))
    add(c("She had $100 and spent $37, so she has $63 left.", "37", f, R))
    add(c("Each book is $4.50, so 4 books cost 4 x $4.50 = $18.", "18", t, R))
    add(c("Each book is $4.50, so 4 books cost 4 x $4.50 = $18.", "4.5", f, R))
    add(c("The answer is $1,250.", "1250", t, R))
    add(c("The answer is $1,250.", "125", f, R))
    add(c("Total: $2,400 per month", "2400", t, R))
    add(c("In total she saves $5 * 12 = $60.\nThe answer is $60.", "60", t, R))
    add(c("In total she saves $5 * 12 = $60.\nThe answer is $60.", "12", f, R))
    add(c(r"The price with tax is $\$21.40$.", "21.4", t, R))
    add(c(r"The price with tax is $\$21.40$.", "21.04", f, R))
    add(c("Ticket: $12. Popcorn: $6. Drink: $4. So he spends $12 + $6 + $4 = $22 in all.", "22", t, R))
    add(c("Ticket: $12. Popcorn: $6. Drink: $4. So he spends $12 + $6 + $4 = $22 in all.", "4", f, R))
    add(c("We have $x = 5$ apples costing $2 each, so they cost $10.", "10", t, R))
    add(c("We have $x = 5$ apples costing $2 each, so they cost $10.", "5", f, R))
    add(c("Half of $48 is $24.", "24", t, R))
    add(c("It costs $ 30 in total.", "30", t, R))
    add(c("Il paie 12 $ + 30 $ = 42 $ au total.\nRéponse : 42 $", "42", t, R))
    add(c("Il paie 12 $ + 30 $ = 42 $ au total.\nRéponse : 42 $", "30", f, R))
    add(c("The answer is $-15$ dollars.", "-15", t, R))

    # ---------------------------------------------------------------- 19. final-answer lines
    R = "final_line"
    add(c("3 bags of 8 is 24.\nFinal Answer: The final answer is $24$. I hope it is correct.", "24", t, R))
    add(c("3 bags of 8 is 24.\nFinal Answer: The final answer is $24$. I hope it is correct.", "8", f, R))
    add(c("Final Answer: The final answer is $\\frac{5}{6}$. I hope it is correct.", r"\frac56", t, R))
    add(c("Final Answer: The largest $k$ is 17.", "17", t, R))
    add(c("Final Answer: The largest $k$ is 17.", "16", f, R))
    add(c("Final Answer: Lily has 9 marbles left.", "9", t, R))
    add(c("**Answer:** 36", "36", t, R))
    add(c("**Answer:** 36", "63", f, R))
    add(c("**Final answer:** $\\frac{1}{4}$", "0.25", t, R))
    add(c("So she walks 3 + 4 = 7 km.\n\n**7**", "7", t, R))
    add(c("So she walks 3 + 4 = 7 km.\n\n**7**", "3", f, R))
    add(c("So in total there are **56 students**.", "56", t, R))
    add(c("First add the rows.\n**Step 3:** 12 + 9 = 21", "21", t, R))
    add(c("First add the rows.\n**Step 3:** 12 + 9 = 21", "3", f, R))
    add(c("The answer is: 88", "88", t, R))
    add(c("The answer is:\n\n$$88$$", "88", t, R))
    add(c("The answer is:\n\n$$88$$", "8", f, R))
    add(c("The answer is 14, because 2 * 7 = 14.", "14", t, R))
    add(c("The answer is 14, because 2 * 7 = 14.", "7", f, R))
    add(c("The answer is 12. This makes sense since 12 is less than 20.", "12", t, R))
    add(c("The answer is 12. This makes sense since 12 is less than 20.", "20", f, R))
    add(c("So the answer is 18.\n\nThis is not the final answer to the puzzle.\nThe final answer is not 2.", "18", t, R))
    add(c("So the answer is 18.\n\nThis is not the final answer to the puzzle.\nThe final answer is not 2.", "2", f, R))
    add(c("The probability is $\\frac{5}{9} \\approx 0.56$.", r"\frac59", t, R))
    add(c("The probability is $\\frac{5}{9} \\approx 0.56$.", "0.56", f, R))
    add(c("So the ratio is 2/3, or about 0.67.", r"\frac23", t, R))
    add(c("Answer: 25 (rounded to the nearest whole number)", "25", t, R))
    add(c("Ans: 61", "61", t, R))
    add(c("A: 19\n", "19", t, R))
    add(c("Q: How many?\nA: 19", "91", f, R))
    add(c("答案：45", "45", t, R))
    add(c("答案：45", "54", f, R))
    add(c("答案：１２", "12", t, R))
    add(c("所以一共是１２个。", "21", f, R))
    add(c("The answer is 120 minutes (2 hours).", "120", t, R))
    add(c("The answer is 120 minutes (2 hours).", "2", f, R))
    add(c("Here's the final answer: 10 x 6 = 60, and I hope it meets your requirements.", "60", t, R))
    add(c("Here's the final answer: 10 x 6 = 60, and I hope it meets your requirements.", "10", f, R))
    add(c("So, the final answer is 64 groups of 8 students.", "64", t, R))
    add(c("So, the final answer is 64 groups of 8 students.", "8", f, R))
    add(c("The answer is 4 cups of flour.", "4", t, R))
    add(c("答：小明一共走了 12 公里。", "12", t, R))
    add(c("所以最终答案是 3/5。", "0.6", t, R))
    add(c("Réponse : 7", "7", t, R))
    add(c("Réponse finale : 70", "7", f, R))
    add(c("La respuesta correcta es 250.", "250", t, R))
    add(c("Die richtige Antwort lautet 81.", "81", t, R))
    add(c("Ответ: 33 яблока.", "33", t, R))
    add(c("Ответ: 33 яблока.", "3", f, R))
    add(c("答えは 15 です。", "15", t, R))
    add(c("정답은 64", "64", t, R))
    add(c("A resposta correta é 9.", "9", t, R))
    add(c("La risposta è 28.", "28", t, R))
    add(c("The answer is 40.\n\nQ: A train travels 60 miles per hour for 3 hours. How far?\nA: 180", "40", t, R))
    add(c("The answer is 40.\n\nQ: A train travels 60 miles per hour for 3 hours. How far?\nA: 180", "180", f, R))
    add(c("Let me restate it.\nProblem: Ann has 16 eggs and eats 3.\nSolution: 16 - 3 = 13. The answer is 13.", "13", t, R))
    add(c("She has 5 apples left.\n\nQ: Tom has 3 pens and buys 4. How many?\nA: 7", "5", t, R))
    add(c("She has 5 apples left.\n\nQ: Tom has 3 pens and buys 4. How many?\nA: 7", "7", f, R))
    add(c("The answer is 11.<|im_end|>\n<|im_start|>user\nThe answer is 13.", "11", t, R))
    add(c("The answer is 11.<|im_end|>\n<|im_start|>user\nThe answer is 13.", "13", f, R))
    add(c("The final answer is 2.5. I hope this helps!", "2.5", t, R))
    add(c("Answer: First, 4 boxes hold 6 cans each, so there are 24 cans. Then 5 are used, leaving 19.", "19", t, R))
    add(c("Answer: First, 4 boxes hold 6 cans each, so there are 24 cans. Then 5 are used, leaving 19.", "6", f, R))
    add(c('{"reasoning": "3 boxes of 4 pens", "answer": 12}', "12", t, R))
    add(c('{"reasoning": "3 boxes of 4 pens", "answer": 12}', "4", f, R))
    add(c('{"answer": "$18", "reasoning": "9 eggs at $2 each"}', "18", t, R))
    add(c('{"final_answer": 7, "steps": 3}', "3", f, R))

    # ---------------------------------------------------------------- 20. several boxes
    R = "boxes"
    add(c(r"The roots are $\boxed{-3}$ and $\boxed{4}$.", "-3, 4", t, R))
    add(c(r"The roots are $\boxed{-3}$ and $\boxed{4}$.", "4", f, R))
    add(c(r"\boxed{7}, \boxed{-7}", r"\pm 7", t, R))
    add(c(r"\boxed{(2,3)}, \boxed{(3,2)}", r"\{(2,3), (3,2)\}", t, R))
    add(c(r"\boxed{(2,3)}, \boxed{(3,2)}", r"\{(2,3), (3,1)\}", f, R))
    add(c(r"$\boxed{1}$ \quad \text{or} \quad $\boxed{6}$", "1, 6", t, R))
    add(c(r"First I wrote \boxed{10}. That double counts, so the total is \boxed{8}.", "8", t, R))
    add(c(r"First I wrote \boxed{10}. That double counts, so the total is \boxed{8}.", "10, 8", f, R))
    add(c(r"\boxed{5}", r"\boxed{2} \text{ and } \boxed{5}", f, R))
    add(c(r"\boxed{2, 5}", r"\boxed{2} \text{ and } \boxed{5}", t, R))
    add(c(r"\boxed{2} \text{ and } \boxed{5}", "5, 2", t, R))
    add(c(r"$\boxed{4}$ cats and $\boxed{3}$ dogs", "4, 3", f, R))
    add(c(r"\boxed{3, 9}", r"There are \boxed{3} red and \boxed{9} blue marbles.", t, R))
    add(c(r"\boxed{9}", r"There are \boxed{3} red and \boxed{9} blue marbles.", f, R))
    add(c(r"The side is \boxed{6}. Checking: the area is 36, so again the side is \boxed{6}.", "6", t, R))
    add(c(r"x = \boxed{2}, y = \boxed{-1}", "(2, -1)", t, R))
    add(c(r"\boxed{0} \text{ or } \boxed{1}", r"\{0, 1\}", t, R))
    add(c(r"\boxed{0} \text{ or } \boxed{1}", r"\{0, 1, 2\}", f, R))
    add(c(r"\boxed{\boxed{12}}", "12", t, R))
    add(c(r"\boxed{12} is wrong; recomputing gives \boxed{21}", "21", t, R))
    add(c(r"\boxed{12} is wrong; recomputing gives \boxed{21}", "12", f, R))

    # ---------------------------------------------------------------- 21. how numbers are printed
    R = "formatting"
    add(c(r"\boxed{24{,}680}", "24680", t, R))
    add(c(r"\boxed{24{,}680}", "2468", f, R))
    add(c(r"The total is $56,\!789$.", "56789", t, R))
    add(c(r"The total is $56,\!789$.", "56.789", f, R))
    add(c(r"The answer is $7\,654.25$.", "7654.25", t, R))
    add(c(r"The answer is $7\,654.25$.", "7.65425", f, R))
    add(c("The answer is 2 750.", "2750", t, R))
    add(c("The answer is 2 750.", "750", f, R))
    add(c(r"$12\,345\,678$", "12345678", t, R))
    add(c("1 234 567", "1234567", t, R))
    add(c("1 000 000", "1000000", t, R))
    add(c(r"\boxed{3{,}000{,}000}", r"3 \times 10^6", t, R))
    add(c("La respuesta es 2,5.", "2.5", t, R))
    add(c("La respuesta es 2,5.", "25", f, R))
    add(c("Die Antwort ist 0,75.", r"\frac34", t, R))
    add(c("1,250", "1.25", f, R))
    add(c("1,5", "1.5", t, R))
    add(c("Die Antwort ist 1.234.567 Euro.", "1234567", t, R))
    add(c("Die Antwort ist 1.234.567 Euro.", "1.234567", f, R))
    add(c("The answer is eighteen.", "18", t, R))
    add(c("The answer is eighteen.", "80", f, R))
    add(c("one hundred and five", "105", t, R))
    add(c("twenty-five", "52", f, R))
    add(c(r"\boxed{1,2}", "1.2", t, R))
    add(c(r"\boxed{1,2}", "1, 2", t, R))
    add(c("3.50", "3.5", t, R))
    add(c("007", "7", t, R))
    add(c("7.0000", "7", t, R))
    add(c(r"\frac1{9}", r"\dfrac{1}{9}", t, R))
    add(c(r"\tfrac{2}9", r"\frac{2}{9}", t, R))
    add(c(r"\dfrac{2}{9}", r"\frac{9}{2}", f, R))
    add(c(r"\frac{-3}{4}", "-0.75", t, R))

    # ---------------------------------------------------------------- 22. golds that name what they give
    R = "named"
    add(c("(4, 2)", "(m, n) = (4, 2)", t, R))
    add(c("(2, 4)", "(m, n) = (4, 2)", f, R))
    add(c(r"\boxed{(4, 2)}", r"$(m,n)=(4,2)$", t, R))
    add(c("11", "h(2) = 11", t, R))
    add(c("12", "h(2) = 11", f, R))
    add(c("h(2) = 11", "11", t, R))
    add(c("9, 4", "AB = 9, CD = 4", t, R))
    add(c("9, 5", "AB = 9, CD = 4", f, R))
    add(c("5:7", "V_1 : V_2 = 5 : 7", t, R))
    add(c("7:5", "V_1 : V_2 = 5 : 7", f, R))
    add(c(r"\frac{2}{\sqrt{5}}", r"\frac{AM}{MB} = \frac{2}{\sqrt5}", t, R))
    add(c("6", "|PQ| = 6", t, R))
    add(c("6", "|PQ| = 7", f, R))
    add(c("(3, 1)", "x = 3, y = 1", t, R))
    add(c("(1, 3)", "x = 3, y = 1", f, R))
    add(c("x = 3, y = 1", "(3, 1)", t, R))
    add(c("y = 1, x = 3", "x = 3, y = 1", t, R))
    add(c("(2, 1), (5, 1)", "a = 2, b = 1; a = 5, b = 1", t, R))
    add(c("(2, 1), (5, 2)", "a = 2, b = 1; a = 5, b = 1", f, R))
    add(c("(1, 0, 2)", "(a, b, c) = (1, 0, 2)", t, R))
    add(c("20", "k = 20", t, R))
    add(c("k = 4 + 16 = 20", "20", t, R))
    add(c("k = 4 + 16 = 20", "16", f, R))
    add(c("6 + 8 = 14", "14", t, R))
    add(c("6 + 8 = 14", "8", f, R))
    add(c("2x + 3 = 11", "11", f, R))
    add(c("5 = 3a + b", "3a + b", f, R))
    add(c(r"x \approx 3.5", "3.5", t, R))
    add(c(r"x = \frac{7}{2} \approx 3.5", r"\frac72", t, R))
    add(c(r"\frac{\sqrt{2}}{2} \approx 0.707", r"\frac{1}{\sqrt{2}}", t, R))
    add(c(r"\frac{\sqrt{2}}{2} \approx 0.707", "0.707", f, R))

    # ---------------------------------------------------------------- 23. sets, intervals, matrices as written
    R = "shapes"
    add(c("{2, 4, 8}", r"\{2,4,8\}", t, R))
    add(c("{2, 4, 8}", r"\{2,4,9\}", f, R))
    add(c(r"\left\{ 8, 4, 2 \right\}", r"\{2,4,8\}", t, R))
    add(c(r"x \in [-1, 6]", r"-1 \le x \le 6", t, R))
    add(c(r"x \in [-1, 6]", r"-1 < x \le 6", f, R))
    add(c(r"-1 \le x \le 6", r"x \in [-1, 6]", t, R))
    add(c("(0, 4)", "0 < t < 4", t, R))
    add(c("[0, 4)", "0 < t < 4", f, R))
    add(c(r"(-1, 1)", r"|x| < 1", t, R))
    add(c(r"[-5, -2] \cup [2, 5]", r"2 \le |x| \le 5", t, R))
    add(c(r"[-5, -2] \cup [2, 5]", r"2 < |x| \le 5", f, R))
    add(c(r"\{3\} \cup [5, 8)", r"\{3\} \cup [5,8)", t, R))
    add(c(r"\{3\} \cup [5, 8)", r"[5, 8) \cup \{3\}", t, R))
    add(c(r"\emptyset", r"\varnothing", t, R))
    add(c(r"(1, +\infty)", r"\{x|x>1\}", t, R))
    add(c(r"[1, +\infty)", r"\{x|x>1\}", f, R))
    add(c(r"(-1, 2)", r"\{x \mid -1 < x < 2\}", t, R))
    add(c(r"x \geq 2", r"\{x|x\geqslant 2\}", t, R))
    add(c(r"\mathbb{R}", r"(-\infty, \infty)", t, R))
    add(c(r"\text{all real numbers}", r"(-\infty, \infty)", t, R))
    add(c("All real numbers.", r"\mathbb{R}", t, R))
    add(c("All real numbers.", r"(0, \infty)", f, R))
    add(c(r"\text{no solution}", r"\emptyset", t, R))
    add(c(r"\emptyset", "No real solutions", t, R))
    add(c(r"\emptyset", r"\{0\}", f, R))
    add(c(r"\left[\begin{array}{cc} 1 & 0 \\ 2 & 5 \end{array}\right]", r"\begin{pmatrix} 1 & 0 \\ 2 & 5 \end{pmatrix}", t, R))
    add(c(r"\left[\begin{array}{cc} 1 & 0 \\ 2 & 5 \end{array}\right]", r"\begin{pmatrix} 1 & 0 \\ 5 & 2 \end{pmatrix}", f, R))
    add(c(r"\begin{bmatrix} 3 \\ -2 \end{bmatrix}", "(3, -2)", t, R))
    add(c(r"\begin{pmatrix} 1 \\ 0 \\ -4 \end{pmatrix}", "(1, 0, -4)", t, R))
    add(c(r"\begin{pmatrix} 1 \\ 0 \\ -4 \end{pmatrix}", "(1, -4, 0)", f, R))
    add(c(r"\left( \frac{1}{2}, -3 \right)", r"(0.5, -3)", t, R))
    add(c(r"\left( 6, \frac{\pi}{3} \right)", r"(6, \frac{\pi}{3})", t, R))
    add(c(r"(1,2,2), (2,1,2), (1,2,2)", r"(2,1,2), (1,2,2)", t, R))
    add(c(r"\{-1, 1\}", r"\pm 1", t, R))
    add(c(r"x = 1 \pm \sqrt{3}", r"1 + \sqrt{3}, 1 - \sqrt{3}", t, R))
    add(c(r"\frac{-1 \pm \sqrt{5}}{2}", r"\frac{-1+\sqrt5}{2}, \frac{-1-\sqrt5}{2}", t, R))
    add(c(r"\frac{-1 \pm \sqrt{5}}{2}", r"\frac{-1+\sqrt5}{2}", f, R))

    # ---------------------------------------------------------------- 24. ratios, clock times, bases
    R = "ratios"
    add(c("2:5", "2 : 5", t, R))
    add(c("4:10", "2:5", f, R))
    add(c("5:2", "2:5", f, R))
    add(c("2:5", r"\frac{2}{5}", t, R))
    add(c("The ratio is 3/5.", "3:5", t, R))
    add(c("The ratio is 15/25.", "3:5", f, R))
    add(c("0.6", "3:5", t, R))
    add(c("9:45", "9:45", t, R))
    add(c("9:45", "9:54", f, R))
    add(c("The train arrives at 9:45.", "9:45", t, R))
    add(c("10:00", "1:00", f, R))
    add(c("18:30", r"6:30 \text{ p.m.}", t, R))
    add(c("6:30 PM", "18:30", t, R))
    add(c("6:30 AM", "18:30", f, R))
    add(c("The meeting ends at 4:15.", "4:15 PM", t, R))
    add(c("The meeting ends at 4:45.", "4:15 PM", f, R))
    add(c("231_4", "231_4", t, R))
    add(c("231", "231_4", t, R))
    add(c("45", "231_4", f, R))
    add(c("231_{4}", "45", t, R))
    add(c("1101_2", "13", t, R))
    add(c("1011_2", "13", f, R))
    add(c(r"\boxed{1101_2}", "1101_2", t, R))

    # ---------------------------------------------------------------- 25. golds as graders' datasets write them
    R = "golds"
    add(c("12", "$12$ centimeters", t, R))
    add(c("12", "$13$ centimeters", f, R))
    add(c(r"\boxed{4, 9}", "$4$ or $9$", t, R))
    add(c(r"\boxed{4, 9, 2}", "$4, 9$ or $2$", t, R))
    add(c(r"\boxed{4, 9}", "$4$ and $9$ and $2$", f, R))
    add(c(r"\frac{1}{3}", r"$\\frac{1}{3}$", t, R))
    add(c(r"\left(\frac{1}{3}, 2\right)", r"$\\left(\\frac{1}{3}, 2\\right)$", t, R))
    add(c(r"x \in (1, 5]", r"$1 \\lt x \\le 5$", t, R))
    add(c(r"\sum_{k=1}^{n} k^2", r"\sum_{k=1}^{n} k^2", t, R))
    add(c(r"\sum_{k=1}^{n} k^3", r"\sum_{k=1}^{n} k^2", f, R))
    add(c(r"\overline{AB}", r"\overline{AB}", t, R))
    add(c("So the answer is \\boxed{7}.", "Adding gives 7.\nFinal Answer: The final answer is $7$. I hope it is correct.", t, R))
    add(c("8", r"Adding gives 7, so $x = \boxed{7}$.", f, R))
    add(c("185", "185\\", t, R))
    add(c("185", "185\\\\", t, R))
    add(c("(2,3)", "(2,3)or(3,2)", f, R))
    add(c("(2,3), (3,2)", "(2,3)or(3,2)", t, R))
    add(c("5", "x \\in \\boxed{\\{5\\}}.$", t, R))
    add(c("C", r"\text{(C)}\ 3", t, R))

    # ---------------------------------------------------------------- GSM8K answers as chat models lay them out
    R = "final_line"
    steps = ("## Step 1: Eggs left to sell\nThe ducks lay 16 eggs a day; 3 are eaten and 4 baked, so "
             "16 - 3 - 4 = 9 are left.\n\n## Step 2: Money made\nShe sells them at $2 each: 9 * $2 = ${n}.\n\n"
             "The final answer is: $\\boxed{{{n}}}$")
    add(c(steps.format(n=18), GSM8K_EGGS, t, R))
    add(c(steps.format(n=16), GSM8K_EGGS, f, R))
    bullets = ("Janet's ducks lay 16 eggs a day.\n\n- Eaten for breakfast: 3\n- Used for muffins: 4\n\n"
               "Eggs left to sell: 16 − 3 − 4 = 9\n\nAt $2 each: 9 × $2 = **${n}**\n\n"
               "Janet makes **${n}** every day at the farmers' market.")
    add(c(bullets.format(n=18), GSM8K_EGGS, t, R))
    add(c(bullets.format(n=20), GSM8K_EGGS, f, R))
    display = ("To find how much Janet makes, follow these steps:\n\n1. **Eggs left:**\n   \\[\n   16 - 3 - 4 = 9\n"
               "   \\]\n2. **Money:**\n   \\[\n   9 \\times 2 = {n} \\text{{ dollars}}\n   \\]\n\n"
               "Therefore, Janet makes \\(\\boxed{{{n}}}\\) dollars every day at the farmers' market.")
    add(c(display.format(n=18), GSM8K_EGGS, t, R))
    add(c(display.format(n=11), GSM8K_EGGS, f, R))
    headed = ("**1. Eggs remaining:** 16 - 3 - 4 = 9 eggs\n**2. Earnings:** 9 eggs * $2/egg = ${n}\n\n"
              "**Answer:** Janet makes ${n} every day at the farmers' market.")
    add(c(headed.format(n=18), GSM8K_EGGS, t, R))
    add(c(headed.format(n=14), GSM8K_EGGS, f, R))
    # The instruction's answer template quoted back after the answer is no answer itself.
    quoting = ("Janet sells 16 - 3 - 4 = 9 eggs.\nSo, the answer is 9 * 2 = {n} dollars.\n\nThe question asks for "
               "the answer to a \"So the answer is...\", which is how a teacher would end it.")
    add(c(quoting.format(n=18), GSM8K_EGGS, t, R))
    add(c(quoting.format(n=9), GSM8K_EGGS, f, R))
    add(c("She makes 9 * 2 = 18 dollars, so the answer is 18.\nAnswer: ___", GSM8K_EGGS, t, R))
    add(c("She makes 9 * 2 = 18 dollars, so the answer is 16.\nAnswer: …", GSM8K_EGGS, f, R))
    thinking = ("<think>\nShe has 16 eggs, eats 3, bakes 4. 16 - 7 = 9. Wait, is it 16 - 3 = 13 then 13 - 4 = 9? "
                "Yes, 9. At $2 that's $18, not $20.\n</think>\n\nJanet sells 9 eggs at $2 each, so she makes "
                "**${n}** per day.")
    add(c(thinking.format(n=18), GSM8K_EGGS, t, R))
    add(c(thinking.format(n=20), GSM8K_EGGS, f, R))
    add(c("She sells 16 - 3 - 4 = 9 eggs a day, making 9 * 2 = $18.00 daily.", GSM8K_EGGS, t, R))
    add(c("She sells 16 - 3 - 4 = 9 eggs a day, making 9 * 2 = $18.00 daily. That is $126 a week.", "126", t, R))
    add(c("Natalia sold 48 / 2 = 24 clips in May, so altogether she sold 48 + 24 = 72 clips in April and May. "
          "The answer is: 72", GSM8K_CLIPS, t, R))
    add(c("Natalia sold 48 / 2 = 24 clips in May, so altogether she sold 48 + 24 = 72 clips in April and May. "
          "The answer is: 24", GSM8K_CLIPS, f, R))
    add(c("In May: 48 ÷ 2 = 24 clips.\nTotal: 48 + 24 = 72 clips.\n\n**Final Answer: 72 clips**", GSM8K_CLIPS, t, R))
    add(c("In May: 48 ÷ 2 = 24 clips.\nTotal: 48 + 24 = 72 clips.\n\n### Final Answer\n72", GSM8K_CLIPS, t, R))
    add(c("In May: 48 ÷ 2 = 24 clips.\nTotal: 48 + 24 = 72 clips.\n\n### Final Answer\n96", GSM8K_CLIPS, f, R))
    add(c("The big order comes to 1234 * 1000 = 1,234,000 units, i.e. \\(1{,}234{,}000\\) units.", GSM8K_BIG, t, R))
    add(c("The big order comes to 1234 * 1000 = 1,234,000 units, i.e. \\(1{,}234{,}000\\) units.", "1234", f, R))

    # ---------------------------------------------------------------- 26. responses without a marker
    R = "unmarked"
    add(c("小红有 8 颗糖，又买了 5 颗，所以一共是 13 颗糖。", "13", t, R))
    add(c("小红有 8 颗糖，又买了 5 颗，所以一共是 13 颗糖。", "5", f, R))
    add(c("Il a 6 billes, puis en gagne 9 : il a donc 15 billes.", "15", t, R))
    add(c("Sie hat 20 Euro und gibt 7 Euro aus, also bleiben 13 Euro übrig.", "13", t, R))
    add(c("Tiene 4 cajas con 12 lápices cada una, en total 48 lápices.", "48", t, R))
    add(c("Tiene 4 cajas con 12 lápices cada una, en total 48 lápices.", "12", f, R))
    add(c("У Маши было 10 яблок, она отдала 3, осталось 7.", "7", t, R))
    add(c("He reads 15 pages a day for 4 days: 15 * 4 = 60 pages.", "60", t, R))
    add(c("Since i is the square root of -1, we can write i^3 = -i, a neat identity.", "-i", t, R))
    add(c("Since i is the square root of -1, we can write i^3 = -i, a neat identity.", "-1", f, R))
    add(c("He reads 15 pages a day for 4 days: 15 * 4 = 60 pages.", "4", f, R))
    add(c(r"Thus the area is $6 \cdot 7 = 42$ square units.", "42", t, R))
    add(c(r"Thus the area is $6 \cdot 7 = 42$ square units.", "7", f, R))
    add(c("So she needs 2.5 cups, approximately 0.6 liters.", "2.5", f, R))
    add(c("In scientific notation that is 4.2e3.", "4200", t, R))
    add(c(r"The speed is about $3 \times 10^{8}$ meters per second.", "300000000", t, R))

    # ---------------------------------------------------------------- 27. a restated question
    # With the question as the prompt: an answer that restates the question's number, written as
    # the question wrote it, is not the conversion asked for; the same value in the asked-for
    # form, or a number the question states in the gold's own form, is the answer.
    R = "restated"
    q = "Write 2.75 as a mixed number."
    add(c("To write it as a mixed number: 2.75", r"2\frac{3}{4}", f, R, question=q))
    add(c(r"2.75 = 2 + 0.75 = $2\frac{3}{4}$", r"2\frac{3}{4}", t, R, question=q))
    add(c("The answer is 2 3/4.", r"2\frac{3}{4}", t, R, question=q))
    add(c("The answer is 11/4.", r"2\frac{3}{4}", t, R, question=q))
    q = "What is 5/8 as a decimal?"
    add(c("Dividing gives 0.625, which is the decimal form of 5/8.", "0.625", f, R, question=q))
    add(c("Dividing 5 by 8 gives 0.625.", "0.625", t, R, question=q))
    q = r"Simplify $\frac{6}{8}$."
    add(c(r"The fraction is $\frac{6}{8}$.", r"\frac{3}{4}", f, R, question=q))
    add(c(r"Dividing top and bottom by 2: $\frac{3}{4}$.", r"\frac{3}{4}", t, R, question=q))
    q = "Write 25% as a fraction in lowest terms."
    add(c("25% means 25 out of 100, so the answer is 25%.", "1/4", f, R, question=q))
    add(c("25% means 25 out of 100, so the answer is 1/4.", "1/4", t, R, question=q))
    # the question states the answer in the gold's form: restating it is no fault
    q = "Tom has 5 apples and eats none. How many apples does he have?"
    add(c("He still has 5 apples.", "5", t, R, question=q))
    q = "A shirt costs $12.00. How much do 1 shirt cost, in dollars?"
    add(c("One shirt costs $12.00.", "12", t, R, question=q))
    q = "What is 50% of 100?"
    add(c("50% of 100 is 50.", "50", t, R, question=q))

    # A choice letter that states another option's value contradicts itself (the question lists them).
    R = "choice"
    q = "Which is the smallest prime number? (A) 0 (B) 1 (C) 2 (D) 3"
    add(c("The smallest prime is 3, so the answer is C: 3", "C", f, R, question=q))
    add(c("The smallest prime is 2, so the answer is C: 2", "C", t, R, question=q))
    add(c("The answer is (C).", "C", t, R, question=q))
    q = "Which is larger, 2^5 or 5^2? Answer (A) 2^5 or (B) 5^2."
    add(c("The answer is (A) 5^2.", "A", f, R, question=q))
    add(c("The answer is (A) 2^5.", "A", t, R, question=q))
    add(c("2^5 = 32 is larger. The answer is A: 32", "A", t, R, question=q))
    return cases


# Real model completions, each decided by reading it: one JSON object per line with prediction,
# gold, question, expected, rule, origin (and status, when not just "ok"; known_miss, when the
# verifier gets the case wrong).
REAL_CASES_FILE = Path(__file__).with_name("math_real_cases.jsonl")


def _real_cases() -> list[Case]:
    if not REAL_CASES_FILE.exists():
        return []
    rows = [json.loads(line) for line in REAL_CASES_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [Case(r["prediction"], r["gold"], r["expected"], r["rule"], tuple(r.get("status", OK_ONLY)), "real",
                 r["origin"], r.get("known_miss", ""), r.get("question", "")) for r in rows]


CASES: list[Case] = _cases() + _cases_of_model_text() + _real_cases()

OPTION_CASES: list[OptionCase] = [
    # require_boxed: an unboxed prediction scores 0, however right; the gold needs no box.
    OptionCase("The answer is 5.", "5", {"require_boxed": True}, False),
    OptionCase("#### 5", "5", {"require_boxed": True}, False),
    OptionCase("Adding 2 and 3 gives 5.", "5", {"require_boxed": True}, False),
    OptionCase(r"Adding 2 and 3 gives \boxed{5}.", "5", {"require_boxed": True}, True),
    OptionCase(r"\boxed{5}", "#### 5", {"require_boxed": True}, True),
    OptionCase(r"\fbox{72}", GSM8K_CLIPS, {"require_boxed": True}, True),
    OptionCase(r"\boxed{6}", "5", {"require_boxed": True}, False),
    OptionCase("The answer is 5.", "5", {"require_boxed": False}, True),
    # percent: "value" reads 50% as 50 only, "fraction" as 0.5 only.
    OptionCase("50%", "0.5", {"percent": "value"}, False),
    OptionCase("50%", "50", {"percent": "value"}, True),
    OptionCase(r"50\%", r"\frac12", {"percent": "value"}, False),
    OptionCase("10%", "10", {"percent": "value"}, True),
    OptionCase("50%", "50", {"percent": "fraction"}, False),
    OptionCase("50%", "0.5", {"percent": "fraction"}, True),
    OptionCase(r"50\%", r"\frac{1}{2}", {"percent": "fraction"}, True),
    OptionCase("10%", "10", {"percent": "fraction"}, False),
    OptionCase("50%", "0.5", {"percent": "either"}, True),
    OptionCase("50%", "50", {"percent": "either"}, True),
    # rel_tol: looser accepts rounded decimals, tighter refuses them.
    # The documented example; |0.33 - 1/3| is exactly 1% of 1/3, so the bound is inclusive.
    OptionCase("0.33", "1/3", {"rel_tol": 1e-2}, True),
    OptionCase("0.333", "1/3", {"rel_tol": 1e-2}, True),
    OptionCase("0.3", "1/3", {"rel_tol": 1e-2}, False),
    OptionCase("3.14", r"\pi", {"rel_tol": 1e-2}, True),
    OptionCase("1.41", r"\sqrt{2}", {"rel_tol": 1e-2}, True),
    OptionCase("0.33", "1/3", {"rel_tol": 1e-6}, False),
    OptionCase("6.283185", r"2\pi", {"rel_tol": 1e-6}, True),
    OptionCase("6.283185", r"2\pi", {"rel_tol": 1e-9}, False),
    OptionCase("0.3333333333", "1/3", {"rel_tol": 1e-9}, True),
]


# --- GSM8K-style restatements -----------------------------------------------------------------
# A worked solution (the text of a GSM8K answer before `####`) followed by its final number stated
# in one of these ways. `{n}` is the number as GSM8K writes it, `{grouped}` with thousands
# separators, `{latex}` with LaTeX's `{,}`, `{spaced}` grouped by spaces.
FINAL_STATEMENTS: dict[str, str] = {
    "answer-is": "The answer is {n}.",
    "answer-colon": "Answer: {n}",
    "a-colon": "A: {n}",
    "boxed": "So the final answer is $\\boxed{{{latex}}}$.",
    "minerva": "Final Answer: The final answer is ${latex}$. I hope it is correct.",
    "bold-answer": "**Answer:** {grouped}",
    "bold": "So the result is **{n}**.",
    "hashes": "#### {n}",
    "dollars": "Therefore, the total is ${grouped}.",
    "dollars-answer": "The answer is ${grouped}.",
    "dollars-math": "So the amount is $\\${latex}$.",
    "units": "So that comes to {grouped} in total.",
    "own-line": "{n}",
    "spaced": "The answer is {spaced}.",
    "thin-space": "The answer is ${thin}$.",
    "sentence-after": "The answer is {n}. Let me know if you have any other questions!",
    "zh": "答案：{n}",
    "zh-unmarked": "所以一共是 {n} 个。",
    "fr": "Réponse : {n}",
    "es": "La respuesta es {n}.",
    "de": "Die Antwort ist {n}.",
    "ru": "Ответ: {n}.",
    "ja": "答えは {n} です。",
}


def number_forms(n: str) -> dict[str, str]:
    """`n` (GSM8K's own digits, maybe `1,234` or `-5` or `2.5`) in the forms FINAL_STATEMENTS use."""
    plain = n.replace(",", "")
    sign, digits = ("-", plain[1:]) if plain.startswith("-") else ("", plain)
    whole, dot, frac = digits.partition(".")
    groups = [whole[max(0, i - 3) : i] for i in range(len(whole), 0, -3)][::-1]

    def joined(sep: str) -> str:
        return sign + sep.join(groups) + dot + frac

    return {"n": plain, "grouped": joined(","), "latex": joined("{,}"), "spaced": joined(" "),
            "thin": joined("\\,")}


def restate(solution: str, n: str, style: str) -> str:
    """The worked solution followed by its final number `n` stated in `style`."""
    return solution.rstrip() + "\n" + FINAL_STATEMENTS[style].format(**number_forms(n))


def changed_number(n: str, seed: int) -> str:
    """A different number, as GSM8K would write it: what a wrong final line states instead."""
    plain = n.replace(",", "")
    value = float(plain) if "." in plain else int(plain)
    other = value + 1 + seed % 9
    return f"{other:g}" if isinstance(other, float) else str(other)


# Hand-written rows in GSM8K's format (calculator notes, dollar amounts, thousands), for the test.
GSM8K_STYLE_ROWS = [
    "Maya buys 3 notebooks at $4 each, so she spends 3 * 4 = $<<3*4=12>>12.\n"
    "She also buys a pen for $2, so she spends 12 + 2 = $<<12+2=14>>14 in all.\n#### 14",
    "The farm has 1,200 hens and each lays 5 eggs a week, so that is 1,200 * 5 = <<1200*5=6000>>6,000 eggs.\n"
    "Over 4 weeks that is 6,000 * 4 = <<6000*4=24000>>24,000 eggs.\n#### 24,000",
    "A ticket costs $7.50 and Sam buys 4, paying 7.50 * 4 = $<<7.50*4=30>>30.\n"
    "He pays with a $50 bill, so his change is 50 - 30 = $<<50-30=20>>20.\n#### 20",
    "Half of the 36 students walk: 36 / 2 = <<36/2=18>>18.\n"
    "A third of the rest bike: 18 / 3 = <<18/3=6>>6, so 18 - 6 = <<18-6=12>>12 take the bus.\n#### 12",
    "The tank holds 250 liters and leaks 2.5 liters an hour for 8 hours: 2.5 * 8 = <<2.5*8=20>>20 liters.\n"
    "So 250 - 20 = <<250-20=230>>230 liters are left.\n#### 230",
    "Each of the 9 teams has 11 players, so there are 9 * 11 = <<9*11=99>>99 players.\n"
    "With 3 referees that is 99 + 3 = <<99+3=102>>102 people on the field.\n#### 102",
    "The temperature was 4 degrees and fell 9 degrees, so it is 4 - 9 = <<4-9=-5>>-5 degrees.\n#### -5",
    "The company made $1,234,500 in sales and spent $987,600, so its profit was "
    "1234500 - 987600 = $<<1234500-987600=246900>>246,900.\n#### 246,900",
]
