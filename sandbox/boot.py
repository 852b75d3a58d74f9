"""The first code of every interpreter in a sandbox container. The image holds only Python; the
sandbox's own modules arrive as sources on the command line:

    python3 -I -X utf8 -c <this source> ENTRY [ARG ...] -- NAME=SOURCE ...

Each source is installed as `sandbox.NAME` (in order: each after those it imports), then
`sandbox.ENTRY.main(ARGS, SOURCES)` runs. The host starts the harness (PID 1) this way, and the
harness starts its zygotes the same way, passing on the sources each needs (`boot` among them).

Python 3.11 standard library only: this file runs inside the image.
"""

import sys
import types

__all__ = ["install", "command"]


def install(sources: dict[str, str]) -> None:
    """Make `from sandbox import NAME` work where only the sources exist."""
    package = sys.modules.get("sandbox")
    if package is None:
        package = types.ModuleType("sandbox")
        package.__path__ = []
        sys.modules["sandbox"] = package
    for name, source in sources.items():
        module = types.ModuleType(f"sandbox.{name}")
        module.__file__ = f"sandbox/{name}.py"
        sys.modules[module.__name__] = module
        exec(compile(source, module.__file__, "exec"), module.__dict__)
        setattr(package, name, module)


def command(python: str, sources: dict[str, str], entry: str, args: list[str], modules: list[str]) -> list[str]:
    """The argv that starts `sandbox.ENTRY.main(ARGS, ...)` in a fresh interpreter with `modules`."""
    return [python, "-I", "-X", "utf8", "-c", sources["boot"], entry, *args, "--", *(f"{m}={sources[m]}" for m in modules)]


def _main() -> None:
    split = sys.argv.index("--")
    sources = dict(arg.split("=", 1) for arg in sys.argv[split + 1 :])
    install(sources)
    sys.exit(sys.modules[f"sandbox.{sys.argv[1]}"].main(sys.argv[2:split], sources))


if __name__ == "__main__":
    _main()
