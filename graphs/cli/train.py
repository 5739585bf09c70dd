"""``socrates train ALGO [--config FILE] [--set key=value ...] [--json]``.

One sub-command per algorithm in the config registry :data:`training.config.ALGORITHM_CONFIGS`
(every family registers there, so a new family appears here without touching this file). The
config's ``algorithm`` must match ALGO, or is filled in from it when the file leaves it out.
The folders a run writes (``output_dir``, ``teacher.cache_dir``) must lie inside the runs
directory (the settings' ``runs_dir``: ``$SOCRATES_RUNS_DIR``, ``socrates.toml`` or ``./runs``),
symlinks resolved; the trainer writes there too (:func:`training.runs.runs_dir` reads the same
settings).
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

import training
from core.errors import InputError
from graphs.cli.common import console, print_json
from graphs.settings import load_settings
from training.config import apply_overrides, check_paths, load_families, parse_config, read_yaml

app = typer.Typer(no_args_is_help=True)

HELP = {
    "dpo": "DPO (Rafailov et al. 2023): -log sigmoid(beta * log-ratio margin).",
    "ipo": "IPO (Azar et al. 2023): squared regression of the log-ratio margin to 1/(2 beta).",
    "simpo": "SimPO (Meng et al. 2024): reference-free, length-normalized, with a margin; "
    "--set preference.mallows=theta|phi adds MallowsPO on top.",
    "mallowspo-theta": "MallowsPO-theta (Chen et al. 2025): DPO scaled by the dispersion "
    "c(x) = -s log Hn(x) of the reference entropy.",
    "opd+": "OPD+: on-policy distillation with bias-corrected f-divergence advantages.",
    "opd": "OPD: on-policy distillation with the stop-gradient advantage -f(u).",
    "gkd": "GKD: on-policy distillation with the full-vocabulary generalized JSD.",
    "mallowspo-phi": "MallowsPO-phi (Chen et al. 2025): exact Kendall-Mallows link "
    "-log g_phi(delta) with phi(x) = Hn(x)^s.",
}


def run_train(algorithm: str, config: Path | None, overrides: list[str], json_out: bool,
              progress: bool) -> None:
    """Validate, train, print the summary (table or JSON)."""
    data = read_yaml(config) if config is not None else {}
    declared = data.get("algorithm")
    if declared is not None and declared != algorithm:
        raise InputError(f"config {str(config)!r} says algorithm {declared!r} but the command "
                         f"is `socrates train {algorithm}`; make them agree")
    data["algorithm"] = algorithm
    cfg = parse_config(apply_overrides(data, overrides), str(config or "--set"))
    check_paths(cfg, load_settings().runs_dir)  # the run writes only under the runs directory
    result = training.train(cfg, progress=progress and not json_out)
    payload = {"run_id": result.run_id, "output_dir": str(result.output_dir),
               "status": result.status, "metrics": result.metrics}
    if json_out:
        print_json(payload)
        return
    table = Table(title=f"{algorithm} run {result.run_id}")
    table.add_column("metric")
    table.add_column("final", justify="right")
    for key in sorted(result.metrics):
        if key.startswith(("loss/", "reward/", "eval/", "dispersion/", "perf/tokens_per_s")):
            table.add_row(key, f"{result.metrics[key]:.4g}")
    console.print(table)
    console.print(f"run folder: {result.output_dir}")


def _command(algorithm: str):
    def command(
        config: Path = typer.Option(None, "--config", "-c", help="YAML run config."),
        overrides: list[str] = typer.Option(
            None, "--set", help="Override a value, e.g. --set preference.beta=0.2 (repeatable)."
        ),
        json_out: bool = typer.Option(False, "--json", help="Machine-readable output."),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bar."),
    ) -> None:
        run_train(algorithm, config, overrides or [], json_out, progress)

    command.__doc__ = (f"{HELP.get(algorithm, f'Train with {algorithm}.')} Values: config "
                       "defaults, then --config, then --set.")
    return command


for _name in sorted(load_families()):
    app.command(_name)(_command(_name))
