"""``socrates problems list|show NAME``: the built-in benchmark problems."""

from __future__ import annotations

import math

import typer

from graphs.cli.common import console, print_json

app = typer.Typer(no_args_is_help=True)


def _bound(v: float) -> str:
    return "-inf" if v == -math.inf else ("inf" if v == math.inf else f"{v:g}")


def problem_summary(name: str) -> dict:
    """A JSON-able description of a built-in problem (name, sense, variables, x0, optimum)."""
    from simopt import get_problem

    p = get_problem(name)
    out = p.to_dict()
    out["dim"] = p.dim
    out["known_optimum"] = (
        None if p.known_optimum is None
        else {"x": [float(v) for v in p.known_optimum[0]], "f": float(p.known_optimum[1]),
              "se": float(p.known_optimum_se)}
    )
    return out


@app.command("list")
def list_cmd(json_out: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """List the built-in problems with their sense, dimension and default budget."""
    from simopt import list_problems

    rows = []
    for name in list_problems():
        try:
            rows.append(problem_summary(name))
        except ImportError:  # a problem module not installed in this checkout
            continue
    if json_out:
        print_json([{k: r[k] for k in ("name", "minimize", "dim", "default_budget")} for r in rows])
        return
    from rich.table import Table

    table = Table(title="built-in problems")
    for col in ("name", "sense", "dim", "default budget", "known optimum f"):
        table.add_column(col)
    for r in rows:
        opt = r["known_optimum"]
        table.add_row(
            r["name"], "min" if r["minimize"] else "max", str(r["dim"]),
            str(r["default_budget"]), "-" if opt is None else f"{opt['f']:.6g}",
        )
    console.print(table)


@app.command("show")
def show_cmd(
    name: str = typer.Argument(..., help="Problem name, e.g. CNTNEWS-1 (case-insensitive)."),
    json_out: bool = typer.Option(False, "--json", help="Machine-readable output."),
):
    """Show one problem: description, variables, sense, start, budget, known optimum."""
    r = problem_summary(name)
    if json_out:
        print_json(r)
        return
    console.print(f"[bold]{r['name']}[/bold] ({'minimize' if r['minimize'] else 'maximize'}, "
                  f"dim {r['dim']}, default budget {r['default_budget']})")
    console.print(r["description"], markup=False, highlight=False)
    from rich.table import Table

    table = Table()
    for col in ("variable", "lower", "upper", "integer", "x0"):
        table.add_column(col)
    for v, x0 in zip(r["variables"], r["x0"], strict=True):
        table.add_row(v["name"], _bound(v["lower"]), _bound(v["upper"]),
                      "yes" if v["integer"] else "no", f"{x0:g}")
    console.print(table)
    if r["observables"]:
        console.print("observables: " + ", ".join(r["observables"]), markup=False)
    if r["known_optimum"] is not None:
        o = r["known_optimum"]
        console.print(f"known optimum: f = {o['f']:.6g} at x = {o['x']}", markup=False)
