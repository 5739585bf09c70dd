"""Words the text reader knows: synonyms, relation cues, arithmetic in words.

Everything here is general English and general operations-research vocabulary (queues,
inventories, projects, estimation): no built-in problem's name or sentence. The reader
(:mod:`agents.causal.text`) maps every word to a canonical token with :func:`canon`, so that
"average", "avg" and "mean" are one token, and reads relations by the cue phrases below.
"""

from __future__ import annotations

import re

# Multi-word phrases that name one idea, rewritten before tokenizing (order matters: longer
# phrases first). Each maps to a single canonical word.
PHRASES: list[tuple[str, str]] = [
    (r"log[- ]?likelihoods?|log[- ]?densit(?:y|ies)|log[- ]?liks?", "loglik"),
    (r"(?:time|gaps?|intervals?) between (?:successive |consecutive )?arrivals|arrival gaps?"
     r"|inter-?arrival", "interarrival"),
    (r"time in (?:the )?system|time (?:spent )?(?:at|with) (?:us|the desk|the counter)",
     "sojourn"),
    (r"on[- ]hand|on the shelf|in stock|stock on hand|on the shelves", "onhand"),
    (r"lead[- ]times?|delivery (?:times?|delays?)|shipping times?", "leadtime"),
    (r"on[- ]time", "ontime"),
    (r"(?:ran|runs?|running|sold|sells?) out|out of stock|stock-?outs?", "stockout"),
    (r"left ?over|unsold", "leftover"),
    (r"how often", "frac"),
    (r"where (?:the )?(\w+?)s? (?:happen|occur|come from|are)", r"\1 location"),
    (r"how busy|busy", "utilization"),
    (r"had to wait|have to wait|waited|waiting|wait in line|queue wait|in queue|in line",
     "wait"),
    (r"the square of", "square_of"),
    (r"squared", "squared"),
    (r"one over", "one_over"),
    (r"divided by", "divided_by"),
    (r"multiplied by", "times"),
    (r"is not|are not|isn't|aren't|does not|do not|doesn't|don't|did not|didn't|never|"
     r"cannot|can't|nobody|no one|neither|nor|nothing|not", "NOT"),
]

# word -> canonical token (after lower-casing; plural "s" is stripped by canon() first)
SYNONYMS: dict[str, str] = {
    "avg": "mean", "average": "mean", "mean": "mean", "expected": "mean", "typical": "mean",
    "frac": "frac", "fraction": "frac", "share": "frac", "proportion": "frac",
    "percentage": "frac", "percent": "frac", "pct": "frac", "rate": "frac",
    "frequency": "frac", "often": "frac",
    "cust": "customer", "customer": "customer", "people": "customer", "person": "customer",
    "client": "customer", "caller": "customer", "patient": "customer",
    "qty": "quantity", "quantity": "quantity", "amount": "quantity", "unit": "quantity",
    "num": "number", "number": "number", "count": "number", "n": "number",
    "util": "utilization", "utilization": "utilization", "utilisation": "utilization",
    "occupancy": "utilization",
    "wait": "wait", "waiting": "wait", "delay": "wait", "queue": "wait", "queueing": "wait",
    "queuing": "wait", "queued": "wait",
    "time": "time", "duration": "time", "length": "time", "makespan": "time",
    "inventory": "onhand", "stock": "onhand", "shelf": "onhand", "onhand": "onhand",
    "backorder": "backorder", "backordered": "backorder", "backlog": "backorder",
    "backlogged": "backorder", "owed": "backorder", "owe": "backorder", "owing": "backorder",
    "order": "order", "ordered": "order", "ordering": "order", "purchase": "order",
    "purchasing": "order", "buy": "order", "bought": "order", "replenishment": "order",
    "expedited": "expedited", "rush": "expedited", "express": "expedited",
    "emergency": "expedited", "expedite": "expedited",
    "regular": "regular", "standard": "regular", "normal": "regular", "usual": "regular",
    "holding": "holding", "hold": "holding", "held": "holding", "storage": "holding",
    "penalty": "penalty", "shortage": "penalty",
    "leftover": "leftover", "remaining": "leftover", "salvage": "leftover",
    "clearance": "leftover", "sale": "sale", "sales": "sale", "sold": "sale", "sell": "sale",
    "selling": "sale",
    "profit": "profit", "earnings": "profit", "cost": "cost", "charge": "cost",
    "expense": "cost",
    "demand": "demand", "want": "demand", "wanted": "demand", "request": "demand",
    "drive": "drive", "driving": "drive", "travel": "drive", "travelling": "drive",
    "traveling": "drive", "response": "response", "respond": "response",
    "answered": "answer", "answer": "answer", "handled": "answer", "handle": "answer",
    "service": "service", "serve": "service", "served": "service", "serving": "service",
    "location": "location", "place": "location", "position": "location", "where": "location",
    "scene": "scene", "call": "call", "emergency_call": "call",
    "loglik": "loglik", "likelihood": "loglik",
    "size": "size", "sojourn": "sojourn", "interarrival": "interarrival",
    "total": "total", "sum": "total", "overall": "total",
    "leadtime": "leadtime", "stockout": "stockout", "ontime": "ontime",
    "path": "path", "longest": "longest", "route": "path", "chain": "path",
    "arc": "arc", "activity": "arc", "task": "arc", "job": "arc",
}

# Tokens that describe how a quantity is summarized, not what it is: a mention may omit them.
GENERIC = {"mean", "total", "number", "quantity", "per", "daily"}

