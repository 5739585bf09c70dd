"""The offline parser: lexed items -> :class:`ParsedRequest` (what was asked, before expansion).

Numbers attach to the setting they belong to (``beta 0.1``, ``500 steps``, ``3 seeds``, ``sweep
beta over 0.1, 0.3, 1``); algorithms after a comparison word (``compare X with Y``, ``X vs Y``)
or next to "baseline" become baselines; a word that looks like an algorithm name but is not in
the catalog, or a number no setting claims, becomes a question. It never raises on any string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from agents.planner import catalog
from agents.planner.lexicon import (
    FILLERS,
    MAX_REQUEST_CHARS,
    SEPARATORS,
    SETTING_FIELDS,
    STOPWORDS,
    UNSUPPORTED,
    Item,
    lex,
)


@dataclass
class ParsedRequest:
    """What the offline parser read from a request (before expansion into runs)."""

    algorithms: list[str] = field(default_factory=list)
    baselines: list[str] = field(default_factory=list)
    divergences: list[str] = field(default_factory=list)
    tasks: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    params: dict[str, list[float | int]] = field(default_factory=dict)
    seeds: list[int] | None = None
    n_seeds: int | None = None
    models: list[str] = field(default_factory=list)
    metric: str | None = None
    distill: bool = False
    questions: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _collect_after(items: list[Item], i: int) -> list[Item]:
    """Numbers following a setting keyword at ``i``: ``beta = 0.1``, ``over 0.1, 0.3 and 1``."""
    j = i + 1
    while j < len(items) and items[j].kind in ("word", "punct", "with", "sweep") and (
        items[j].text in FILLERS
    ):
        j += 1
    out: list[Item] = []
    while j < len(items) and items[j].kind == "num" and not items[j].used:
        nxt = items[j + 1] if j + 1 < len(items) else None
        # "beta 0.1, 3 seeds": a number that a following keyword claims is not ours
        if out and nxt is not None and nxt.kind == "param":
            break
        out.append(items[j])
        j += 1
        while j < len(items) and (items[j].text in SEPARATORS or items[j].text in "]})"):
            if items[j].text in "]})":
                j += 1
                return out
            j += 1
    return out


def _follows_keyword(items: list[Item], j: int) -> bool:
    """Whether the number at ``j`` is the value of a keyword before it (``lr 1e-4 steps``)."""
    k = j - 1
    while k >= 0 and items[k].text in ("=", ":", "of", "to", "is", "at", "over", "in", "from"):
        k -= 1
    return k >= 0 and items[k].kind == "param" and not items[k].used


def _attach_numbers(items: list[Item], parsed: ParsedRequest) -> None:
    """Give each setting keyword its value(s); numbers before a keyword count as units."""
    # Pass 1: "500 steps", "3 seeds", "200 replications": a number right before its unit word.
    for i, it in enumerate(items):
        if it.kind != "param" or i == 0:
            continue
        prev = items[i - 1]
        if prev.kind == "num" and not prev.used and not _follows_keyword(items, i - 1):
            prev.used = it.used = True
            if it.value == "seeds":
                parsed.n_seeds = prev.value
            else:
                parsed.params.setdefault(it.value, []).append(prev.value)
    # Pass 2: "beta 0.1", "lr of 1e-4", "seeds 0, 1, 2", "sweep beta over 0.1, 0.3, 1".
    for i, it in enumerate(items):
        if it.kind != "param" or it.used:
            continue
        nums = _collect_after(items, i)
        if not nums:
            continue
        for n in nums:
            n.used = True
        it.used = True
        values = [n.value for n in nums]
        if it.value == "seeds":
            if it.text == "seed" or len(values) > 1:
                parsed.seeds = (parsed.seeds or []) + values
            else:
                parsed.n_seeds = values[0]
        else:
            parsed.params.setdefault(it.value, []).extend(values)


def parse_request(request: str) -> ParsedRequest:
    """Read algorithms, settings, seeds and the comparison out of ``request`` (no expansion).

    Never raises on any string; what it cannot read becomes a question.
    """
    parsed = ParsedRequest()
    text = (request or "").strip()
    if not text:
        parsed.errors.append("the request is empty; say what to run, e.g. 'compare MallowsPO "
                             "with DPO on the dispersion bandit with 2 seeds'")
        return parsed
    if len(text) > MAX_REQUEST_CHARS:
        parsed.notes.append(f"the request is {len(text)} characters long: only the first "
                            f"{MAX_REQUEST_CHARS} were read")
    items = lex(text[:MAX_REQUEST_CHARS])
    _attach_numbers(items, parsed)

    seen_vs = False  # a comparison word after the first algorithm: what follows are baselines
    compare = False
    explicit: list[str] = []  # "DPO baseline", "with DPO as a baseline": these win
    groups = 0  # algorithm mentions ("every solver" is one mention of many algorithms)
    for i, it in enumerate(items):
        if it.kind in ("algo", "solver"):
            names = catalog.solver_names() if it.value == "*" else [it.value]
            groups += 1
            if it.value == "mallowspo-both":
                names = ["mallowspo-theta", "mallowspo-phi"]
            if it.value == "mallowspo":
                names = ["mallowspo-theta"]
                parsed.notes.append("'MallowsPO' without a variant: planned MallowsPO-theta "
                                    "(say 'MallowsPO-phi' for the other link)")
            for name in names:
                if name not in parsed.algorithms:
                    parsed.algorithms.append(name)
                if _adjacent_baseline(items, i) and name not in explicit:
                    explicit.append(name)
                if seen_vs and name not in parsed.baselines:
                    parsed.baselines.append(name)
        elif it.kind == "compare":
            compare = True
        elif it.kind == "vs" and parsed.algorithms:
            seen_vs = True
        elif it.kind == "with" and compare and parsed.algorithms and _next_is_algo(items, i):
            seen_vs = True  # "compare X with Y", "compare X to Y"
        elif it.kind == "div":
            value = it.value
            if value == "kl":
                value = "reverse_kl"
                parsed.notes.append("'KL' read as reverse KL (the on-policy distillation "
                                    "objective); say 'forward KL' for the other direction")
            if value not in parsed.divergences:
                parsed.divergences.append(value)
        elif it.kind == "task" and it.value not in parsed.tasks:
            parsed.tasks.append(it.value)
        elif it.kind == "problem" and it.value not in parsed.problems:
            parsed.problems.append(it.value)
        elif it.kind == "model" and it.value not in parsed.models:
            parsed.models.append(it.value)
        elif it.kind == "metric":
            parsed.metric = it.value
        elif it.kind == "distill":
            parsed.distill = True
        elif it.kind == "inject":
            parsed.notes.append("the request contains instructions addressed to the planner; "
                                "they were read as plain text and every limit still applies")
        elif it.kind == "param" and not it.used and it.value not in ("seeds",):
            if it.value in ("beta", "lr", "steps", "budget", "batch_size") and any(
                x.kind == "sweep" for x in items
            ):
                parsed.questions.append(f"which values of {it.text} should the sweep cover? "
                                        f"write e.g. 'sweep {it.text} over 0.1, 0.3, 1'")
        elif it.kind == "word":
            _check_unknown_name(items, i, request, parsed, compare)
        elif it.kind == "num" and not it.used:
            k = i - 1
            while k >= 0 and items[k].text in ("=", ":", "of", "to", "is", "at", "a", "the"):
                k -= 1
            prev = items[k] if k >= 0 else None
            if prev is not None and prev.kind == "word" and prev.text not in STOPWORDS:
                parsed.questions.append(
                    f"unknown setting {prev.text!r} ({prev.text} {it.text}); settings a request "
                    f"can set: {', '.join(sorted(set(SETTING_FIELDS) - {'task'}))}, seeds, "
                    f"budget, rounds, macroreps"
                )
            else:
                parsed.questions.append(
                    f"what does the number {it.text} refer to? name the setting, e.g. "
                    f"'{it.text} steps', 'budget {it.text}' or 'beta {it.text}'"
                )
    if explicit:
        parsed.baselines = explicit
    if len(parsed.algorithms) < 2:
        parsed.baselines = []
    elif parsed.baselines == parsed.algorithms:
        parsed.baselines = parsed.algorithms[1:]
    elif compare and not parsed.baselines and groups > 1:
        parsed.baselines = parsed.algorithms[1:]
    return parsed


def _adjacent_baseline(items: list[Item], i: int) -> bool:
    """``DPO baseline``, ``a DPO baseline``, ``baseline DPO``, ``DPO as (a) baseline``."""
    j = i + 1
    while j < len(items) and items[j].text in ("as", "a", "the"):
        j += 1
    if j < len(items) and items[j].kind == "baseline":
        return True
    k = i - 1
    while k >= 0 and items[k].text in ("a", "the", ":"):
        k -= 1
    return k >= 0 and items[k].kind == "baseline"


def _next_is_algo(items: list[Item], i: int) -> bool:
    for it in items[i + 1:i + 4]:
        if it.kind in ("algo", "solver"):
            return True
        if it.kind not in ("word",) or it.text not in ("a", "the", "plain", "standard"):
            return False
    return False


_NAME_LIKE = re.compile(r"^(?:[a-z]+po|[a-z]*\d+[a-z]*|[a-z]+\+)$")


_ENGLISH_PO = {"repo", "typo", "tempo", "hippo", "expo", "limbo", "gumbo", "depo"}


def _check_unknown_name(items: list[Item], i: int, request: str, parsed: ParsedRequest,
                        compare: bool) -> None:
    """Ask about a word that looks like an algorithm name but is not one we know."""
    word = items[i].value
    if word in STOPWORDS or len(word) < 2 or word in _ENGLISH_PO:
        return
    if word in UNSUPPORTED:
        q = (f"{word.upper()} is not an algorithm this project implements; choose from "
             f"{', '.join(catalog.known_algorithms())}")
    elif _NAME_LIKE.match(word) and not re.fullmatch(r"\d+(?:st|nd|rd|th|x|d|h|s|m)", word):
        original = re.search(rf"(?<![\w+]){re.escape(word)}(?![\w+])", request, re.IGNORECASE)
        shown = original.group() if original else word
        q = (f"unknown algorithm or setting {shown!r}; known algorithms: "
             f"{', '.join(catalog.known_algorithms())}")
    else:
        prev = items[i - 1] if i else None
        slot = prev is not None and (prev.kind in ("compare", "vs") or (
            prev.kind == "with" and compare))
        original = re.search(rf"\b{re.escape(word)}\b", request, flags=re.IGNORECASE)
        capitalized = bool(original) and any(c.isupper() for c in original.group()[1:])
        if not (slot and capitalized):
            return
        q = (f"unknown algorithm {original.group()!r}; known algorithms: "
             f"{', '.join(catalog.known_algorithms())}")
    if q not in parsed.questions:
        parsed.questions.append(q)
