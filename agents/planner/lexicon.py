"""The planner's vocabulary and tokenizer: a request -> a list of lexed items.

* :func:`lex`: numbers (scientific notation, ``k``/``M`` suffixes, thousands separators, number
  words), Greek letters spelled out, then the longest phrase of the lexicon at each position.
* The lexicon maps phrases to ``(kind, value)``: algorithms and their aliases, solvers,
  divergences, tasks, problems, models, settings, and the words of comparisons and sweeps.
  The names come from the catalogs (:mod:`agents.planner.catalog`); the aliases are language.
* :data:`SETTING_FIELDS`: the plain setting names a request may set and the config fields each
  maps to.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from agents.planner import catalog

MAX_REQUEST_CHARS = 4000  # a request is a sentence or a paragraph, not a document
# Algorithms people may name that this project does not implement (answered with a question).
UNSUPPORTED = ("ppo", "grpo", "kto", "orpo", "rloo", "reinforce", "rlhf", "cpo", "slic", "sft")

# Plain setting name -> candidate field names in a run config (searched breadth first).
SETTING_FIELDS: dict[str, tuple[str, ...]] = {
    "beta": ("beta",),
    "lr": ("lr", "learning_rate"),
    "steps": ("max_steps",),
    "batch_size": ("batch_size",),
    "gamma": ("gamma",),
    "alpha": ("alpha",),
    "divergence": ("divergence",),
    "dispersion_scale": ("dispersion_scale",),
    "n_arms": ("n_arms",),
    "threshold": ("threshold",),
    "nfe_penalty": ("nfe_penalty", "nfe_lambda", "lambda_nfe"),
    "task": ("task",),
}


# ---------------------------------------------------------------------------------------------
# Lexicon: phrase (space-separated normalized words) -> (kind, value)


@functools.lru_cache(maxsize=4)
def build_lexicon(training: tuple[str, ...], divergence_names: tuple[str, ...],
                  task_names: tuple[str, ...], solver_names: tuple[str, ...],
                  problem_names: tuple[str, ...]) -> dict[tuple[str, ...], tuple[str, Any]]:
    """Phrase (tuple of normalized words) -> ``(kind, value)`` for the given catalogs.

    The aliases people use come first; then every catalog name not yet a phrase is added under
    its own spelling (``mdm-sft`` as "mdm sft", ``reverse_kl`` as "reverse kl"), so a name a
    registry adds is understood without an edit here.
    """
    lex: dict[str, tuple[str, Any]] = {}

    def add(kind: str, value: Any, *phrases: str) -> None:
        for p in phrases:
            lex[p] = (kind, value)

    add("algo", "opd+", "opd+", "opd plus", "opdplus", "unbiased opd", "opd+ distillation")
    add("algo", "opd", "opd", "stop gradient opd", "stopgrad opd", "stop grad opd",
        "stop gradient on policy distillation", "plain opd", "vanilla opd", "sg opd")
    add("algo", "gkd", "gkd", "generalized knowledge distillation", "full vocabulary baseline")
    add("algo", "dpo", "dpo", "direct preference optimization")
    add("algo", "ipo", "ipo")
    add("algo", "simpo", "simpo")
    for v in ("theta", "phi"):
        add("algo", f"mallowspo-{v}", f"mallowspo {v}", f"mallows po {v}", f"mallows {v}",
            f"{v} mallowspo", f"mallowspo {v} variant")
    add("algo", "mallowspo", "mallowspo", "mallows po", "mallows")
    add("algo", "mallowspo-both", "mallowspo variants", "both mallowspo variants",
        "two mallowspo variants", "both mallowspo", "mallowspo theta and phi",
        "mallowspo phi and theta", "both variants of mallowspo", "mallowspo both")
    add("algo", "d1", "d1", "diffu grpo", "diffugrpo")
    add("algo", "diffpo", "diffpo", "diffusion fast and furious policy optimization")
    add("algo", "socrates", "socrates")
    add("distill", True, "on policy distillation", "distillation", "distil", "distill",
        "distilling", "distillation run")
    for name in solver_names:
        add("solver", name, name.replace("_", " "), name.replace("_", ""))
    solver_aliases = {
        "gp_bo": ("bayesian optimization", "bayesian optimisation", "bo", "gp bo",
                  "gaussian process bo", "gp based bo"),
        "cmaes": ("cma es", "cma"),
        "nelder_mead": ("nelder mead", "simplex", "nelder mead simplex"),
        "random_search": ("random search", "pure random search"),
        "trust_region": ("trust region", "astro df", "astrodf"),
        "ranking_selection": ("ranking and selection", "ranking selection", "kim nelson", "kn"),
        "integer_local_search": ("integer local search", "local search"),
        "spsa": ("spsa", "simultaneous perturbation"),
    }
    for name, phrases in solver_aliases.items():
        if name in solver_names:
            add("solver", name, *phrases)
    add("solver", "*", "all solvers", "every solver", "each solver", "the portfolio",
        "all the solvers", "whole portfolio")
    add("div", "reverse_kl", "reverse kl", "reverse kl k1", "rkl", "reverse kullback leibler")
    add("div", "reverse_kl_k3", "reverse kl k3", "k3", "k3 reverse kl")
    add("div", "forward_kl", "forward kl", "fkl", "forward kullback leibler")
    add("div", "kl", "kl", "kullback leibler")
    add("div", "js", "js", "jensen shannon", "js divergence", "jensen shannon divergence")
    add("div", "jsd", "jsd", "generalized jsd", "generalised jsd", "generalized js",
        "generalized jensen shannon")
    add("div", "tv", "tv", "total variation")
    add("div", "hellinger", "hellinger", "squared hellinger")
    add("div", "pearson", "pearson", "pearson chi2")
    add("div", "neyman", "neyman", "neyman chi2")
    add("div", "alpha", "alpha divergence")
    add("task", "bandit", "dispersion bandit", "bandit", "mallows bandit", "preference bandit",
        "synthetic bandit")
    add("task", "arithmetic", "arithmetic", "arithmetic task", "arithmetic teacher", "addition")
    add("task", "sudoku", "sudoku", "4x4 sudoku", "sudoku 4x4")
    add("task", "countdown", "countdown")
    for name in problem_names:
        low = name.lower()
        add("problem", name, low.replace("-", " "), low.split("-")[0])
    problem_aliases = {
        "CNTNEWS-1": ("newsvendor", "news vendor", "continuous newsvendor", "newsboy"),
        "MM1-1": ("queue", "queueing", "queuing", "mm1", "mm1 queue", "service rate"),
        "SSCONT-1": ("sscont", "ss inventory", "inventory", "s s inventory"),
        "DUALSOURCING-1": ("dual sourcing", "dualsourcing"),
        "SAN-1": ("san", "activity network", "stochastic activity network"),
        "AMBULANCE-1": ("ambulance", "ambulances", "ambulance location"),
        "EXAMPLE-1": ("noisy quadratic", "quadratic", "example problem"),
        "PARAMESTI-1": ("parameter estimation", "paramesti", "gamma mle"),
    }
    for name, phrases in problem_aliases.items():
        if name in problem_names:
            add("problem", name, *phrases)
    add("model", "tiny-llama", "tiny llama", "tinyllama")
    add("model", "tiny-gpt2", "tiny gpt2", "gpt2")
    add("model", "tabular", "tabular", "tabular policy")
    add("param", "beta", "beta")
    add("param", "lr", "lr", "learning rate", "step size", "learning rates")
    add("param", "steps", "steps", "step", "training steps", "iterations", "iters", "updates",
        "max steps", "optimizer steps")
    add("param", "seeds", "seeds", "seed", "random seeds", "runs", "repeats", "repetitions")
    add("param", "budget", "budget", "replications", "reps", "simulation budget",
        "evaluations", "evals", "simulations", "replication budget")
    add("param", "batch_size", "batch size", "batch", "batches")
    add("param", "gamma", "gamma", "discount")
    add("param", "alpha", "alpha")
    add("param", "dispersion_scale", "dispersion scale")
    add("param", "n_arms", "arms")
    add("param", "rounds", "rounds", "meta optimizer rounds")
    add("param", "macroreps", "macroreps", "macro replications", "macroreplications")
    add("param", "threshold", "threshold")
    add("param", "nfe_penalty", "nfe penalty", "lambda")
    add("compare", True, "compare", "comparing", "comparison", "benchmark", "compared")
    add("vs", True, "vs", "versus", "against", "than", "relative to", "compared to",
        "compared with", "compared against", "as opposed to")
    add("with", True, "with", "to")
    add("baseline", True, "baseline", "baselines", "as a baseline", "as baseline", "reference")
    add("sweep", True, "sweep", "sweeping", "grid", "vary", "varying", "scan")
    add("metric", "accuracy", "accuracy")
    add("metric", "loss", "loss")
    add("metric", "kendall", "kendall tau", "kendall", "ranking recovery")
    add("each", True, "each", "per algorithm", "per method", "apiece", "per run")
    add("inject", True, "ignore previous instructions", "ignore all previous instructions",
        "ignore the above", "ignore your instructions", "system prompt")
    for kind, names in (("algo", training), ("div", divergence_names), ("task", task_names)):
        for name in names:  # a registered name nobody wrote an alias for: its own spelling
            lex.setdefault(_phrase(name), (kind, name))
    return {tuple(k.split()): v for k, v in lex.items()}


_NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "twenty": 20, "hundred": 100,
    "a dozen": 12, "single": 1, "a couple of": 2, "a couple": 2, "a pair of": 2,
}
_GREEK = {
    "θ": " theta ", "ϑ": " theta ", "φ": " phi ", "ϕ": " phi ", "β": " beta ", "γ": " gamma ",
    "α": " alpha ", "λ": " lambda ", "τ": " tau ", "χ²": "chi2", "χ2": "chi2", "×": " x ",
    "–": "-", "—": "-", "−": "-", "’": "'", "‘": "'", "“": '"', "”": '"', "\u00a0": " ",
}
# Words that carry no meaning for the plan (so unknown-name detection ignores them).
STOPWORDS = set(
    """a an the and or of on in at for from to with by as is are be it its this that these those
    run runs train training trained using use used please can could would should i we you me my our
    each per all both under over into onto then than also some any same different model models
    student teacher tiny small student's set setting settings do make let get show give report
    launch plot table mean interval results result versus vs compare comparing comparison
    against optimize optimise optimization optimisation problem problems task tasks on-policy
    policy distill distil distillation algorithm algorithms method methods experiment experiments
    how what which who where when why if not no yes ok okay now again time times value values
    new old default defaults only just about like want need see try tried while after before
    between across within variant variants version divergence divergences loss objective metric
    metrics accuracy solver solvers portfolio baseline baselines seed seeds step steps""".split()
)


@dataclass
class Item:
    """One lexed unit: a phrase from the lexicon, a number, or a leftover word/punctuation."""

    kind: str  # algo | solver | div | task | problem | param | ... | num | word | punct
    value: Any
    text: str
    used: bool = False


_TOKEN = re.compile(
    r"(?P<num>(?<![a-z0-9.])[-+]?(?:\d[\d_]*(?:,\d{3})+(?!\d)|\d[\d_]*(?:\.\d*)?|\.\d+)"
    r"(?:e[-+]?\d+)?(?:[km](?![a-z]))?(?![a-z_]))"
    r"|(?P<word>[a-z][a-z0-9]*\+?|\d+[a-z][a-z0-9]*)"
    r"|(?P<punct>[=:,;\[\]{}()/])",
)


def _normalize(text: str) -> str:
    for k, v in _GREEK.items():
        text = text.replace(k, v)
    text = text.lower()
    text = re.sub(r"\bm\s*/\s*m\s*/\s*1\b", " mm1 ", text)
    text = re.sub(r"\(\s*s\s*,\s*s\s*\)", " ss ", text)
    text = re.sub(r"\br\s*&\s*s\b", " ranking and selection ", text)
    text = re.sub(r"mallows(?:po)?\s*\(\s*(theta|phi)\s*\)", r" mallowspo \1 ", text)
    # "MallowsPO-theta/phi" or "MallowsPO theta and phi": both variants
    text = re.sub(r"(seeds?\s*[=:]?\s*)(\d{1,4})\s*(?:-|\.\.|to|through)\s*(\d{1,4})\b",
                  _seed_range, text)
    text = re.sub(r"mallows(?:po)?[\s-]*(theta|phi)\s*(?:/|and|,|&)\s*(theta|phi)",
                  r"mallowspo-\1 and mallowspo-\2", text)
    return text


def _seed_range(m: re.Match) -> str:
    """``seeds 0-4`` -> ``seeds 0, 1, 2, 3, 4`` (inclusive, as people write it)."""
    lo, hi = int(m.group(2)), int(m.group(3))
    if not lo <= hi <= lo + 999:
        return m.group(0)
    return m.group(1) + ", ".join(str(s) for s in range(lo, hi + 1))


def _number(raw: str) -> float | int:
    raw = raw.replace("_", "").replace(",", "")
    scale = 1
    if raw[-1] in "km":
        scale = 1000 if raw[-1] == "k" else 1_000_000
        raw = raw[:-1]
    value = float(raw) * scale
    if value.is_integer() and "." not in raw and "e" not in raw.lower() and abs(value) < 2**63:
        return int(value)
    return value


def lex(request: str) -> list[Item]:
    """Tokenize ``request`` and merge phrases from the lexicon (longest match first)."""
    raw: list[tuple[str, str]] = []
    for m in _TOKEN.finditer(_normalize(request)):
        kind = m.lastgroup or "punct"
        raw.append((kind, m.group()))
    lexicon = current_lexicon()
    longest = max(len(k) for k in lexicon)
    items: list[Item] = []
    i = 0
    while i < len(raw):
        kind, text = raw[i]
        if kind == "num":
            try:
                items.append(Item("num", _number(text), text))
            except (ValueError, OverflowError):
                items.append(Item("word", text, text))
            i += 1
            continue
        matched = False
        for n in range(min(longest, len(raw) - i), 0, -1):
            words = tuple(t for _, t in raw[i:i + n])
            if words in lexicon:
                k, v = lexicon[words]
                items.append(Item(k, v, " ".join(words)))
                i += n
                matched = True
                break
            joined = " ".join(words)
            if joined in _NUMBER_WORDS:
                items.append(Item("num", _NUMBER_WORDS[joined], joined))
                i += n
                matched = True
                break
        if not matched:
            items.append(Item(kind, text, text))
            i += 1
    return items


# Words between a setting and its value: "beta of 0.1", "lr = 1e-4", "sweep beta over {0.1, 1}".
FILLERS = {"=", ":", "of", "to", "set", "is", "at", "equal", "equals", "be", "over", "across",
            "in", "from", "values", "value", "{", "[", "(", "as", "around", "about", "fixed",
            "use", "using", "with", "a", "the"}
SEPARATORS = {",", "and", "or", "/", ";"}


# ---------------------------------------------------------------------------------------------


def _phrase(name: str) -> str:
    """A catalog name as the words the tokenizer makes of it: ``mdm-sft`` -> ``mdm sft``."""
    return " ".join(m.group() for m in _TOKEN.finditer(_normalize(name)) if m.lastgroup != "punct")


def current_lexicon() -> dict[tuple[str, ...], tuple[str, Any]]:
    """The lexicon of the catalogs as they are now (rebuilt when a registry changes)."""
    return build_lexicon(tuple(catalog.training_algorithms()), tuple(catalog.divergences()),
                         tuple(catalog.tasks()), tuple(catalog.solver_names()),
                         tuple(catalog.problems()))


_LEXICON = current_lexicon()  # the lexicon at import (its vocabulary feeds the fuzz tests)
