"""`rlvr`: the command line.

    rlvr run CONFIG [key.sub=value ...]      one round through the Prefect flow
    rlvr campaign CONFIG [key.sub=value ...] rounds with gated promotion (the config's campaign and gates sections)
    rlvr rollback OUTPUT_DIR                  point a campaign's promoted model back at the previous promotion
    rlvr stage NAME CONFIG [key.sub=value ...]  one stage alone, no Prefect (any stage of the table)
    rlvr verifiers                            list the verifiers (built-ins and plugins)
    rlvr serve [--host H --port P ...]         Prefect server, work pool, deployments and a worker
"""

import argparse
import sys

from errors import PipelineError, UserError
from pipeline.stages import STAGES

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rlvr", description="Post-training pipeline: SFT, then GRPO with verifiers.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run one round (the configured stages, in order) through the Prefect flow")
    run.add_argument("config", help="run config (YAML)")
    run.add_argument("overrides", nargs="*", help="key.sub=value overrides")
    campaign = sub.add_parser("campaign", help="rounds in a loop with gated promotion, through the Prefect flow")
    campaign.add_argument("config", help="run config (YAML) with its campaign and gates sections")
    campaign.add_argument("overrides", nargs="*", help="key.sub=value overrides (campaign.rounds=5, ...)")
    rollback = sub.add_parser("rollback", help="restore a campaign's previous promotion")
    rollback.add_argument("output_dir", help="the campaign's output_dir (its registry is <output_dir>/registry)")
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
    if args.command == "rollback":
        return _rollback(args.output_dir)
    return _flow(args.command, args.config, args.overrides)


def _flow(command: str, config_path: str, overrides: list[str]) -> int:
    """`rlvr run` / `rlvr campaign`: check the inputs, then run the flow on Prefect's embedded server
    (or the one PREFECT_API_URL names)."""
    from pipeline.config import load_config

    try:
        cfg = load_config(config_path, overrides)
        from pipeline.preflight import check_inputs

        check_inputs(cfg)
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    import os

    # Prefect's embedded server gets 20 s to start; a busy 2-core machine can need more.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    from flows.execution import ExecutionConfig
    from flows.launch import StageFailed

    # No server-side concurrency limit on a one-off local run (`rlvr serve` creates it).
    execution = ExecutionConfig(concurrency_limit=None, retries=0)
    try:
        if command == "campaign":
            from flows.campaign import campaign_flow

            summary = campaign_flow(config=cfg, execution=execution)
            promoted = summary["promoted"]
            print(f"promoted model: {promoted['checkpoint']} ({promoted.get('version') or 'the start model'})")
            print(f"registry: {summary['registry']}/history.json")
            return 0
        from flows.round import round_flow

        result = round_flow(config=cfg, execution=execution)
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


def _rollback(output_dir: str) -> int:
    from pathlib import Path

    from flows.registry import ModelRegistry

    registry = ModelRegistry(Path(output_dir) / "registry")
    try:
        if not registry.history_file.is_file():
            raise UserError(f"{registry.root}: no model registry here (a campaign's output_dir holds one)")
        entry = registry.rollback()
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    print(f"promoted model: {registry.promoted} -> {entry['to']} (round {entry['round']}; was {entry['from']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