STOPWORDS = {
    "the", "a", "an", "of", "in", "on", "at", "to", "for", "by", "with", "and", "or", "its",
    "their", "our", "we", "us", "i", "it", "this", "that", "these", "those", "each", "every",
    "is", "are", "was", "were", "be", "been", "as", "per", "from", "which", "who", "what",
    "how", "much", "many", "any", "all", "some", "so", "also", "then", "than", "up", "down",
    "over", "into", "out", "about", "there", "here", "has", "have", "had", "do", "does", "did",
    "get", "gets", "got", "one", "s", "just", "simply", "only", "still", "more", "most",
    "less", "can", "will", "would", "should", "may", "might", "must", "when", "if", "while",
    "after", "before", "until", "within", "during",
    "whose", "else", "otherwise", "both", "either", "same", "itself", "themselves", "own",
}

# Relation cues. EFFECT_FIRST: "<effects> CUE <causes>"; CAUSE_FIRST: "<causes> CUE <effects>".
EFFECT_FIRST = [
    r"depends? (?:only |jointly |mainly |mostly )?(?:up)?on", r"depending on",
    r"(?:is|are) (?:each |all |both |also |jointly |mostly |mainly )*"
    r"(?:driven|determined|governed|set|shaped|affected|influenced|caused|computed|"
    r"calculated|derived|generated|produced|pushed up|pushed|controlled|decided|built)"
    r" (?:by|from)",
    r"(?:driven|determined|governed|shaped|affected|influenced|caused|computed|calculated|"
    r"derived|generated|pushed up|controlled|built) (?:jointly |only |mainly )?(?:by|from)",
    r"(?:is|are) (?:a |the )?(?:results?|outcomes?|functions?|consequences?|products?) of",
    r"(?:also |again )?(?:a )?(?:results?|outcomes?|functions?) (?:of|from)",
    r"(?:comes?|results?|follows?|stems?|arises?|arise) (?:only |directly |jointly )?from",
    r"(?:is|are) (?:all )?about", r"\buses?\b", r"\busing\b", r"\( (?:each |all )?from\b", r"<-",
    r"~ f \(", r"= f \(", r"~", r"reflects?", r"responds? to",
    r"(?:with|of) (?:a |an |its )?(?:mean|average|rate|shape|scale|parameter)s?\b",
    r"(?:random|distributed|exponential|varies|vary) around",
    r"(?:is|are) (?:a )?property of",
]
CAUSE_FIRST = [
    r"\b(?:drives?|determines?|governs?|affects?|influences?|shapes?|feeds? into|feeds?|"
    r"causes?|generates?|produces?|controls?)\b", r"->", r"(?:goes|go) into",
]

# Verbs of recording: "X is not recorded", "we never log X" (negated by the reader).
UNRECORDED_VERB = (
    r"\b(?:un(?:observed|recorded|logged|tracked|measured)|(?:recorded|observed|logged|tracked|"
    r"stored|measured|seen|counted|kept|written down|reported|noted|saved|registered|known)|"
    r"part of the record|(?:record|observe|log|track|store|measure|see|count|keep track of|"
    r"keep|learn|learns|write down|know|report|note|save|register)s?)\b"
)

# Statements that a quantity ignores the decisions.
INDEPENDENT = (
    r"(?:NOT (?:\w+ ){0,2}(?:depend|affect|influence|change|matter)|independent of|"
    r"unaffected by|NOT (?:\w+ )?(?:have|has) (?:any )?(?:influence|effect)|"
    r"(?:has|have) NOT to do with|NOT (?:\w+ )?(?:we )?(?:control|choose)|has no influence|"
    r"no influence|no effect|regardless of|alone\b)"
)
DECISION_WORDS = {"setting", "settings", "decision", "decisions", "choice", "choices",
                  "parameter", "parameters", "policy", "control", "choose", "chose", "dial",
                  "dials", "knob", "knobs", "what we choose", "we choose"}

NUMBER_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "twenty": 20, "hundred": 100, "half": 0.5, "twice": 2, "double": 2,
    "one tenth": 0.1, "a tenth": 0.1, "one half": 0.5, "one and a half": 1.5,
}

ARITH_WORDS = {"plus": "+", "minus": "-", "less": "-", "times": "*", "x": "*", "×": "*",
               "divided_by": "/", "over": "/", "added to": "+", "and": "+"}


def singular(word: str) -> str:
    """``orders`` -> ``order``; leaves ``ss`` endings and short words alone."""
    if len(word) > 3 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def canon(word: str) -> str:
    """The canonical token of a word (synonyms merged, plural dropped)."""
    w = word.lower()
    if w in SYNONYMS:
        return SYNONYMS[w]
    s = singular(w)
    return SYNONYMS.get(s, s)


def name_tokens(name: str) -> list[str]:
    """Canonical tokens of an identifier: ``frac_cust_wait`` -> ``[frac, customer, wait]``."""
    parts = [p for p in re.split(r"[_\W]+", name.lower()) if p]
    return [canon(p) for p in parts]


def rewrite_phrases(text: str) -> str:
    """Apply :data:`PHRASES` (whole words, case-insensitive), after expanding a shared head
    noun ("interarrival and service times" -> "interarrival times and service times")."""
    heads = r"(times|costs|rates|levels|quantities|orders|durations|locations|positions)"
    text = re.sub(rf"\b([a-z]+), ([a-z]+),? (and|or) ([a-z]+) {heads}\b",
                  r"\1 \5, \2 \5 \3 \4 \5", text, flags=re.IGNORECASE)
    text = re.sub(rf"\b([a-z]+) (and|or) ([a-z]+) {heads}\b", r"\1 \4 \2 \3 \4", text,
                  flags=re.IGNORECASE)
    for pattern, word in PHRASES:
        text = re.sub(rf"\b(?:{pattern})\b", rf" {word} ", text, flags=re.IGNORECASE)
    return text
