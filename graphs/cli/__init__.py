"""The ``socrates`` command line (typer + rich).

Each sub-command group lives in its own module with a ``typer.Typer`` named ``app``. User
mistakes raise :class:`core.errors.InputError` (or any :class:`SocratesError`); :func:`main`
is the one boundary that turns them into a single line on stderr and exit code 2.
"""

from __future__ import annotations

import sys

import click
import typer

try:  # typer >= 0.20 vendors its own click
    from typer._click import exceptions as _tclick
except ImportError:  # pragma: no cover - older typer uses click itself
    _tclick = click.exceptions

from core.errors import InputError, SocratesError
from graphs.cli import ask, doctor, optimize, problems, runs, train
from graphs.cli.common import configure_logging, console_err
from graphs.settings import load_settings

app = typer.Typer(
    name="socrates",
    help="socrates-lab: SOCRATES simulation optimization and an experiment planner for "
    "OPD+, MallowsPO and DiFFPO training runs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _settings_at_the_edge() -> None:
    # the settings are read once here, before any command: a bad socrates.toml is one error line
    configure_logging(load_settings().log_level)


app.command("doctor")(doctor.doctor)
app.command("optimize")(optimize.optimize)
app.command("ask")(ask.ask)
app.add_typer(problems.app, name="problems", help="List and show the built-in problems.")
app.add_typer(train.app, name="train", help="Train a model with one algorithm from a config.")
app.add_typer(runs.app, name="runs", help="List, show and compare runs in the registry.")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``socrates`` console script; returns the exit code."""
    args = sys.argv[1:] if argv is None else list(argv)
    command = typer.main.get_command(app)
    try:
        command.main(args=args, prog_name="socrates", standalone_mode=False)
    except (click.exceptions.Exit, typer.Exit) as exc:
        return int(getattr(exc, "exit_code", 0) or 0)
    except (click.exceptions.Abort, typer.Abort):
        console_err.print("aborted")
        return 130
    except (click.ClickException, _tclick.ClickException) as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            return 0  # `socrates` alone prints its help
        # bad option, missing argument, unknown value: one line, exit 2
        console_err.print(f"error: {exc.format_message()}", markup=False, highlight=False)
        return 2
    except (SocratesError, FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        msg = str(exc) if isinstance(exc, SocratesError) else f"{type(exc).__name__}: {exc}"
        console_err.print(f"error: {msg}", markup=False, highlight=False)
        return 2 if isinstance(exc, InputError | FileNotFoundError | IsADirectoryError) else 1
    except KeyboardInterrupt:
        console_err.print("interrupted")
        return 130
    return 0


def run() -> None:  # pragma: no cover - console script shim
    sys.exit(main())
