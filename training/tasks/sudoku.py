"""Sudoku 4×4 (d1's planning task): all 288 grids, unique-solution puzzles, d1's reward.

A grid is a 16-character string of digits 1-4 read row by row; a puzzle is a grid with some
cells replaced by ``'0'`` (empty). There are exactly 288 valid 4×4 grids (rows, columns and the
four 2×2 boxes each hold 1-4 once), so uniqueness of a puzzle is checked exactly by counting the
grids that agree with its clues.

The reward is d1's (Zhao et al. 2025, diffu-GRPO): take the last ``<answer>...</answer>`` block of
the completion, keep its digits, pad with ``'0'`` / cut to 16, and score the fraction of the
puzzle's empty cells whose digit equals the solution's. No answer block (or no digit in it)
scores 0.

Prompt format (d1's: instructions, then ``"Solve the following Sudoku puzzle: <puzzle>"``; the
reply ends with ``<answer>`` + the 16 digits + ``</answer>``). :func:`prompt` with
``instructions=False`` keeps only the question line, for tiny models.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from core.errors import InputError
from training.data import jsonl_objects

__all__ = [
    "INSTRUCTIONS",
    "SudokuPuzzle",
    "all_grids",
    "answer_text",
    "count_solutions",
    "extract_answer",
    "generate",
    "is_valid_grid",
    "load_jsonl",
    "prompt",
    "reward",
    "write_jsonl",
]

CELLS = 16
ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)

INSTRUCTIONS = (
    "Fill in this 4x4 Sudoku. The puzzle is a string of 16 digits, row by row from the top "
    "left, and 0 marks an empty cell. Put a digit from 1 to 4 in every empty cell so that "
    "each row, each column and each 2x2 box holds 1, 2, 3 and 4 once. Give the full grid as "
    "16 digits with nothing between them, inside <answer> and </answer>."
)

# The 12 units (4 rows, 4 columns, 4 boxes) as cell indices.
_UNITS: tuple[tuple[int, ...], ...] = (
    tuple(tuple(4 * r + c for c in range(4)) for r in range(4))
    + tuple(tuple(4 * r + c for r in range(4)) for c in range(4))
    + tuple(tuple(4 * (br + r) + bc + c for r in range(2) for c in range(2))
            for br in (0, 2) for bc in (0, 2))
)


@dataclass(frozen=True)
class SudokuPuzzle:
    """A puzzle (``'0'`` = empty) and its unique solution, both 16-character strings."""

    puzzle: str
    solution: str

    @property
    def n_empty(self) -> int:
        """Number of empty cells."""
        return self.puzzle.count("0")


def is_valid_grid(grid: str) -> bool:
    """Whether ``grid`` is a complete valid 4×4 Sudoku (16 digits 1-4, every unit a permutation)."""
    if len(grid) != CELLS or any(ch not in "1234" for ch in grid):
        return False
    return all(sorted(grid[i] for i in unit) == ["1", "2", "3", "4"] for unit in _UNITS)


@lru_cache(maxsize=1)
def _grid_array() -> np.ndarray:
    """``(288, 16)`` int8 array of all valid grids, in lexicographic order."""
    grids: list[str] = []
    cells = ["0"] * CELLS

    def fill(pos: int) -> None:  # depth-first, trying digits in increasing order
        if pos == CELLS:
            grids.append("".join(cells))
            return
        for digit in "1234":
            if all(cells[j] != digit for unit in _UNITS if pos in unit for j in unit):
                cells[pos] = digit
                fill(pos + 1)
                cells[pos] = "0"

    fill(0)
    return np.array([[int(ch) for ch in g] for g in grids], dtype=np.int8)


def all_grids() -> list[str]:
    """All 288 valid 4×4 Sudoku grids, sorted."""
    return ["".join(str(d) for d in row) for row in _grid_array()]


def _check_puzzle(puzzle: str, name: str = "puzzle") -> None:
    if not isinstance(puzzle, str) or len(puzzle) != CELLS or any(c not in "01234" for c in puzzle):
        raise InputError(f"{name} {puzzle!r} must be 16 characters from 0-4 (0 = empty cell)")


def count_solutions(puzzle: str) -> int:
    """Number of valid grids that agree with the clues of ``puzzle`` (exact, by enumeration)."""
    _check_puzzle(puzzle)
    clues = np.array([int(ch) for ch in puzzle], dtype=np.int8)
    given = clues > 0
    return int(((_grid_array()[:, given] == clues[given]).all(axis=1)).sum())


def generate(n: int, seed: int, min_empty: int = 4, max_empty: int = 10) -> list[SudokuPuzzle]:
    """``n`` puzzles with exactly one solution and ``min_empty..max_empty`` empty cells.

    Each puzzle starts from a uniformly drawn grid; cells are emptied in a random order,
    skipping any whose removal would admit a second solution, until the drawn number of
    empty cells is reached (a new order is tried if it gets stuck). A 4×4 puzzle with a unique
    solution has at most 12 empty cells.

    Raises:
        InputError: an impossible range of empty cells.
    """
    if not 1 <= min_empty <= max_empty <= 12:
        raise InputError(f"need 1 <= min_empty ({min_empty}) <= max_empty ({max_empty}) <= 12: "
                         "a 4x4 puzzle with a unique solution has at most 12 empty cells")
    rng = np.random.default_rng(seed)
    grids = all_grids()
    out: list[SudokuPuzzle] = []
    while len(out) < n:
        solution = grids[int(rng.integers(len(grids)))]
        target = int(rng.integers(min_empty, max_empty + 1))
        cells = list(solution)
        emptied = 0
        for pos in rng.permutation(CELLS):
            saved, cells[pos] = cells[pos], "0"
            if count_solutions("".join(cells)) == 1:
                emptied += 1
                if emptied == target:
                    break
            else:
                cells[pos] = saved
        if emptied == target:
            out.append(SudokuPuzzle("".join(cells), solution))
    return out


def prompt(puzzle: str, instructions: bool = True) -> str:
    """The question for ``puzzle``, d1-style; ``instructions=False`` gives the bare question."""
    question = f"Solve the following Sudoku puzzle: {puzzle}\n"
    return f"{INSTRUCTIONS}\n\n{question}" if instructions else question


def answer_text(solution: str) -> str:
    """The reference reply: ``"<answer>\\n<16 digits>\\n</answer>"``."""
    return f"<answer>\n{solution}\n</answer>"


def extract_answer(completion: str) -> str | None:
    """Digits inside the last ``<answer>...</answer>`` match, or None if there is none.

    Matches are found left to right, each ending at the first ``</answer>`` after its
    ``<answer>`` (d1's non-greedy pattern).
    """
    matches = ANSWER_RE.findall(completion)
    if not matches:
        return None
    return "".join(ch for ch in matches[-1] if ch.isdigit())


def reward(completion: str, puzzle: str, solution: str) -> float:
    """d1's Sudoku reward: fraction of the empty cells of ``puzzle`` answered correctly.

    Args:
        completion: the model's text; only its last ``<answer>...</answer>`` block counts.
        puzzle: 16 characters, ``'0'`` for empty cells.
        solution: the 16-digit solution.

    Returns:
        A value in ``[0, 1]``: 0 without an answer block; otherwise the answer's digits, padded
        with ``'0'`` or cut to 16, are compared with ``solution`` on the empty cells.
    """
    _check_puzzle(puzzle)
    _check_puzzle(solution, "solution")
    answer = extract_answer(completion)
    empty = [i for i, ch in enumerate(puzzle) if ch == "0"]
    if not answer or not empty:
        return 0.0
    answer = answer[:CELLS].ljust(CELLS, "0")
    return sum(answer[i] == solution[i] for i in empty) / len(empty)


def load_jsonl(path: str | Path) -> list[SudokuPuzzle]:
    """Puzzles from a JSONL file with fields ``puzzle`` and ``solution`` (or d1's ``Puzzle`` /
    ``Solution``), each a 16-character string (or integer).

    Raises:
        InputError: a missing file, bad JSON, a missing field, or a solution that is not a valid
            grid agreeing with its puzzle; the message names the line.
    """
    out: list[SudokuPuzzle] = []
    for where, row in jsonl_objects(path, "sudoku", "puzzle, solution"):
        fields = []
        for name in ("puzzle", "solution"):
            value = row.get(name, row.get(name.capitalize()))
            if value is None:
                raise InputError(f"{where}: missing field {name!r}")
            fields.append(str(value).zfill(CELLS) if isinstance(value, int) else str(value))
        puz, sol = fields
        _check_puzzle(puz, f"{where}: puzzle")
        agrees = all(p in ("0", s) for p, s in zip(puz, sol, strict=True))
        if not is_valid_grid(sol) or not agrees:
            raise InputError(f"{where}: solution {sol!r} is not a valid grid that agrees with "
                             f"puzzle {puz!r}")
        out.append(SudokuPuzzle(puz, sol))
    return out


def write_jsonl(puzzles: list[SudokuPuzzle], path: str | Path) -> None:
    """Write puzzles as JSONL (``{"puzzle": ..., "solution": ...}`` per line)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("".join(json.dumps({"puzzle": p.puzzle, "solution": p.solution}) + "\n"
                                  for p in puzzles))
