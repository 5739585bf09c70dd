"""``socrates ask``: natural-language experiment requests (filled by the planner issue)."""

from __future__ import annotations

import typer

from simopt.errors import InputError


def ask(
    request: str = typer.Argument(..., help="What to run, in plain words."),
    yes: bool = typer.Option(False, "--yes", help="Skip the approval step."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan only."),
    json_out: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Turn a request into validated runs, ask for approval, launch and compare them."""
    raise InputError("the experiment planner is not available yet in this version")
