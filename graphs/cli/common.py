"""Helpers shared by the CLI modules: consoles, JSON output, the settings' log level."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import numpy as np
from rich.console import Console

console = Console()
console_err = Console(stderr=True, soft_wrap=True)


def parse_key_values(items: list[str], flag: str, example: str) -> dict[str, Any]:
    """``KEY=VALUE`` items of a repeatable option as a dict; each value read as YAML (``3``,
    ``0.5``, ``true``, ``null``, ``[1, 2]``), or kept as text where it is not valid YAML.

    Raises:
        InputError: an item without ``=`` or with an empty key (``example`` shows the form).
    """
    import yaml

    from core.errors import InputError

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"{flag} {item!r} is not key=value; write e.g. {flag} {example}")
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = raw
    return out


def print_json(obj: Any) -> None:
    """Machine-readable output for ``--json`` (always to stdout, nothing else printed there)."""
    sys.stdout.write(json.dumps(obj, indent=2, default=_default) + "\n")


def _default(o: Any) -> Any:
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, np.generic):
        return o.item()
    if hasattr(o, "model_dump"):
        return o.model_dump(mode="json")
    return str(o)


def configure_logging(level: str) -> None:
    """Send the ``socrates.*`` loggers (LLM calls, retries, fallbacks) to stderr at ``level``,
    the settings' ``log_level`` (``SOCRATES_LOG_LEVEL`` or ``socrates.toml``)."""
    logger = logging.getLogger("socrates")
    logger.setLevel(level)
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record comes (rich and tests swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)
