"""Sudoku 4x4 and Countdown: generators, d1's rewards on hand-made answers, JSONL loaders."""

from __future__ import annotations

import itertools
import json

import pytest

from simopt.errors import InputError
from training.tasks import countdown, sudoku

# --------------------------------------------------------------------------------------------
# Sudoku


def test_there_are_288_distinct_valid_grids():
    grids = sudoku.all_grids()
    assert len(grids) == 288 == len(set(grids))
    assert all(sudoku.is_valid_grid(g) for g in grids)
    # Independent count: 4! first rows, each completed by brute force over row permutations.
    rows = ["".join(p) for p in itertools.permutations("1234")]
    brute = sum(sudoku.is_valid_grid(a + b + c + d)
                for a in rows[:1] for b in rows for c in rows for d in rows)
    assert brute * 24 == 288


def test_is_valid_grid_rejects_broken_grids():
    good = sudoku.all_grids()[0]
    assert not sudoku.is_valid_grid(good[:15])
    assert not sudoku.is_valid_grid(good[:15] + "5")
    assert not sudoku.is_valid_grid("1234" * 4)  # rows fine, columns repeat
    assert sudoku.is_valid_grid("1234341221434321")
    assert not sudoku.is_valid_grid("1234234134124123")  # a Latin square, but boxes repeat
    swapped = good[1] + good[0] + good[2:]
    assert not sudoku.is_valid_grid(swapped)


def test_count_solutions():
    assert sudoku.count_solutions("0" * 16) == 288
    grid = sudoku.all_grids()[5]
    assert sudoku.count_solutions(grid) == 1
    with pytest.raises(InputError, match="16 characters"):
        sudoku.count_solutions("12")


def test_generated_puzzles_are_unique_and_seeded():
    puzzles = sudoku.generate(60, seed=0, min_empty=4, max_empty=12)
    for p in puzzles:
        assert sudoku.count_solutions(p.puzzle) == 1
        assert sudoku.is_valid_grid(p.solution)
        assert all(c in ("0", s) for c, s in zip(p.puzzle, p.solution, strict=True))
        assert 4 <= p.n_empty <= 12
    assert max(p.n_empty for p in puzzles) >= 10
    assert sudoku.generate(10, seed=0) == sudoku.generate(10, seed=0)
    assert sudoku.generate(10, seed=0) != sudoku.generate(10, seed=1)
    with pytest.raises(InputError, match="at most 12 empty cells"):
        sudoku.generate(1, seed=0, max_empty=13)


PUZZLE = "0200004031002431"  # 8 empty cells
SOLUTION = "4213134231242431"


def test_sudoku_reward_on_hand_made_answers():
    empty = [i for i, c in enumerate(PUZZLE) if c == "0"]
    assert len(empty) == 8
    assert sudoku.reward(f"<answer>\n{SOLUTION}\n</answer>", PUZZLE, SOLUTION) == 1.0
    # Formatting inside the block is ignored: only digits count.
    spaced = " ".join(SOLUTION[i:i + 4] for i in range(0, 16, 4))
    assert sudoku.reward(f"<answer>{spaced}</answer>", PUZZLE, SOLUTION) == 1.0
    # Two of the eight empty cells wrong.
    wrong = list(SOLUTION)
    for i in empty[:2]:
        wrong[i] = "1" if SOLUTION[i] != "1" else "2"
    assert sudoku.reward("<answer>" + "".join(wrong) + "</answer>", PUZZLE, SOLUTION) == 0.75
    # Given cells do not count: changing them leaves the score at 1.
    given_changed = "".join("9" if c != "0" else s for c, s in zip(PUZZLE, SOLUTION,
                                                                   strict=True))
    assert sudoku.reward(f"<answer>{given_changed}</answer>", PUZZLE, SOLUTION) == 1.0
    # Short answers are padded with '0' (wrong), long ones cut to 16.
    assert sudoku.reward(f"<answer>{SOLUTION[:8]}</answer>", PUZZLE, SOLUTION) == pytest.approx(
        sum(i < 8 for i in empty) / 8)
    assert sudoku.reward(f"<answer>{SOLUTION}1234</answer>", PUZZLE, SOLUTION) == 1.0
    # No block, an unclosed block or an empty block: 0.
    assert sudoku.reward(SOLUTION, PUZZLE, SOLUTION) == 0.0
    assert sudoku.reward(f"<answer>{SOLUTION}", PUZZLE, SOLUTION) == 0.0
    assert sudoku.reward("<answer>none</answer>", PUZZLE, SOLUTION) == 0.0
    # The last block counts.
    assert sudoku.reward(f"<answer>{SOLUTION}</answer> no, <answer>{'1' * 16}</answer>",
                         PUZZLE, SOLUTION) == pytest.approx(
        sum(SOLUTION[i] == "1" for i in empty) / 8)
    assert sudoku.reward(f"<answer>{'1' * 16}</answer><answer>{SOLUTION}</answer>",
                         PUZZLE, SOLUTION) == 1.0


