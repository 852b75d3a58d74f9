"""The `math` verifier: sympy answer checking that is right, fast, safe and never hangs.

`MathVerifier` (verifier.py) extracts the final answer (extract.py), parses it without eval into a
whitelisted syntax tree (parse.py), and decides equality (equal.py: the rules for answers' shapes;
values.py: numbers without sympy; symbolic.py: the whitelisted bridge to sympy), with sympy work
in worker processes under a hard per-answer deadline (verifiers/pool.py). `prepare_reference`
reads a gold once, for checking a dataset when it is loaded.
"""

from verifiers.math.extract import extract_answer, last_boxed
from verifiers.math.parse import ParseError, parse_answer
from verifiers.math.verifier import MathReference, MathVerifier, prepare_reference

__all__ = ["MathVerifier", "MathReference", "prepare_reference", "extract_answer", "last_boxed", "parse_answer",
           "ParseError"]
