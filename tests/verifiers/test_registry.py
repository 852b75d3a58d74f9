import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest

from verifiers import registry
from verifiers.registry import UnknownVerifierError, VerifierConfigError, VerifierRegistryError

GROUP = registry.ENTRY_POINT_GROUP
REPO_ROOT = Path(__file__).resolve().parents[2]


class FakeVerifier:
    """What a third-party plugin's entry point names."""

    name = "fake"

    def __init__(self, threshold=0.5):
        if threshold < 0:
            raise ValueError(f"threshold must be >= 0, got {threshold}")
        self.threshold = threshold

    def verify(self, completions, references):
        return []


class _Dist:
    def __init__(self, name):
        self.name = name


class _FakeEntryPoint:
    """Duck-typed entry point that records whether it was loaded."""

    def __init__(self, name, value="tests.verifiers.test_registry:FakeVerifier", obj=FakeVerifier, dist=None):
        self.name, self.value, self.group, self.dist = name, value, GROUP, dist
        self._obj, self.loads = obj, 0

    def load(self):
        self.loads += 1
        if isinstance(self._obj, Exception):
            raise self._obj
        return self._obj


@pytest.fixture
def installed(fake_entry_points):
    """Replace the installed plugins with the given entry points."""

    def install(*eps):
        fake_entry_points(GROUP, *eps)

    install()
    return install


def test_available_lists_builtins_and_plugins_without_loading_them(installed):
    never_imported = importlib.metadata.EntryPoint(name="ghost", value="no_such_module:Nope", group=GROUP)
    fake = _FakeEntryPoint("fake")
    installed(fake, never_imported)
    assert registry.available() == sorted(["fake", "ghost", *registry._BUILTINS])
    assert "math" in registry.available()
    assert fake.loads == 0


def test_listing_and_package_import_do_not_import_verifier_modules():
    heavy = ["verifiers.math", "verifiers.code", "verifiers.reward_model", "sympy", "docker", "torch"]
    code = f"import sys, verifiers; verifiers.available(); print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_get_builds_a_real_entry_point_plugin_with_options(installed, monkeypatch):
    monkeypatch.syspath_prepend(str(REPO_ROOT))  # so `tests.verifiers...` imports under plain `pytest` too
    value = "tests.verifiers.test_registry:FakeVerifier"
    installed(importlib.metadata.EntryPoint(name="fake", value=value, group=GROUP))
    verifier = registry.get("fake", threshold=0.9)
    # compare by name: the entry point may import this file a second time under its dotted path
    assert type(verifier).__name__ == "FakeVerifier"
    assert verifier.threshold == 0.9


def test_get_builds_a_builtin(installed):
    verifier = registry.get("math", reward_wrong=-1.0)
    assert verifier.name == "math"
    assert verifier.reward_wrong == -1.0


def test_unknown_name_lists_what_is_available_and_how_to_register(installed):
    installed(_FakeEntryPoint("fake"))
    with pytest.raises(UnknownVerifierError) as info:
        registry.get("chess")
    message = str(info.value)
    available = ", ".join(sorted(["fake", *registry._BUILTINS]))
    assert "'chess'" in message and f"available: {available}." in message and "'rlvr.verifiers'" in message
    assert isinstance(info.value, LookupError)


def test_plugin_clashing_with_a_builtin_is_an_error(installed):
    installed(_FakeEntryPoint("math", value="evil_pkg:Math", dist=_Dist("evil-pkg")))
    message = r"'evil_pkg:Math' from distribution 'evil-pkg'.*'verifiers.math:MathVerifier'"
    with pytest.raises(VerifierRegistryError, match=message):
        registry.available()
    with pytest.raises(VerifierRegistryError):
        registry.get("math")


def test_two_plugins_with_one_name_is_an_error(installed):
    installed(_FakeEntryPoint("fake", value="a:Fake"), _FakeEntryPoint("fake", value="b:Fake"))
    with pytest.raises(VerifierRegistryError, match="'a:Fake' and 'b:Fake'"):
        registry.get("fake")


def test_the_same_plugin_seen_twice_is_not_a_clash(installed):
    installed(_FakeEntryPoint("fake"), _FakeEntryPoint("fake"))
    assert registry.available() == sorted(["fake", *registry._BUILTINS])


def test_unknown_option_names_the_verifier_and_the_option(installed):
    installed(_FakeEntryPoint("fake"))
    message = r"'fake' has no option 'treshold'; accepted options: threshold"
    with pytest.raises(VerifierConfigError, match=message):
        registry.get("fake", treshold=0.9)


def test_option_value_refused_by_the_constructor_is_a_config_error(installed):
    installed(_FakeEntryPoint("fake"))
    with pytest.raises(VerifierConfigError, match="threshold must be >= 0") as info:
        registry.get("fake", threshold=-1)
    assert isinstance(info.value, ValueError)
    with pytest.raises(VerifierConfigError, match="rel_tol must be >= 0"):
        registry.get("math", rel_tol=-0.1)


def test_plugin_that_fails_to_import_names_its_distribution(installed):
    installed(_FakeEntryPoint("fake", obj=ImportError("no module named torch"), dist=_Dist("fake-plugin")))
    message = "from distribution 'fake-plugin'.*ImportError: no module named torch"
    with pytest.raises(VerifierRegistryError, match=message):
        registry.get("fake")


def test_plugin_that_builds_a_non_verifier_is_an_error(installed):
    installed(_FakeEntryPoint("fake", obj=dict))
    with pytest.raises(VerifierRegistryError, match="built a dict"):
        registry.get("fake")
