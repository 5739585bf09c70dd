"""``socrates optimize``: run a solver (or SOCRATES) on a problem."""

from __future__ import annotations

import typer

from simopt.errors import InputError


def optimize(
    problem: str = typer.Option(..., "--problem", help="Built-in problem name."),
    solver: str = typer.Option("gp_bo", "--solver", help="Solver name."),
    budget: int = typer.Option(None, "--budget", help="Replications of the real system."),
    seed: int = typer.Option(0, "--seed"),
    json_out: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Optimize a problem with one solver."""
    raise InputError("optimize is not available yet")
