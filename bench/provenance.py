"""Where a bench's results come from: the git commit of the checkout, and whether the code the
bench runs has uncommitted changes (edits elsewhere in the tree do not count).

Shared by the scripts of bench/, which put the repository root on ``sys.path`` and import it as
``from bench import provenance``. Every function runs git in ``root`` (default: this
repository's root) and never raises: where git is missing, times out or finds no repository, a
hash reads ``"?"`` (or the caller's ``unknown``) and no path counts as changed.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: what a git answer reads when git cannot give one
UNKNOWN = "?"
#: the default note after a hash when the code a bench runs has uncommitted changes
DIRTY_NOTE = " (+ uncommitted changes to the code it runs)"
TIMEOUT_S = 30


def _run(args: Iterable[str], root: str | Path) -> str | None:
    """``git ARGS``'s stdout in ``root``; None when git is missing, times out or fails."""
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                             timeout=TIMEOUT_S)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def git(*args: str, root: str | Path = ROOT) -> str:
    """``git ARGS``'s output, stripped; ``"?"`` when git is unavailable or the command fails."""
    out = _run(args, root)
    return UNKNOWN if out is None else out.strip()


def changes(paths: Iterable[str], root: str | Path = ROOT, untracked: bool = True) -> list[str]:
    """The lines of ``git status --porcelain -- PATHS`` (paths relative to ``root``): the
    uncommitted changes to those paths, untracked files included unless ``untracked`` is False.
    Empty when none of them changed, when ``paths`` is empty, or when git cannot tell."""
    paths = [paths] if isinstance(paths, str) else list(paths)
    if not paths:  # ``git status --`` with no path would report the whole tree
        return []
    flags = [] if untracked else ["--untracked-files=no"]
    out = _run(["status", "--porcelain", *flags, "--", *paths], root)
    return [line for line in (out or "").splitlines() if line.strip()]


def dirty(paths: Iterable[str], root: str | Path = ROOT, untracked: bool = True) -> bool:
    """Whether any of ``paths`` (relative to ``root``) has uncommitted changes; False when git
    cannot tell."""
    return bool(changes(paths, root=root, untracked=untracked))


def commit(paths: Iterable[str] | None = None, short: bool = False, *,
           root: str | Path = ROOT, note: str = DIRTY_NOTE, untracked: bool = True,
           unknown: str = UNKNOWN) -> str:
    """HEAD's hash (abbreviated when ``short``), followed by ``note`` when ``paths`` is given
    and one of them has uncommitted changes (see :func:`dirty`); ``unknown`` when git cannot
    tell."""
    head = git("rev-parse", *(["--short"] if short else []), "HEAD", root=root)
    if head in ("", UNKNOWN):
        return unknown
    if paths is not None and dirty(paths, root=root, untracked=untracked):
        head += note
    return head


def run_record(script: str, argv: Iterable[str], paths: Iterable[str] | None = None, *,
               root: str | Path = ROOT) -> dict[str, str]:
    """What produced a results file, read when the run starts (not after hours of other
    commits): ``commit`` (see :func:`commit`, ``paths`` being the code the bench runs),
    ``command`` (``python <script> <argv>``) and ``date_utc``."""
    import datetime
    import shlex

    return {"commit": commit(paths, root=root),
            "command": shlex.join(["python", script, *argv]),
            "date_utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")}


def describe(record: dict[str, str]) -> str:
    """One markdown line for a results file's header from :func:`run_record`."""
    return (f"Commit `{record['commit']}`; command: `{record['command']}`; "
            f"run {record['date_utc']} UTC.")
