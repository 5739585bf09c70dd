"""How well the causal-skeleton agent reads a system: original descriptions vs paraphrases.

For every built-in problem, the skeleton is proposed from its own description and from each
paraphrase in ``tests/data/paraphrases.json`` (written by different "users" before the offline
policy was tuned: terse notes, verbose prose, a manager's words, math/spec notation) and in
``tests/data/paraphrases_heldout.json`` (bullets, e-mail, textbook: written before the reader of
issue #17 was, and never used to tune it), and compared with the problem's true skeleton:
directed-edge precision, recall and structural Hamming distance
(``agents.causal.skeleton_metrics``). Modes:

* ``text``: the offline policy on the description alone (no data);
* ``text+data``: the offline policy on the description and the data a SOCRATES run collects
  before its skeleton stage (the default data plan: ``data_fraction`` of the problem's default
  budget in designs of ``reps_per_design`` replications, ``SocratesConfig``'s defaults);
* ``data``: the same data with an empty description (what causal discovery alone gives);
* ``llm``: with ``--llm openai:MODEL`` (or ``SKELETON_QUALITY_LLM``), the LLM path with data.

Writes ``bench/results/skeleton_quality.md`` and ``.json``.

Run: .venv/bin/python bench/skeleton_quality.py [--seed 0] [--llm openai:MODEL]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from agents.causal import propose_skeleton, skeleton_metrics
from simopt.problems import get_problem, list_problems
from simopt.socrates import SocratesConfig, collect

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import provenance  # noqa: E402

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "paraphrases.json"
HELDOUT = CORPUS.with_name("paraphrases_heldout.json")
RESULTS = Path(__file__).resolve().parent / "results"
# SocratesConfig's defaults (graphs/socrates_state.py): data_fraction 0.15, reps_per_design 5.
_DEFAULTS = SocratesConfig(budget=1000)
DATA_FRACTION, REPS_PER_DESIGN, BOX_WIDTH = (
    _DEFAULTS.data_fraction, _DEFAULTS.reps_per_design, _DEFAULTS.data_box_width)


def load_corpus(path: Path = CORPUS) -> list[dict]:
    """The paraphrases: ``[{"id", "problem", "style", "formulas", "text"}, ...]``."""
    return json.loads(path.read_text())["paraphrases"]


def with_description(name: str, text: str):
    """A fresh instance of built-in problem ``name`` whose description is ``text``."""
    problem = get_problem(name)
    problem.description = text
    return problem


def default_data(name: str, seed: int):
    """The data a default SOCRATES run collects on ``name`` before its skeleton stage."""
    problem = get_problem(name)
    return collect(problem, round(DATA_FRACTION * problem.default_budget), REPS_PER_DESIGN,
                   seed, box_width=BOX_WIDTH)


def evaluate(name: str, text: str, mode: str, data, llm=None, seed: int = 0) -> dict:
    """Metrics of the skeleton proposed for ``name`` from ``text`` in ``mode``."""
    problem = with_description(name, "" if mode == "data" else text)
    t0 = time.perf_counter()
    sk = propose_skeleton(problem, llm=llm if mode == "llm" else None,
                          data=None if mode == "text" else data, seed=seed)
    m = skeleton_metrics(sk, problem.true_skeleton)
    m["seconds"] = time.perf_counter() - t0
    m["latent"] = [n.name for n in sk.nodes if n.role == "latent"]
    m["formulas"] = sum(1 for n in sk.nodes if n.mechanism is not None and n.mechanism.formula)
    return m


def run(seed: int = 0, llm: str | None = None, problems: list[str] | None = None) -> dict:
    warnings.filterwarnings("ignore")
    corpus = [dict(p, kind="paraphrase") for p in load_corpus()]
    corpus += [dict(p, kind="heldout") for p in load_corpus(HELDOUT)]
    modes = ["text", "text+data", "data"] + (["llm"] if llm else [])
    rows = []
    for name in problems or list_problems():
        data = default_data(name, seed)
        variants = [("original", "original", "original", get_problem(name).description)]
        variants += [(p["id"], p["style"], p["kind"], p["text"]) for p in corpus
                     if p["problem"] == name]
        for vid, style, kind, text in variants:
            for mode in modes:
                if mode == "data" and vid != "original":
                    continue  # the data-only skeleton does not read the text
                m = evaluate(name, text, mode, data, llm, seed)
                rows.append({"problem": name, "variant": vid, "style": style, "kind": kind,
                             "mode": mode, **m})
                print(f"{name:15s} {vid:26s} {mode:9s} P={m['precision']:.2f} "
                      f"R={m['recall']:.2f} SHD={m['shd']} latent={m['latent']}", flush=True)
    return {"seed": seed, "llm": llm, "rows": rows,
            "environment": f"Python {platform.python_version()}, {platform.machine()}, "
                           f"numpy {np.__version__}"}


def summarize(result: dict) -> dict:
    """Means over problems: originals vs paraphrases, per mode; per-problem paraphrase means."""
    rows = result["rows"]
    out: dict = {}
    for mode in sorted({r["mode"] for r in rows}):
        for kind in ("original", "paraphrase", "heldout"):
            sel = [r for r in rows if r["mode"] == mode and r.get("kind", "paraphrase") == kind]
            if not sel:
                continue
            per_problem = {}
            for name in dict.fromkeys(r["problem"] for r in sel):
                mine = [r for r in sel if r["problem"] == name]
                per_problem[name] = {k: float(np.mean([r[k] for r in mine]))
                                     for k in ("precision", "recall", "shd")}
                per_problem[name]["min_recall"] = float(min(r["recall"] for r in mine))
            out[f"{mode}/{kind}"] = {
                "precision": float(np.mean([v["precision"] for v in per_problem.values()])),
                "recall": float(np.mean([v["recall"] for v in per_problem.values()])),
                "shd": float(np.mean([v["shd"] for v in per_problem.values()])),
                "worst_problem_recall": float(min(v["recall"] for v in per_problem.values())),
                "worst_single_recall": float(min(v["min_recall"] for v in per_problem.values())),
                "per_problem": per_problem,
            }
    return out


def markdown(result: dict, summary: dict) -> str:
    lines = [
        "# Skeleton quality: original descriptions vs paraphrases",
        "",
        "Each built-in problem's true skeleton against the skeleton the agent proposes from its "
        "own description and from each paraphrase in `tests/data/paraphrases.json` (written "
        "before the offline policy was tuned; terse, verbose, manager's words, math/spec "
        "notation). Directed-edge precision and recall, SHD (missing, extra or reversed pair: "
        "one each). `text`: the description alone; `text+data`: the description and the data "
        "a default SOCRATES run collects before its skeleton stage (15% of the default budget "
        "in designs of 5 replications over SOCRATES's data box: finite bounds kept, infinite "
        "sides at x0 ± max(1, |x0|)); `data`: that data with an empty description. "
        "`heldout`: the paraphrases of `tests/data/paraphrases_heldout.json` (bullets, e-mail, "
        "textbook), written before the issue #17 reader and never used to tune it.",
        "",
        "Targets (issue #17, on paraphrases with text and data): mean recall >= 0.8, mean "
        "precision >= 0.7, no problem below recall 0.6. The reader before issue #17 (commit "
        "e105f41, same bench) gave: text/paraphrase 0.49 / 0.61 (precision / recall), "
        "text+data/paraphrase 0.71 / 0.64, data/original 0.66 / 0.63.",
        "",
        f"Seed {result['seed']}; {result['environment']}.",
        "",
        f"- commit: {provenance.commit(unknown='unknown')}",
        f"- command: `python bench/skeleton_quality.py {' '.join(sys.argv[1:])}`",
        f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"- LLM: {result['llm']}" if result["llm"] else "- LLM: none configured (offline policy)",
        "",
        "## Means over problems (each problem's paraphrases averaged first)",
        "",
        "| mode / texts | precision | recall | SHD | worst problem recall | worst single "
        "recall |",
        "|---|---|---|---|---|---|",
    ]
    for key, s in summary.items():
        lines.append(f"| {key} | {s['precision']:.2f} | {s['recall']:.2f} | {s['shd']:.1f} | "
                     f"{s['worst_problem_recall']:.2f} | {s['worst_single_recall']:.2f} |")
    lines += ["", "## Per problem (paraphrase and held-out means)", "",
              "| problem | mode / texts | precision | recall | SHD | min recall |",
              "|---|---|---|---|---|---|"]
    for key, s in summary.items():
        if not key.endswith(("/paraphrase", "/heldout")):
            continue
        for name, v in s["per_problem"].items():
            lines.append(f"| {name} | {key} | {v['precision']:.2f} | "
                         f"{v['recall']:.2f} | {v['shd']:.1f} | {v['min_recall']:.2f} |")
    lines += ["", "## Every skeleton", "",
              "| problem | variant | mode | precision | recall | SHD | edges | latent nodes | "
              "formulas | s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        lines.append(f"| {r['problem']} | {r['variant']} | {r['mode']} | {r['precision']:.2f} "
                     f"| {r['recall']:.2f} | {r['shd']} | {r['n_edges']}/{r['n_true']} | "
                     f"{', '.join(r['latent']) or '-'} | {r['formulas']} | {r['seconds']:.1f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--llm", default=os.environ.get("SKELETON_QUALITY_LLM"))
    parser.add_argument("--problems", nargs="*", default=None)
    parser.add_argument("--out", default="skeleton_quality")
    args = parser.parse_args()
    result = run(args.seed, args.llm, args.problems)
    summary = summarize(result)
    (RESULTS / f"{args.out}.json").write_text(json.dumps({**result, "summary": summary},
                                                         indent=1))
    text = markdown(result, summary)
    (RESULTS / f"{args.out}.md").write_text(text)
    print(text)
