"""``socrates runs list|show ID|compare ID ID ... [--metric M]``: the run registry."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from core.errors import InputError
from graphs.cli.common import console, print_json
from training.runs import STATUSES, RunRegistry, compare, show

app = typer.Typer(no_args_is_help=True)


@app.command("list")
def list_cmd(
    status: str = typer.Option(None, "--status", help="queued, running, finished or failed."),
    algorithm: str = typer.Option(None, "--algorithm", help="Only this algorithm."),
    limit: int = typer.Option(50, "--limit", min=1, help="At most this many runs."),
    json_out: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List runs, newest first."""
    if status is not None and status not in STATUSES:
        raise InputError(f"--status {status!r} is not one of {', '.join(STATUSES)}")
    records = RunRegistry().list(status=status, algorithm=algorithm, limit=limit)
    if json_out:
        print_json([r.__dict__ for r in records])
        return
    table = Table(title="runs")
    table.add_column("id", no_wrap=True)  # ids are what users copy: never truncate them
    table.add_column("algorithm", no_wrap=True)
    for col in ("status", "ended", "loss/total", "reward/accuracy"):
        table.add_column(col)
    for r in records:
        table.add_row(r.id, r.algorithm, r.status, r.ended or "",
                      _fmt(r.metrics.get("loss/total")), _fmt(r.metrics.get("reward/accuracy")))
    console.print(table)


@app.command("show")
def show_cmd(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    json_out: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Show one run: registry row, summary and last metrics."""
    info = show(run_id)
    if json_out:
        print_json(info)
        return
    rec = info["record"]
    table = Table(title=f"run {rec['id']}", show_header=False)
    for key in ("algorithm", "name", "status", "created", "started", "ended", "output_dir",
                "config_path", "error"):
        if rec.get(key):
            table.add_row(key, str(rec[key]))
    for key, value in sorted((info.get("last_metrics") or rec["metrics"]).items()):
        table.add_row(key, _fmt(value))
    console.print(table)


@app.command("compare")
def compare_cmd(
    run_ids: list[str] = typer.Argument(..., help="Two or more run ids."),
    metric: str = typer.Option("loss/total", "--metric", "-m", help="Metric to plot."),
    out: Path = typer.Option(None, "--out", help="PNG path (default under the runs dir)."),
    json_out: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Compare runs on one metric: a table of final values and a plot over steps."""
    rows, plot = compare(run_ids, metric=metric, out_path=out)
    if json_out:
        print_json({"metric": metric, "runs": rows, "plot": str(plot)})
        return
    table = Table(title=f"{metric}")
    table.add_column("id", no_wrap=True)
    for col in ("algorithm", "status", "final", "steps"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["id"], r["algorithm"], r["status"], _fmt(r["final"]), str(r["steps"]))
    console.print(table)
    console.print(f"plot: {plot}")


def _fmt(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
