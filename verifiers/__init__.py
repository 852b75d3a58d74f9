"""Verifiers score completions against references and return `Verdict`s.

Importing this package imports no verifier implementation: `get("math")` imports
`verifiers.math` on first use, and plugins load only when asked for by name.
"""

from verifiers.base import (
    ERROR,
    OK,
    STATUSES,
    TIMEOUT,
    Context,
    PreparesReferences,
    Verdict,
    Verifier,
    prepare_references,
    run_verifier,
    summarize,
)
from verifiers.registry import (
    ENTRY_POINT_GROUP,
    UnknownVerifierError,
    VerifierConfigError,
    VerifierRegistryError,
    available,
    get,
)

__all__ = [
    "OK",
    "TIMEOUT",
    "ERROR",
    "STATUSES",
    "Verdict",
    "Context",
    "Verifier",
    "PreparesReferences",
    "prepare_references",
    "run_verifier",
    "summarize",
    "ENTRY_POINT_GROUP",
    "available",
    "get",
    "UnknownVerifierError",
    "VerifierConfigError",
    "VerifierRegistryError",
]
