"""Helpers shared by the CLI modules: consoles, JSON output, loading a user's problem file."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console

console = Console()
console_err = Console(stderr=True, soft_wrap=True)


def print_json(obj: Any) -> None:
    """Machine-readable output for ``--json`` (always to stdout, nothing else printed there)."""
    sys.stdout.write(json.dumps(obj, indent=2, default=_default) + "\n")


def _default(o: Any) -> Any:
    try:
        import numpy as np

        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, np.generic):
            return o.item()
    except ImportError:  # pragma: no cover
        pass
    if hasattr(o, "model_dump"):
        return o.model_dump(mode="json")
    return str(o)