def test_sudoku_prompt_and_reference_answer():
    text = sudoku.prompt(PUZZLE)
    assert PUZZLE in text and "<answer>" in text
    assert sudoku.prompt(PUZZLE, instructions=False) == (
        f"Solve the following Sudoku puzzle: {PUZZLE}\n")
    assert sudoku.reward(sudoku.answer_text(SOLUTION), PUZZLE, SOLUTION) == 1.0


def test_sudoku_jsonl_round_trip_and_errors(tmp_path):
    puzzles = sudoku.generate(5, seed=3)
    path = tmp_path / "s.jsonl"
    sudoku.write_jsonl(puzzles, path)
    assert sudoku.load_jsonl(path) == puzzles
    d1_style = tmp_path / "d1.jsonl"
    d1_style.write_text(json.dumps({"Puzzle": PUZZLE, "Solution": SOLUTION}) + "\n\n")
    assert sudoku.load_jsonl(d1_style) == [sudoku.SudokuPuzzle(PUZZLE, SOLUTION)]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"puzzle": PUZZLE, "solution": "1" * 16}) + "\n")
    with pytest.raises(InputError, match=r"bad.jsonl:1: solution '1111111111111111'"):
        sudoku.load_jsonl(bad)
    bad.write_text(json.dumps({"puzzle": PUZZLE}) + "\n")
    with pytest.raises(InputError, match="missing field 'solution'"):
        sudoku.load_jsonl(bad)
    bad.write_text("{not json\n")
    with pytest.raises(InputError, match="invalid JSON"):
        sudoku.load_jsonl(bad)
    with pytest.raises(InputError, match="does not exist"):
        sudoku.load_jsonl(tmp_path / "missing.jsonl")


# --------------------------------------------------------------------------------------------
# Countdown


@pytest.mark.parametrize(("completion", "numbers", "target", "expected"), [
    ("<answer>(25 - 5) * 3</answer>", [3, 5, 25], 60, 1.0),
    ("think... <answer> 3 * (25 - 5) </answer>", [25, 3, 5], 60, 1.0),
    ("<answer>25 - 5 * 3</answer>", [3, 5, 25], 60, 0.1),  # wrong value
    ("the answer is 60", [3, 5, 25], 60, 0.0),  # no answer block
    ("<answer>(25 - 5) * 3", [3, 5, 25], 60, 0.0),  # unclosed block
    ("<answer>25 + 25 + 5 + 5</answer>", [5, 25], 60, 0.1),  # numbers reused
    ("<answer>(25 - 5) * 3 * 1</answer>", [3, 5, 25], 60, 0.1),  # a number not given
    ("<answer>(25 - 5) * 3</answer>", [3, 5, 25, 7], 60, 0.1),  # a given number unused
    ("<answer>3 * 4 = 12</answer>", [3, 4], 12, 0.1),  # '=' is not an expression
    ("<answer>6 / 4 * 2</answer>", [6, 4, 2], 3, 1.0),  # exact rational arithmetic
    ("<answer>1 / 3 * 3</answer>", [1, 3, 3], 1, 1.0),
    ("<answer>4 / (2 - 2)</answer>", [4, 2, 2], 1, 0.1),  # division by zero
    ("<answer>2 ** 3</answer>", [2, 3], 8, 0.1),  # power is not one of the operations
    ("<answer>7 // 2</answer>", [7, 2], 3, 0.1),
    ("<answer>-3 + 5</answer>", [3, 5], 2, 1.0),  # unary minus is arithmetic
    ("<answer>1 + 1</answer> wait <answer>2 * 3</answer>", [2, 3], 6, 1.0),  # last block
    ("<answer>2 * 3</answer> wait <answer>1 + 1</answer>", [2, 3], 6, 0.1),
])
def test_countdown_reward_hand_computed(completion, numbers, target, expected):
    assert countdown.reward(completion, numbers, target) == expected


