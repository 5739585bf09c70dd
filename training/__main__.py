"""``python -m training run CONFIG.yaml [--set key=value ...] [--run-id ID] [--json]``.

Exit codes: 0 finished, 2 a user mistake (bad config or data; one line on stderr), 1 the run
failed (e.g. diverged; one line on stderr, details in the run's summary.json).
"""

from __future__ import annotations

import argparse
import json
import sys

from core.errors import InputError, SocratesError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="Train from a YAML run config.")
    run.add_argument("config", help="YAML run config")
    run.add_argument("--set", dest="overrides", action="append", default=[],
                     metavar="KEY=VALUE", help="override a config value (repeatable)")
    run.add_argument("--run-id", default=None, help="registry id (set by executors)")
    run.add_argument("--progress", action="store_true", help="show a progress bar")
    run.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)

    from training import train

    try:
        result = train(args.config, overrides=args.overrides, run_id=args.run_id,
                       progress=args.progress)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SocratesError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    payload = {"run_id": result.run_id, "output_dir": str(result.output_dir),
               "status": result.status, "metrics": result.metrics}
    if args.json:
        print(json.dumps(payload, indent=2))
    else:
        print(f"run {result.run_id} finished -> {result.output_dir}")
        for k in sorted(result.metrics):
            if k.startswith(("loss/", "reward/", "eval/")):
                print(f"  {k} = {result.metrics[k]:.4g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
