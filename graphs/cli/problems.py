"""``socrates problems list|show``."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True)


@app.command("list")
def list_cmd() -> None:
    """List the built-in problems."""
    from simopt import list_problems

    for name in list_problems():
        print(name)