@pytest.mark.parametrize("payload", [
    "__import__('os').system('touch pwned')",
    "open('pwned', 'w').write('1')",
    "(lambda: open('pwned', 'w'))()",
    "[x for x in ().__class__.__bases__[0].__subclasses__()]",
    "9**9**9**9",
    "(" * 3000 + "1" + ")" * 3000,
    "1" + " + 1" * 10_000,
])
def test_countdown_malicious_answers_score_safely(payload, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    score = countdown.reward(f"<answer>{payload}</answer>", [1, 9], 10)
    assert score in (0.0, 0.1)
    assert not (tmp_path / "pwned").exists()
    assert countdown.evaluate_expression(payload) is None


def test_evaluate_expression():
    assert countdown.evaluate_expression("(1 + 2) * 3 - 4 / 8") == pytest.approx(8.5)
    assert countdown.evaluate_expression("2 * (3") is None
    assert countdown.evaluate_expression("1.5 + 1") is None  # integer literals only


def test_generated_countdown_problems_are_solvable():
    problems = countdown.generate(300, seed=0)
    for p in problems:
        assert countdown.reward(countdown.answer_text(p.solution), p.numbers, p.target) == 1.0
        assert 3 <= len(p.numbers) <= 4
        assert 1 <= p.target <= 100 and all(1 <= n <= 99 for n in p.numbers)
        assert countdown.uses_exactly(p.solution, p.numbers)
    assert countdown.generate(20, seed=0) == problems[:20]
    assert countdown.generate(20, seed=1) != problems[:20]
    with pytest.raises(InputError, match="min_numbers"):
        countdown.generate(1, seed=0, min_numbers=1)


def test_countdown_prompt():
    text = countdown.prompt([3, 5, 25], 60)
    assert "[3, 5, 25]" in text and "60" in text and "<answer>" in text
    assert countdown.prompt((3, 5), 8, instructions=False) == "Using the numbers [3, 5], make 8.\n"


def test_countdown_jsonl_round_trip_and_errors(tmp_path):
    problems = countdown.generate(4, seed=2)
    path = tmp_path / "c.jsonl"
    countdown.write_jsonl(problems, path)
    assert countdown.load_jsonl(path) == problems
    d1_style = tmp_path / "d1.jsonl"
    d1_style.write_text(json.dumps({"nums": [3, 5, 25], "target": 60}) + "\n")
    assert countdown.load_jsonl(d1_style) == [countdown.CountdownProblem((3, 5, 25), 60, "")]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"numbers": [3, "x"], "target": 60}) + "\n")
    with pytest.raises(InputError, match=r"bad.jsonl:1: field 'numbers'"):
        countdown.load_jsonl(bad)
    bad.write_text(json.dumps({"numbers": [3], "target": 6.5}) + "\n")
    with pytest.raises(InputError, match="field 'target'"):
        countdown.load_jsonl(bad)
