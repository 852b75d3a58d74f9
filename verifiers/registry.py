"""Find verifiers by name: an explicit table of built-ins, plus third-party plugins.

A plugin is an entry point in the group `rlvr.verifiers` whose value names a factory (usually the
class), e.g. in the plugin's pyproject.toml:

    [project.entry-points."rlvr.verifiers"]
    chess = "my_pkg.chess:ChessVerifier"

Nothing is imported until `get` asks for that one verifier, so listing verifiers starts no
sandbox and imports no sympy. A plugin may not reuse a built-in's name, and two plugins may not
share a name: the name would be ambiguous, so that is an error rather than a silent override.
"""

from __future__ import annotations

import importlib.metadata
import inspect
from typing import Any

from errors import ConfigError, UserError
from verifiers.base import Verifier

__all__ = [
    "ENTRY_POINT_GROUP",
    "available",
    "get",
    "factory",
    "UnknownVerifierError",
    "VerifierRegistryError",
    "VerifierConfigError",
]

ENTRY_POINT_GROUP = "rlvr.verifiers"

# name -> "module:attr"; the module is imported only when the verifier is requested.
_BUILTINS: dict[str, str] = {
    "math": "verifiers.math:MathVerifier",
    "reward_model": "verifiers.reward_model:RewardModelVerifier",
    "code": "verifiers.code:CodeVerifier",
    "format": "verifiers.format:FormatVerifier",
    "length": "verifiers.length:LengthVerifier",
    "judge": "verifiers.judge:JudgeVerifier",
}


class VerifierRegistryError(UserError):
    """The installed plugins are inconsistent (a clashing name) or one cannot be loaded."""


class UnknownVerifierError(UserError, LookupError):
    """No built-in or plugin verifier has the requested name."""


class VerifierConfigError(ConfigError, ValueError):
    """A verifier's constructor rejected the options it was given."""


def available() -> list[str]:
    """Sorted names of all built-in and plugin verifiers. Loads none of them."""
    return sorted({*_BUILTINS, *_plugin_entry_points()})


def get(name: str, **options: Any) -> Verifier:
    """Build the verifier called `name`, passing `options` to its factory as keyword arguments."""
    make, origin = _load(name)
    verifier = _construct(name, make, options)
    if not isinstance(verifier, Verifier):
        raise VerifierRegistryError(
            f"Verifier {name!r} ({origin}) built a {type(verifier).__name__}, which lacks a "
            "`name` attribute or a `verify(completions, references)` method."
        )
    return verifier


def factory(name: str) -> Any:
    """The factory (usually the class) of the verifier called `name`, not yet called: what it
    declares (e.g. `run_defaults`) can be read before it is built."""
    return _load(name)[0]


def _load(name: str) -> tuple[Any, str]:
    plugins = _plugin_entry_points()
    if name in _BUILTINS:
        builtin = importlib.metadata.EntryPoint(name=name, value=_BUILTINS[name], group=ENTRY_POINT_GROUP)
        loaded = builtin.load()
        origin = f"built-in {_BUILTINS[name]!r}"
    elif name in plugins:
        ep = plugins[name]
        origin = _describe(ep)
        try:
            loaded = ep.load()
        except Exception as e:
            raise VerifierRegistryError(
                f"Verifier {name!r} ({origin}) could not be loaded: {type(e).__name__}: {e}. "
                "Reinstall or uninstall that plugin."
            ) from e
    else:
        known = ", ".join(sorted({*_BUILTINS, *plugins}))
        raise UnknownVerifierError(
            f"Unknown verifier {name!r}; available: {known}. Third-party verifiers register "
            f"under the entry-point group {ENTRY_POINT_GROUP!r}."
        )
    return loaded, origin


def _construct(name: str, factory: Any, options: dict[str, Any]) -> Any:
    """Call factory(**options); option mistakes become VerifierConfigError naming the option."""
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # some callables (C types) have no signature: just call
        params = None
    if params is not None and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        accepted = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        unknown = sorted(set(options) - set(accepted))
        if unknown:
            raise VerifierConfigError(
                f"Verifier {name!r} has no option {', '.join(map(repr, unknown))}; "
                f"accepted options: {', '.join(accepted) or '(none)'}. Fix verifiers.options.{name}."
            )
    try:
        return factory(**options)
    except (TypeError, ValueError) as e:
        # A value the constructor refuses (a negative tolerance, a missing required option).
        raise VerifierConfigError(
            f"Verifier {name!r} rejected options {options!r}: {e}. Fix verifiers.options.{name}."
        ) from e


def _plugin_entry_points() -> dict[str, Any]:
    """name -> entry point for every plugin, refusing names that clash (cf. pluggy's loader)."""
    plugins: dict[str, Any] = {}
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _BUILTINS:
            raise VerifierRegistryError(
                f"Plugin verifier {ep.name!r} ({_describe(ep)}) clashes with the built-in "
                f"{ep.name!r} ({_BUILTINS[ep.name]!r}); uninstall the plugin or rename its entry point."
            )
        seen = plugins.get(ep.name)
        # The same distribution seen twice on sys.path is harmless; two different factories are not.
        if seen is not None and seen.value != ep.value:
            raise VerifierRegistryError(
                f"Plugin verifier {ep.name!r} is registered twice: {_describe(seen)} and "
                f"{_describe(ep)}; uninstall one of them."
            )
        plugins[ep.name] = ep
    return plugins


def _describe(ep: Any) -> str:
    """Where an entry point comes from, for error messages: its value and its distribution."""
    dist = getattr(ep, "dist", None)
    return f"{ep.value!r} from distribution {dist.name!r}" if dist is not None else repr(ep.value)
