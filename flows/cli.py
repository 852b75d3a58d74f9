"""`rlvr`: the command line.

    rlvr run CONFIG [key.sub=value ...]      one round through the Prefect flow
    rlvr stage NAME CONFIG [key.sub=value ...]  one stage alone, no Prefect (any stage of the table)
    rlvr verifiers                            list the verifiers (built-ins and plugins)
    rlvr serve [--host H --port P ...]         Prefect server, work pool, deployments and a worker
"""

import argparse
import sys

from errors import PipelineError
from pipeline.stages import STAGES

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rlvr", description="Post-training pipeline: SFT, then GRPO with verifiers.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one round (the configured stages, in order) through the Prefect flow")
    run.add_argument("config", help="run config (YAML)")
    run.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    stage = sub.add_parser("stage", help="run one stage alone, without Prefect")
    stage.add_argument("name", choices=sorted(STAGES))
    stage.add_argument("config", help="run config (YAML)")
    stage.add_argument("rest", nargs=argparse.REMAINDER, help="--init DIR / --input NAME=DIR, then overrides")
    sub.add_parser("verifiers", help="list the available verifiers")
    sub.add_parser("serve", help="Prefect server + work pool + gpu limit + deployments + a worker (see rlvr serve -h)",
                   add_help=False)
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        from flows.serve import main as serve

        return serve(argv[1:])
    args = parser.parse_args(argv)

    if args.command == "verifiers":
        from verifiers import registry

        print("\n".join(registry.available()))
        return 0
    if args.command == "stage":
        import importlib

        module = importlib.import_module(STAGES[args.name].module)
        return module.main(["--config", args.config, *args.rest])
    return _run(args.config, args.overrides)


def _run(config_path: str, overrides: list[str]) -> int:
    from pipeline.config import load_config

    try:
        cfg = load_config(config_path, overrides)
        from pipeline.preflight import check_inputs

        check_inputs(cfg)
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    from flows.execution import ExecutionConfig
    from flows.launch import StageFailed
    from flows.round import round_flow

    try:
        # No server-side concurrency limit on a one-off local run (`rlvr serve` creates it).
        result = round_flow(cfg, execution=ExecutionConfig(concurrency_limit=None, retries=0))
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except StageFailed as e:
        # A stage that stopped on a user error or a guard passes its exit code on (2, 3): not worth retrying.
        print(f"error: {e}", file=sys.stderr)
        return e.returncode if not e.retryable else 1
    for name, r in result["stages"].get("evaluate", {}).items():
        if isinstance(r, dict) and "accuracy" in r:
            print(f"held-out accuracy after {name}: {100 * r['accuracy']:.1f}% (n={r['n']})")
    print(f"model: {result['model']}")
    print(f"metrics and plots: {cfg.output_dir}/<stage>/metrics.jsonl, metrics.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
