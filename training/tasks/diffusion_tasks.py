"""The masked-diffusion family's tasks behind one interface: problems and their rewards.

A :class:`Problem` is what the trainers need from any task: the prompt text, a reference reply
(for SFT) and the key its reward is computed from. :data:`TASKS` maps ``data.task`` to how its
problems are generated, read from JSONL and rewarded:

- ``sudoku``, ``countdown``: d1's tasks and rewards (:mod:`training.tasks.sudoku`,
  :mod:`training.tasks.countdown`).
- ``letters``: the DiFFPO frontier task (:mod:`training.tasks.letters`); ``key`` is
  ``(kind, letters)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.errors import InputError

if TYPE_CHECKING:
    from training.diffusion_config import DiffusionDataSection, DiffusionRunConfig

__all__ = ["TASKS", "Problem", "TaskSpec", "build_problems", "task_reward"]


@dataclass(frozen=True)
class Problem:
    """One task instance: prompt text, reference reply, and what the reward needs."""

    prompt: str
    answer: str
    key: tuple[Any, ...]  # sudoku: (puzzle, solution); countdown: (numbers, target);
    # letters: (kind, letters)


@dataclass(frozen=True)
class TaskSpec:
    """How one task makes, loads and rewards its problems.

    Attributes:
        make: ``(data section, n, seed) -> problems``.
        load: ``(data section, path) -> problems``.
        reward: ``(completion text, *problem.key) -> float``.
    """

    make: Callable[[DiffusionDataSection, int, int], list[Problem]]
    load: Callable[[DiffusionDataSection, str], list[Problem]]
    reward: Callable[..., float]


def _sudoku_problems(puzzles: list[Any], instructions: bool) -> list[Problem]:
    from training.tasks import sudoku

    return [Problem(sudoku.prompt(p.puzzle, instructions), sudoku.answer_text(p.solution),
                    (p.puzzle, p.solution)) for p in puzzles]


def _countdown_problems(items: list[Any], instructions: bool) -> list[Problem]:
    from training.tasks import countdown

    return [Problem(countdown.prompt(p.numbers, p.target, instructions),
                    countdown.answer_text(p.solution) if p.solution else "",
                    (tuple(p.numbers), p.target)) for p in items]


def _letters_problems(items: list[Any]) -> list[Problem]:
    from training.tasks import letters

    return [Problem(letters.prompt(p.kind, p.letters), letters.answer_text(p.answer),
                    (p.kind, p.letters)) for p in items]


def _sudoku() -> TaskSpec:
    from training.tasks import sudoku

    def make(d: DiffusionDataSection, n: int, seed: int) -> list[Problem]:
        s = d.sudoku
        return _sudoku_problems(sudoku.generate(n, seed, s.min_empty, s.max_empty),
                                d.instructions)

    return TaskSpec(make, lambda d, path: _sudoku_problems(sudoku.load_jsonl(path),
                                                           d.instructions), sudoku.reward)


def _countdown() -> TaskSpec:
    from training.tasks import countdown

    def make(d: DiffusionDataSection, n: int, seed: int) -> list[Problem]:
        c = d.countdown
        return _countdown_problems(countdown.generate(n, seed, c.min_numbers, c.max_numbers,
                                                      c.max_number, c.max_target),
                                   d.instructions)

    return TaskSpec(make, lambda d, path: _countdown_problems(countdown.load_jsonl(path),
                                                              d.instructions), countdown.reward)


def _letters() -> TaskSpec:
    from training.tasks import letters

    def make(d: DiffusionDataSection, n: int, seed: int) -> list[Problem]:
        s = d.letters
        return _letters_problems(letters.generate(n, seed, s.k, s.alphabet_size, s.kinds))

    return TaskSpec(make, lambda d, path: _letters_problems(letters.load_jsonl(path)),
                    letters.reward)


TASKS: dict[str, Callable[[], TaskSpec]] = {
    "sudoku": _sudoku, "countdown": _countdown, "letters": _letters}


def task_reward(task: str) -> Callable[..., float]:
    """The reward function of ``task``: ``(completion, *problem.key) -> float``."""
    return TASKS[task]().reward


def build_problems(cfg: DiffusionRunConfig) -> tuple[list[Problem], list[Problem]]:
    """Training and held-out problems: read from ``data.path`` / ``data.eval_path`` or generated.

    Generated held-out problems come from another seed and exclude every training prompt.
    """
    data = cfg.data
    spec = TASKS[data.task]()
    train = spec.load(data, data.path) if data.path else spec.make(data, data.n_train, cfg.seed)
    if data.eval_path:
        held = spec.load(data, data.eval_path)[: data.n_eval]
    else:
        seen = {p.prompt for p in train}
        held, used = [], set()
        for p in spec.make(data, 4 * data.n_eval + 16, cfg.seed + 1):
            if p.prompt not in seen and p.prompt not in used and len(held) < data.n_eval:
                held.append(p)
                used.add(p.prompt)
    if not train:
        raise InputError("data: no training problems; check data.path or data.n_train")
    return train, held
