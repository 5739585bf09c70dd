"""Synthetic tasks (generated offline from a seed) and their rewards.

- :mod:`training.tasks.arithmetic`: ``"12+7="`` -> ``"19"``; generator, checker, preference pairs.
- :mod:`training.tasks.bandit`: the MallowsPO dispersion bandit (Mallows preferences over arms).
- :mod:`training.tasks.sudoku`, :mod:`training.tasks.countdown`: d1's reasoning tasks.

User data (JSONL, ``datasets.load_from_disk``) is loaded by :mod:`training.data`.
"""

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402


def jsonl_objects(path: str | Path, kind: str, fields: str) -> Iterator[tuple[str, dict]]:
    """``(where, row)`` for each non-blank line of a JSONL task file (``where`` = ``file:line``).

    Raises:
        InputError: a missing file, invalid JSON, or a line that is not an object; the message
            names the file and line, and ``fields`` says what an object should hold.
    """
    import json

    from simopt.errors import InputError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{kind} file {str(path)!r} does not exist; check the path")
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: invalid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise InputError(f"{where}: expected an object with fields {fields}")
        yield where, row
