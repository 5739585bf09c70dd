"""``socrates doctor``: what is installed, which LLM is configured and whether it answers."""

from __future__ import annotations

import importlib.metadata as md
import platform

import typer
from rich.table import Table

from graphs.cli.common import console, print_json
from graphs.settings import load_settings

PACKAGES = [
    "socrates-lab", "torch", "transformers", "accelerate", "botorch", "langgraph",
    "langgraph-checkpoint-sqlite", "openai", "pydantic", "causal-learn", "cma", "numpy",
]


def _llm_status(spec: str, timeout: float) -> str:
    if spec == "offline":
        return "offline (deterministic rules and algorithms; no network)"
    import os

    from openai import OpenAI

    base = os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1")
    try:
        client = OpenAI(
            base_url=os.environ.get("OPENAI_BASE_URL"),
            api_key=os.environ.get("OPENAI_API_KEY", "not-needed"),
            timeout=min(timeout, 10.0),
            max_retries=0,
        )
        models = [m.id for m in client.models.list().data][:5]
        return f"{spec} at {base}: answers (models: {', '.join(models) or 'none listed'})"
    except Exception as exc:  # a status report: any failure is the answer
        return f"{spec} at {base}: NOT reachable ({type(exc).__name__})"


def doctor(
    json_out: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Print versions, the configured LLM backend and whether it answers, devices and paths."""
    settings = load_settings()
    versions = {}
    for p in PACKAGES:
        try:
            versions[p] = md.version(p)
        except md.PackageNotFoundError:
            versions[p] = "not installed"
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        device += f" ({torch.cuda.get_device_name(0)})"
    report = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "llm": _llm_status(settings.llm, settings.llm_timeout),
        "torch_device": device,
        "torch_threads": torch.get_num_threads(),
        "runs_dir": str(settings.runs_dir.resolve()),
    }
    if json_out:
        print_json(report)
        return
    table = Table(title="socrates doctor", show_header=False)
    table.add_column("item", style="bold")
    table.add_column("value")
    table.add_row("python", f"{report['python']} on {report['platform']}")
    for k, v in versions.items():
        table.add_row(k, v)
    table.add_row("LLM backend", report["llm"])
    table.add_row("torch device", f"{device}, {report['torch_threads']} threads")
    table.add_row("runs directory", report["runs_dir"])
    console.print(table)
