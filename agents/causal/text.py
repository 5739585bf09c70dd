"""The text half of the offline skeleton reader: what a description says about causes.

A description is read in passes, each a plain method (no lookup of known systems):

1. **Names.** Identifiers the problem declares (decisions, records, objective) are found as
   written, spelled out (``order quantity``), as an indexed family (``arc_i_j``, ``theta_a``,
   ``demand_p``: every declared name with that prefix), as a plural that several names share
   ("both levels", "the three costs"), or through a symbol the text defines ("Demand D",
   "let x = order_quantity", "reorder_point (s)"). Descriptive phrases are matched to names by
   canonical words (:mod:`agents.causal.lexicon`: "average" = "avg" = "mean", "share" =
   "frac", ...), including aliases the text defines ("the backlog (avg_backlog)").
2. **Unrecorded quantities.** "D is not recorded", "we never log the delivery times",
   "neither A nor B is logged", "(unobserved)": a latent node named after the phrase's noun.
3. **Formulas.** ``Y = expr``, ``Y is expr``, ``Y (expr)``, and arithmetic in words ("nine
   times sales plus ...", "the sum of A, B and C", "the smaller of A and B", "1 when A exceeds
   B"), compiled in the safe formula language; what does not compile still names parents.
4. **Dependencies.** Cue phrases with a direction ("Y depends on / is driven by / comes from A",
   "A drives / determines Y", "Y ~ f(A, B)", "Y (from A)"), with lists on either side ("A, B
   and C (all driven by X)") and back-references ("the same two things drive ...", "each of
   the last five").
5. **Independence.** "N does not depend on the settings", "nothing we choose changes them",
   "a property of the arrivals alone": N is outside the decisions' reach.

The result is :class:`TextEvidence`; ``statements`` counts what was read, so the policy can say
when the text yielded nothing instead of presenting a default graph as a reading.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from agents.causal.lexicon import (
    CAUSE_FIRST,
    DECISION_WORDS,
    EFFECT_FIRST,
    GENERIC,
    INDEPENDENT,
    NUMBER_WORDS,
    STOPWORDS,
    canon,
    name_tokens,
    rewrite_phrases,
)
from simopt.replicas.expr import FormulaError, parse_formula


@dataclass
class TextEvidence:
    """What the description states.

    Attributes:
        formulas: node -> formula (names are nodes or latent quantities).
        parents: node -> parents the text states (formula names included).
        exogenous: nodes the text says the decisions do not affect.
        latent: unrecorded quantity -> the nodes the text says it affects.
        aliases: node -> descriptive phrases the text defines for it.
        notes: what was read, one line per statement.
    """

    formulas: dict[str, str] = field(default_factory=dict)
    parents: dict[str, set[str]] = field(default_factory=dict)
    exogenous: set[str] = field(default_factory=set)
    latent: dict[str, set[str]] = field(default_factory=dict)
    aliases: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def statements(self) -> int:
        """How many relations the text gave (formulas, dependencies, latent, independence)."""
        return (len(self.formulas) + sum(len(p) for p in self.parents.values())
                + len(self.latent) + len(self.exogenous))

    def add_parents(self, node: str, parents, source: str) -> None:
        new = {p for p in parents if p != node} - self.parents.get(node, set())
        if new:
            self.parents.setdefault(node, set()).update(new)
            self.notes.append(f"{node} <- {', '.join(sorted(new))} (from: {_short(source)!r})")


def _short(text: str, n: int = 90) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


# --------------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------------


@dataclass
class Tok:
    """A token: ``kind`` is word, num, op, sym (an undefined one-letter symbol) or ment (a
    mention of ``nodes``; one node, or a family or group)."""

    text: str
    kind: str
    nodes: tuple[str, ...] = ()

    @property
    def canon(self) -> str:
        return canon(self.text) if self.kind == "word" else self.text

    @property
    def is_ment(self) -> bool:
        return self.kind == "ment"


_TOKEN_RE = re.compile(
    r"[A-Za-z_][A-Za-z0-9_]*|\d+(?:\.\d+)?(?:[eE]-?\d+)?|\*\*|<-|->|<=|>=|!=|==|\$"
    r"|[-+*/^=<>(){}\[\],;:~|×]"
)
_SYMBOL_RE = re.compile(r"[A-Za-z](?:_[a-z0-9]{1,2})?$")
# words that end a noun phrase read backwards (verbs, pronouns, conjunctions)
_NP_STOP = {
    "is", "are", "was", "were", "be", "we", "i", "you", "they", "it", "keep", "log", "logs",
    "record", "records", "recorded", "call", "called", "named", "as", "that", "which", "who",
    "and", "or", "but", "so", "then", "by", "for", "to", "with", "gives", "give", "shows",
    "show", "has", "have", "reports", "report", "tracks", "track", "see", "sees", "include",
    "includes", "plus", "minus", "times", "when", "if", "where", "while", "because", "NOT",
    "also", "each", "every", "from", "after", "before", "into", "these", "those", "this",
}
_FILLER = {"the", "a", "an", "each", "all", "both", "also", "again", "are", "is", "jointly",
           "together", "with", "as", "well", "its", "their", "them", "they", "these", "those",
           "two", "three", "own", "of", "that", "same", "mostly", "mainly", "only", "directly",
           "by", "then", "whose", "which", "in", "on", "at", "f", "plus", "how",
           "random", "randomly", "exponentially", "exponential", "normally", "uniformly",
           "independently", "distributed", "really", "actually", "recorded", "..."}


class Reader:
    """Reads one description against the problem's names (see the module docstring)."""

    def __init__(self, decisions: list[str], records: list[str], objective: str):
        self.decisions = list(decisions)
        self.known = list(dict.fromkeys([*decisions, *records, objective]))
        self.objective = objective
        self.ev = TextEvidence()
        self.signatures: dict[str, list[frozenset[str]]] = {
            n: [frozenset(t for t in name_tokens(n) if not t.isdigit())] for n in self.known
        }
        self.families = self._families()
        self.symbols: dict[str, str] = {}  # one-letter symbol -> node or latent name
        self.symbol_phrases: dict[str, str] = {}  # symbol -> the phrase it was defined with
        self.symbol_groups: dict[str, list[str]] = {}  # "S = s + gap": S -> [s, gap]
        self.last_group: list[str] = []  # the latest list of >= 2 mentions (back-references)

    # ---- names -----------------------------------------------------------------------------

    def _families(self) -> dict[str, list[str]]:
        """prefix -> declared names ``prefix_<index>`` (at least two)."""
        out: dict[str, list[str]] = {}
        for n in self.known:
            m = re.match(r"([a-z]+)_(.+)$", n)
            if m:
                out.setdefault(m.group(1), []).append(n)
        return {k: v for k, v in out.items() if len(v) >= 2}

    def family_of(self, token: str) -> list[str] | None:
        """Declared names an index-pattern token stands for (``arc_i_j``, ``theta_a``)."""
        if token in self.known:
            return None
        m = re.fullmatch(r"([a-z]+)_([a-z](?:_[a-z])*|[a-z]{1,2}|ij)", token)
        if m and m.group(1) in self.families:
            return self.families[m.group(1)]
        return None

    def group_of(self, word: str) -> list[str] | None:
        """Names a plural noun stands for: ``levels`` -> every name whose head word is
        ``level``; ``bases`` -> the decisions with a word ``base<k>`` (two or more)."""
        if not word.endswith("s") or len(word) < 4:
            return None
        c = canon(word)
        if c in self.families:
            return self.families[c]
        heads = [n for n in self.known if [t for t in name_tokens(n) if not t.isdigit()][-1:]
                 == [c]]
        if len(heads) >= 2:
            return heads
        numbered = [n for n in self.decisions
                    if any(t.rstrip("0123456789") == c and t != c for t in name_tokens(n))]
        return numbered if len(numbered) >= 2 else None

    def learn(self, sentence: str) -> None:
        """Aliases and symbols the sentence defines."""
        names = "|".join(re.escape(n) for n in sorted(self.known, key=len, reverse=True))
        low = sentence.lower()
        # "<phrase> (<name>)" and "<phrase>, <name>," and "the <phrase> <name> is"
        for pat in (rf"((?:[a-z][a-z'-]* ){{0,7}}[a-z][a-z'-]*)\s*\(\s*(?:the )?({names})\s*\)",
                    rf"((?:[a-z][a-z'-]* ){{0,7}}[a-z][a-z'-]*),\s*({names})\s*,",
                    rf"((?:[a-z][a-z'-]* ){{0,7}}[a-z][a-z'-]*)\s+({names})\s+(?:is|are|equals)\b"):
            for m in re.finditer(pat, low):
                if m.start(1) > 0 and low[m.start(1) - 1] in "_0123456789":
                    continue
                self._alias(m.group(2), _trailing_np(m.group(1)))
        # "<name> (<phrase>)": a short parenthetical description without a cue
        for m in re.finditer(rf"(?<![\w])({names})\s*\(\s*([a-z][a-z ,'-]{{2,60}})\)", low):
            phrase = m.group(2)
            if not re.search(r"\b(?:from|by|on|depends?|driven|which|is|are|of|the|with|"
                             r"\d)\b", phrase) or re.match(r"(?:the )?[a-z]+ [a-z]+$", phrase):
                self._alias(m.group(1), phrase)
        # symbols: "Demand D is", "lead time L", "let x = order_quantity", "reorder_point (s)",
        # "let D ~ ... be the demand"
        for m in re.finditer(r"(?:\b[Ll]et |^|[,;:] ?)([A-Za-z])(?:_[a-z0-9]+)? = "
                             r"([a-z_][a-z0-9_]*)(?= *(?:[,;.)]|and\b|$))", sentence):
            if m.group(2) in self.known:
                self.symbols.setdefault(m.group(1), m.group(2))
        for m in re.finditer(r"(?:^|[,;:] ?)([A-Z]) = ([a-zA-Z_0-9 +*/-]+?)(?=[,;.]|$)", sentence):
            parts = re.findall(r"[A-Za-z_][A-Za-z0-9_]*", m.group(2))
            if len(parts) >= 2 and m.group(1) not in parts:
                self.symbol_groups.setdefault(m.group(1), parts)
        for m in re.finditer(rf"(?<![\w])({names}) \(([A-Za-z])\)", sentence):
            self.symbols.setdefault(m.group(2), m.group(1))
        for m in re.finditer(r"\b[Ll]et ([A-Z])(?:_[a-z0-9]+)? ~ .*? be the ([a-z][a-z ]+?)"
                             r"(?= *[,;.(]|$)", sentence):
            self.symbol_phrases.setdefault(m.group(1), m.group(2))
        for m in re.finditer(r"(?<![\w])([A-Za-z][a-z]+(?: [a-z]+)?) ([A-Z])(?:_[a-z0-9]+)?"
                             r"(?= (?:is|are|~|\(|=)|[,;.]|$)", sentence):
            words = m.group(1).lower().split()
            if words[-1] not in STOPWORDS and words[-1] not in ("let",):
                self.symbol_phrases.setdefault(m.group(2), " ".join(
                    w for w in words if w not in STOPWORDS and w != "let"))

    def _alias(self, name: str, phrase: str | None) -> None:
        if not phrase:
            return
        toks = frozenset(canon(w) for w in re.findall(r"[a-z]+", rewrite_phrases(phrase))
                         if w not in STOPWORDS and w != "NOT")
        if not 1 <= len(toks) <= 5 or toks <= GENERIC or toks <= self.signatures[name][0]:
            return
        # an alias must not be another name's description too
        for other, sigs in self.signatures.items():
            if other != name and any(s and (s - GENERIC) and (s - GENERIC) <= toks
                                     for s in sigs[:1]):
                return
        if toks not in self.signatures[name]:
            self.signatures[name].append(toks)
            self.ev.aliases.setdefault(name, []).append(phrase.strip())

    def group_symbol(self, sym: str) -> tuple[str, ...] | None:
        """The names a symbol defined by a formula stands for ("S = s + gap")."""
        parts = self.symbol_groups.get(sym)
        if not parts:
            return None
        out = []
        for p in parts:
            n = p.lower() if p.lower() in self.known else self.symbols.get(p)
            if n is None:
                return None
            out.append(n)
        return tuple(dict.fromkeys(out))

    def resolve_symbols(self) -> None:
        """Symbols defined by a phrase name the node the phrase names (or a latent)."""
        for sym, phrase in self.symbol_phrases.items():
            if sym in self.symbols:
                continue
            node = self.match_phrase(phrase.split())
            if node:
                self.symbols[sym] = node
            else:
                lat = latent_name(phrase, self)
                if lat and lat in self.ev.latent:
                    self.symbols[sym] = lat

    def match_phrase(self, words: list[str]) -> str | None:
        """The node a short phrase names (all of a signature's specific words, at most one
        word it does not explain), or None when none or several fit equally well."""
        content = [canon(w) for w in words if w not in STOPWORDS and w != "NOT"]
        if not content:
            return None
        bag = set(content)
        best, score_best, tie = None, -1.0, []
        for n, sigs in self.signatures.items():
            for sig in sigs:
                core = sig - GENERIC
                if not core or not core <= bag:
                    continue
                if content[0] not in sig | GENERIC or content[-1] not in sig | GENERIC:
                    continue  # a mention starts and ends with words of the name
                extra = len(bag - sig - GENERIC)
                if extra > 1:
                    continue
                score = len(sig & bag) - 0.5 * extra
                if score > score_best:
                    best, score_best, tie = n, score, [n]
                elif score == score_best and n != best:
                    tie.append(n)
        if tie and len(tie) > 1:
            fams = {re.match(r"([a-z]+)_", n).group(1) if re.match(r"([a-z]+)_", n) else None
                    for n in tie}
            fam = fams.pop() if len(fams) == 1 else None
            if fam in self.families and set(tie) == set(self.families[fam]):
                return "FAMILY:" + fam  # the phrase names the whole indexed family
            return None
        return best

    def tokenize(self, sentence: str) -> list[Tok]:
        """Tokens with mentions: identifiers, families, symbols, groups, phrases."""
        toks: list[Tok] = []
        for t in _TOKEN_RE.findall(rewrite_phrases(sentence)):
            low = t.lower()
            if low in self.known or low in self.ev.latent:
                toks.append(Tok(low, "ment", (low,)))
            elif _SYMBOL_RE.fullmatch(t) and t[0] in self.symbols and (len(t) == 1 or "_" in t):
                toks.append(Tok(t, "ment", (self.symbols[t[0]],)))
            elif _SYMBOL_RE.fullmatch(t) and self.group_symbol(t[0]) and (len(t) == 1 or "_" in t):
                toks.append(Tok(t, "ment", self.group_symbol(t[0])))
            elif self.family_of(low):
                toks.append(Tok(low, "ment", tuple(self.family_of(low))))
            elif re.fullmatch(r"\d+(?:\.\d+)?(?:e-?\d+)?", low):
                toks.append(Tok(low, "num"))
            elif t == "NOT":
                toks.append(Tok("NOT", "word"))
            elif len(t) == 1 and t.isalpha() and t not in "aAI" and t != "x":
                toks.append(Tok(t, "sym"))
            elif re.fullmatch(r"[a-z_][a-z0-9_]*", low):
                toks.append(Tok(low, "word"))
            else:
                toks.append(Tok(t, "op"))
        return self._phrase_mentions(toks)

    def _phrase_mentions(self, toks: list[Tok]) -> list[Tok]:
        """Descriptive word runs (up to six tokens, not across a verb, conjunction or operator
        word) become mentions: the best-scoring name, the shortest run on ties."""
        for k, t in enumerate(toks):
            # "times" after a word that is not a number is the plural of "time", not "*"
            nxt = toks[k + 1] if k + 1 < len(toks) else None
            if t.text == "times" and k > 0 and toks[k - 1].kind == "word" and \
                    toks[k - 1].text not in NUMBER_WORDS and toks[k - 1].text not in _BREAK and \
                    not (nxt is not None and (nxt.kind in ("num", "ment", "sym")
                                              or nxt.text in NUMBER_WORDS
                                              or nxt.text in ("the", "(", "a"))):
                toks[k] = Tok("time", "word")
        out: list[Tok] = []
        i = 0
        while i < len(toks):
            t = toks[i]
            if t.kind != "word" or t.text in STOPWORDS or t.text in _BREAK or t.text == "NOT":
                out.append(t)
                i += 1
                continue
            found, best = None, -1.0
            for span in range(1, 7):
                window = toks[i : i + span]
                if len(window) < span or window[-1].kind != "word" or window[-1].text in _BREAK \
                        or window[-1].text == "NOT":
                    break
                if window[-1].text in STOPWORDS:
                    continue
                words = [w.text for w in window]
                node = self.match_phrase(words)
                if node:
                    score = self._score(node, words)
                    if score > best:
                        found, best = (span, node), score
            if found:
                span, node = found
                nodes = (tuple(self.families[node[7:]]) if node.startswith("FAMILY:")
                         else (node,))
                out.append(Tok(" ".join(w.text for w in toks[i : i + span]), "ment", nodes))
                i += span
                continue
            group = self.group_of(t.text)
            nxt = toks[i + 1].text if i + 1 < len(toks) else ""
            pair = self.group_of(t.text + "s") if nxt in _PLACE_NOUNS else None
            if pair:
                out.append(Tok(f"{t.text} {nxt}", "ment", tuple(pair)))
                i += 2
                continue
            if group:
                out.append(Tok(t.text, "ment", tuple(group)))
            elif t.text in DECISION_WORDS or (t.text in ("targets", "levels", "knobs", "dials")
                                             and len(self.decisions) > 1):
                out.append(Tok(t.text, "ment", tuple(self.decisions)))
            else:
                out.append(t)
            i += 1
        return out

    def _score(self, node: str, words: list[str]) -> float:
        if node.startswith("FAMILY:"):
            node = self.families[node[7:]][0]
        bag = {canon(w) for w in words if w not in STOPWORDS}
        return max(len(sig & bag) - 0.5 * len(bag - sig - GENERIC)
                   for sig in self.signatures[node])


_PLACE_NOUNS = {"positions", "position", "coordinates", "locations", "location", "levels",
                "values", "settings", "targets"}
_BREAK = {"and", "or", "nor", "less", "plus", "minus", "times", "than", "is", "are", "was",
          "were", "be", "been", "has", "have", "had", "whichever", "which", "that", "who", "when",
          "if", "then", "so", "but", "because", "while", "whose", "where", "over", "divided_by",
          "except", "without", "together"}


def _trailing_np(phrase: str) -> str | None:
    """The noun phrase at the end of ``phrase`` (read backwards to a verb or pronoun)."""
    words = phrase.split()
    out: list[str] = []
    for w in reversed(words):
        if w in _NP_STOP:
            break
        out.append(w)
    out.reverse()
    while out and out[0] in STOPWORDS:
        out = out[1:]
    return " ".join(out) if out else None


_UNRECORDED_VERB = (
    r"\b(?:un(?:observed|recorded|logged|tracked|measured)|(?:recorded|observed|logged|tracked|"
    r"stored|measured|seen|counted|kept|written down|reported|noted|saved|registered|known)|"
    r"part of the record|(?:record|observe|log|track|store|measure|see|count|keep track of|"
    r"keep|learn|learns|write down|know|report|note|save|register)s?)\b"
)
_LATENT_SKIP = {"actual", "true", "real", "random", "itself", "exact", "individual", "precise",
                "underlying", "customer", "customers", "daily", "those", "their", "its", "the",
                "people", "user", "client", "patient", "caller", "anywhere", "directly",
                "let", "actually", "what", "ever", "whole"}


def latent_name(phrase: str, reader: Reader) -> str | None:
    """The latent node a noun phrase names ("the actual delivery times" -> ``lead_time``;
    "customer demand" -> ``demand``; "call locations" -> ``call_location``), or None when
    it names a declared quantity, a pronoun or nothing."""
    words = [w for w in re.findall(r"[a-z][a-z0-9_]*", rewrite_phrases(phrase).lower())
             if w not in STOPWORDS and w not in _LATENT_SKIP and w != "NOT"]
    words = [w for w in words if len(w) > 1][-2:]  # one letter is a symbol, not a name
    if not words or any(w in reader.known for w in words):
        return None
    if reader.match_phrase(words):
        return None  # the phrase names a declared quantity
    if words[-1] in ("it", "them", "that", "they", "one", "number", "value", "values", "thing",
                     "anything", "way", "much", "long", "record", "data", "day", "days"):
        return None
    readable = {"leadtime": "lead_time", "interarrival": "interarrival_time",
                "onhand": "on_hand", "loglik": "log_likelihood"}
    toks = [readable.get(canon(w), canon(w)) for w in words]
    if len(toks) == 2 and toks[0] in ("leadtime", "lead_time"):
        toks = toks[:1]
    return "_".join(toks)


# --------------------------------------------------------------------------------------------
# Formulas
# --------------------------------------------------------------------------------------------

_WORD_OPS = {"plus": "+", "minus": "-", "less": "-", "times": "*", "x": "*", "×": "*",
             "divided_by": "/", "over": "/", "squared": "** 2"}
_FORMULA_FILLER = {"the", "a", "an", "its", "their", "of", "is", "simply", "just", "exactly",
                   "each", "unit", "units", "per", "that", "what", "was", "were", "has", "been"}


def to_formula(toks: list[Tok]) -> str | None:
    """A formula in the safe language from a token span, or None when it is not one."""
    parts: list[str] = []
    k = 0
    sum_of = False
    while k < len(toks):
        t = toks[k]
        if t.is_ment:
            parts.append("(" + " + ".join(t.nodes) + ")" if len(t.nodes) > 1 else t.nodes[0])
        elif t.kind == "num":
            parts.append(t.text)
        elif t.kind == "op":
            sym = {"^": "**", "{": "(", "}": ")", "[": "(", "]": ")", "×": "*",
                   "$": ""}.get(t.text, t.text)
            if sym in (";", ":", "~", "|", "=", "->", "<-"):
                return None
            if sym:
                parts.append(sym)
        elif t.kind == "sym":
            return None
        else:
            w = t.text
            if w in _WORD_OPS:
                parts.append(_WORD_OPS[w])
            elif w in ("min", "max", "abs", "exp", "log", "sqrt"):
                parts.append(w)
            elif w in ("if", "else", "otherwise"):
                return None
            elif w in ("sum", "total") and k + 1 < len(toks) and toks[k + 1].text == "of":
                sum_of = True
                k += 1
            elif w == "one_over":
                parts.append("1 /")
            elif w == "square_of":
                parts.append("SQUARE")
            elif w in NUMBER_WORDS:
                parts.append(str(NUMBER_WORDS[w]))
            elif w == "and" and sum_of:
                parts.append(",")
            elif w in _FORMULA_FILLER:
                pass
            else:
                return None
        k += 1
    text = " ".join(parts)
    if sum_of:
        text = text.replace(",", " + ")
    text = re.sub(r"SQUARE\s+(\w+)", r"\1 ** 2", text)
    # a number before a name or parenthesis multiplies ("9 sales", "4 (1 - r)")
    text = re.sub(r"(?<![\w.])(\d+(?:\.\d+)?)\s+(?=[a-z_(])", r"\1 * ", text)
    text = re.sub(r"\)\s+(?=[a-z_(\d])", ") * ", text)
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\(\s+", "(", re.sub(r"\s+([),])", r"\1", text))
    text = re.sub(r"\b(min|max|abs|exp|log|sqrt) \(", r"\1(", text)
    if not text or "SQUARE" in text:
        return None
    try:
        parsed = parse_formula(text)
    except FormulaError:
        return None
    return parsed.text if parsed.names else None


def _arith(toks: list[Tok]) -> bool:
    words = {t.text for t in toks}
    return bool(words & {"+", "-", "*", "/", "plus", "minus", "times", "sum", "added", "adds",
                         "add", "adding", "less", "divided_by", "product", "difference",
                         "ratio", "total"})


def _mentions(toks: list[Tok]) -> list[str]:
    out: list[str] = []
    for t in toks:
        if t.is_ment:
            out.extend(n for n in t.nodes if n not in out)
    return out


# --------------------------------------------------------------------------------------------
# Statements
# --------------------------------------------------------------------------------------------


def _sentences(description: str) -> list[str]:
    text = description.replace("\r", "")
    text = re.sub(r"\b(?:e\.g|i\.e|etc|vs)\.", lambda m: m.group(0).replace(".", ""), text,
                  flags=re.IGNORECASE)
    text = re.sub(r"\n\s*[-*•]\s*", "\n", text)
    parts = re.split(r"(?<=[.!?])\s+|\n+", text)
    return [p.strip().rstrip(".").strip() for p in parts if p.strip(" .")]


def _spell_out(sentence: str, known: list[str]) -> str:
    """Spelled-out names ("order quantity") become identifiers."""
    for name in sorted(known, key=len, reverse=True):
        spaced = name.replace("_", " ")
        if spaced != name and not re.search(r"\d", name):
            sentence = re.sub(rf"(?<![\w]){re.escape(spaced)}(?![\w])", name, sentence,
                              flags=re.IGNORECASE)
    return sentence


def _clauses(toks: list[Tok]) -> list[list[Tok]]:
    """Split at ``;`` and at a ``:`` that starts a list ("Records: ...")."""
    out, cur, depth = [], [], 0
    for t in toks:
        depth += t.text in ("(", "{", "[")
        depth -= t.text in (")", "}", "]")
        if depth <= 0 and t.kind == "op" and t.text in (";", ":"):
            if cur:
                out.append(cur)
            cur, depth = [], 0
        else:
            cur.append(t)
    if cur:
        out.append(cur)
    return out


def _left_list(toks: list[Tok], end: int) -> list[str]:
    """The mentions listed right before position ``end`` ("A, B and C", "A and B")."""
    names: list[str] = []
    commas = False
    conj = False
    k = end - 1
    collective = any(t.text in ("all", "both", "each") for t in toks[max(0, end - 3): end])
    slack = 0
    while k >= 0:
        t = toks[k]
        if t.is_ment:
            names[:0] = [n for n in t.nodes if n not in names]
            slack = 0
        elif t.text in (",",):
            commas = True
        elif t.text in ("and", "or", "nor"):
            conj = True
        elif t.text == "(" or t.text in _FILLER:
            pass
        elif collective and t.kind == "word" and slack < 4 and t.text not in _BREAK:
            slack += 1  # "the fraction of calls that waited, frac_calls_queued, are both ..."
        else:
            break
        k -= 1
    everything = collective or any(t.text in ("all", "each", "both")
                                   for t in toks[max(0, k + 1): end])
    if commas and not conj and names and not everything:
        # "A, B (from X)": a comma list without "and" is a listing, not the subject
        last = [t for t in toks[:end] if t.is_ment][-1]
        return list(last.nodes)
    return names


def _right_list(toks: list[Tok], start: int) -> list[str]:
    """The mentions listed from ``start`` on, until the list ends."""
    names: list[str] = []
    k = start
    skipped = 0
    depth = 0
    while k < len(toks):
        t = toks[k]
        if t.is_ment:
            names.extend(n for n in t.nodes if n not in names)
            skipped = 0
        elif t.text in ("(",):
            depth += 1
        elif t.text in (")",):
            if depth == 0:
                break
            depth -= 1
        elif t.text in (",", "and", "or", "nor") or t.text in _FILLER:
            pass
        elif t.kind == "op" and t.text in (";", "=", "<-", "->", "~") and \
                not (t.text == "=" and depth > 0):
            break
        elif t.kind == "word" and skipped < 2 and names == [] and t.text != "NOT":
            skipped += 1  # "the call arrival times": a word before the first mention
        elif t.kind in ("word", "num", "sym") and skipped < 1 and names:
            skipped += 1
        else:
            break
        k += 1
    return names


class Statements:
    """Relation extraction over one sentence's clauses (see the module docstring)."""

    def __init__(self, reader: Reader):
        self.r = reader
        self.ev = reader.ev

    def _formula(self, y: str, formula: str, names, source: str) -> None:
        if y in self.r.decisions or y in names:
            return
        if y not in self.ev.formulas:
            self.ev.formulas[y] = formula
            self.ev.notes.append(f"{y} = {formula} (from: {_short(source)!r})")
        self.ev.add_parents(y, names, source)

    def formulas(self, toks: list[Tok], source: str) -> None:
        """``Y = expr``, ``Y is expr``, ``Y, which is expr``, ``Y (expr)``."""
        for k, t in enumerate(toks):
            if not t.is_ment or len(t.nodes) != 1:
                continue
            y = t.nodes[0]
            j = k + 1
            while j < len(toks) and toks[j].text in (",", "which", "that", "here", "then"):
                j += 1
            if j >= len(toks) or toks[j].text not in ("=", "is", "are", "equals", "equal", "(",
                                                      "adds", "means"):
                continue
            opener = toks[j].text
            body = _body(toks, j + 1, paren=opener == "(")
            if opener == "adds" or (body and body[0].text in ("sum", "total") and opener != "("):
                names = _mentions(body)
                if len(names) >= 2 and _sum_words(body):
                    self._formula(y, " + ".join(names), names, source)
                    continue
            formula = None
            for cut in range(len(body), 0, -1):  # the longest prefix that is a formula
                if cut < len(body) and body[cut].text not in ("and", ",", "which", "where",
                                                              "so", "(", "while", "to"):
                    continue
                formula = to_formula(body[:cut])
                if formula:
                    break
            if formula and (opener == "=" or re.search(r"[-+*/<>(]", formula)):
                names = parse_formula(formula).names
                self._formula(y, formula, names, source)
            elif _arith(body[:12]) and _mentions(body[:12]) and y not in self.r.decisions:
                self.ev.add_parents(y, [n for n in _mentions(body[:12]) if n != y], source)

    def minmax(self, toks: list[Tok], source: str) -> None:
        """"Y is the smaller of A and B", "whichever is smaller: A or B", "Y = 1 if A > B"."""
        text = _joined(toks)
        ments = [t for t in toks if t.is_ment and len(t.nodes) == 1]
        for k, t in enumerate(toks):
            if t.text not in ("smaller", "lesser", "minimum", "larger", "greater", "maximum",
                              "smallest", "largest") or k + 1 >= len(toks) or \
                    toks[k + 1].text not in ("of", ":"):
                continue
            operands = self._operands(toks[k + 2:])
            subj = [u.nodes[0] for u in toks[:k] if u.is_ment and len(u.nodes) == 1]
            if len(operands) == 2 and subj and subj[-1] not in operands:
                fn = "min" if t.text in ("smaller", "lesser", "minimum", "smallest") else "max"
                a, b = operands
                self._formula(subj[-1], f"{fn}({a}, {b})", (a, b), source)
        for m in re.finditer(
            r"@ (?:[a-z]+ ){0,4}?(?:=|is|are|equals|set|flag|:)?,? ?(?:1|one|true|set)? ?"
            r"(?:if|when|whenever|in case|[{(])\s?(?:the )?@ (?:NOT )?(>|<|>=|<=|exceeds?|"
            r"(?:is |was |were )?(?:above|greater than|larger than|more than|bigger than|"
            r"below|less than|smaller than)|exceeded) (?:the |what )?@", text):
            at = text[: m.start()].count("@")
            if len(ments) >= at + 3:
                y, a, b = (ments[at + i].nodes[0] for i in range(3))
                op = "<" if re.search(r"below|less|smaller|<", m.group(1)) else ">"
                if len({y, a, b}) == 3:
                    self._formula(y, f"{a} {op} {b}", (a, b), source)

    def _operands(self, toks: list[Tok]) -> list[str]:
        """Two operands "A and B" / "A or B": mentions, or a short phrase that names an
        unrecorded quantity (it becomes a latent node: the text computes with it)."""
        out, cur = [], []
        for t in toks + [Tok(".", "op")]:
            if t.text in ("and", "or", ",", ".", ";", ")", "(") or (t.is_ment and cur):
                if cur:
                    ments = [u for u in cur if u.is_ment and len(u.nodes) == 1]
                    if ments:
                        out.append(ments[0].nodes[0])
                    else:
                        name = latent_name(" ".join(u.text for u in cur), self.r)
                        if name is None:
                            return []
                        if name not in self.ev.latent:
                            self.ev.latent[name] = set()
                            self.ev.notes.append(f"{name}: an operand no record holds: latent")
                        out.append(name)
                    cur = []
                if len(out) == 2 or t.text in (".", ";", ")", "("):
                    break
                if t.is_ment:
                    cur = [t]
                continue
            if t.text not in ("the", "a", "an") and t.kind != "op":
                cur.append(t)
            if len(cur) > 4:
                return []
        return out

    def dependencies(self, toks: list[Tok], source: str) -> None:
        """Cue phrases with a direction; lists and back-references on either side."""
        joined, offsets = _joined_offsets(toks)
        cues = []
        for pattern in EFFECT_FIRST:
            cues += [(m.start(), m.end(), True) for m in re.finditer(pattern, joined)]
        for pattern in CAUSE_FIRST:
            cues += [(m.start(), m.end(), False) for m in re.finditer(pattern, joined)]
        cues.sort()
        used_end = -1
        for start, end, effect_first in cues:
            if start < used_end:
                continue
            i = _index_at(offsets, start)
            j = _index_at(offsets, end)
            before = toks[:i]
            if any(t.text == "NOT" for t in before[-4:]) or "NOT" in joined[start:end]:
                continue  # a negated cue is an independence statement (read elsewhere)
            left = self._subject(toks, i)
            right = self._object(toks, j)
            effects, causes = (left, right) if effect_first else (right, left)
            effects = [e for e in effects if e not in self.r.decisions]
            causes = [c for c in causes if c not in effects]
            if not effects or not causes:
                continue
            used_end = end
            pairs = _pair_families(effects, causes, self.r)
            after = _joined(toks[j : j + 12])
            only = "only" in joined[start:end] or re.search(r"^[^;]*?\)? only\b", after)
            m = re.search(r"except (?:for )?(?:the )?((?:@ ?(?:,|and)? ?)+)", after)
            if m:
                skip = _mentions([t for t in toks[j:] if t.is_ment][: m.group(1).count("@")])
                effects = [e for e in effects if e not in skip]
            for e in effects:
                if only:
                    self.ev.parents.pop(e, None)
                self.ev.add_parents(e, pairs.get(e, causes), source)
            if len(causes) >= 2:
                self.r.last_group = causes

    def _subject(self, toks: list[Tok], end: int) -> list[str]:
        names = _left_list(toks, end)
        if not names:
            # "X, which (of course) is driven by": the mention before "which"
            for k in range(end - 1, max(-1, end - 6), -1):
                if toks[k].text in ("which", "that", "who"):
                    before = [t for t in toks[:k] if t.is_ment]
                    if before and k - toks.index(before[-1]) <= 3:
                        names = list(before[-1].nodes)
                    break
        text = _joined(toks[max(0, end - 8): end])
        group = list(self.r.last_group)
        if not names and group and re.search(
                r"(?:the )?same (?:\w+ )?(?:things|quantities|factors|inputs|two|three)|"
                r"\b(?:these|those|they|both|all of these|each of these)\b", text):
            names = group
            m = re.search(r"except (?:for )?(.*)", text)
            if m:
                dropped = _mentions(toks[max(0, end - 8): end])
                names = [n for n in names if n not in dropped]
        m = re.search(r"(?:each|all) of the (last|first) (\w+)", text)
        if m and group:
            k = NUMBER_WORDS.get(m.group(2)) or (int(m.group(2)) if m.group(2).isdigit() else 0)
            if k:
                names = group[-int(k):] if m.group(1) == "last" else group[: int(k)]
        return names

    def _object(self, toks: list[Tok], start: int) -> list[str]:
        names = _right_list(toks, start)
        text = _joined(toks[start : start + 8])
        group = list(self.r.last_group)
        if not names and group and re.search(
                r"(?:the )?same (?:\w+ )?(?:things|quantities|factors|inputs|two|three)|"
                r"\b(?:these|those|them|both)\b", text):
            names = group
        return names

    def unrecorded(self, sentence: str, source: str) -> None:
        """Latent quantities: "D is not recorded", "neither A, B nor C are logged", "we never
        log D", "nobody tracks D", "D (unobserved)", "(call_times, unrecorded)"."""
        low = re.sub(r"\s+", " ", rewrite_phrases(sentence)).strip()
        phrases: list[str] = []
        for clause in re.split(r";|\bbecause\b|\bso\b|\bwhile\b|\bbut\b", low):
            for m in re.finditer(_UNRECORDED_VERB, clause):
                before, after = clause[: m.start()], clause[m.end():]
                near = re.split(r"[,;:(]", before)[-1].split()[-4:]
                negated = "NOT" in near or "never" in near or m.group(0).startswith("un") or (
                    before.rstrip().endswith("(") is False and "NOT" in before.split()[-6:]
                    and re.search(r"\bNOT\b[^,;]*$", before))
                if not negated or re.search(r"\bNOT\b", after[:12]):
                    continue
                if re.search(r"\(\s*[A-Za-z](?:_\w+)?\s*$", before):
                    continue  # "(L unobserved)": a symbol, read below
                ident = re.findall(r"\b([a-z]+_[a-z_]+)\b", before[before.rfind("(") + 1:]
                                   if before.rfind("(") > before.rfind(")") else "")
                if ident:  # "(call_times, unrecorded)": the text names the quantity
                    phrases += [i for i in ident if i not in self.r.known]
                    continue
                verb = m.group(0)
                passive = re.fullmatch(
                    r"un\w+|\w+ed|seen|known|kept|written down|part of the record", verb)
                if before.rstrip().endswith("("):  # "the demand (unobserved)"
                    phrases.append(_trailing_np(before.rstrip(" (").lower()) or "")
                elif passive:
                    subj = re.sub(r"(?:\s|NOT|\b(?:is|are|was|were|be|been|being|gets?|ever|"
                                  r"\w+ly)\b|,|\()*$", "", before)
                    if "NOT" in subj:  # "neither A, B nor C are logged"
                        subj = subj[subj.index("NOT") + 3:]
                    parts = re.split(r",|\band\b|\bor\b|\bNOT\b", subj)
                    phrases += [re.split(r"[~(=:<>]|\b(?:is|are|was|were|has|have|with|which|"
                                         r"that|who|whose|itself)\b", q)[0] for q in parts]
                else:
                    obj = re.split(r"[,.(:]|\bon days\b|\bwhen\b|\bsince\b|\bonce\b",
                                   after)[0]
                    for q in re.split(r"\band\b|\bor\b|\bNOT\b", obj):
                        if re.fullmatch(r"\s*(?:it|them|that|those|this|these)(?:\s+\w+ly)?\s*",
                                        q):
                            q = re.split(r"\bvaries\b|\bis\b|\bare\b|,", low)[0]
                        phrases.append(q)
        for phrase in phrases:
            if phrase in self.r.known:
                continue
            name = phrase if re.fullmatch(r"[a-z]+_[a-z_]+", phrase.strip()) else \
                latent_name(phrase, self.r)
            name = name.strip() if name else name
            if name and name not in self.ev.latent and not name.startswith(("we_", "i_")):
                self.ev.latent[name] = set()
                self.ev.notes.append(f"{name}: the text says it is not recorded: latent "
                                     f"(from: {_short(source)!r})")
        # a symbol defined as unobserved: "L ~ Poisson(6) (L unobserved)"
        for m in re.finditer(r"\(\s*([A-Z])(?:_[a-z0-9]+)? (?:unobserved|unrecorded|not "
                             r"observed|not recorded)\s*\)", sentence):
            sym = m.group(1)
            phrase = self.r.symbol_phrases.get(sym)
            name = (latent_name(phrase, self.r) if phrase else None) or f"latent_{sym.lower()}"
            self.r.symbols.setdefault(sym, name)
            if name not in self.ev.latent:
                self.ev.latent[name] = set()
                self.ev.notes.append(f"{name}: the text says it is not recorded: latent")

    def independence(self, toks: list[Tok], source: str) -> None:
        """"N does not depend on the settings", "independent of x1 and x2": exogenous."""
        joined, offsets = _joined_offsets(toks)
        for m in re.finditer(INDEPENDENT, joined):
            i, j = _index_at(offsets, m.start()), _index_at(offsets, m.end())
            after = toks[j : j + 8]
            after_text = " ".join(t.text for t in after)
            to_decisions = (any(n in self.r.decisions for n in _mentions(after))
                            or any(w in DECISION_WORDS for w in after_text.split())
                            or re.search(r"control|choose|alone", m.group(0)))
            if not to_decisions:
                continue
            subjects = [n for n in _left_list(toks, i) if n not in self.r.decisions]
            if not subjects:
                subjects = [n for n in _mentions(toks[:i]) if n not in self.r.decisions][-1:]
            if not subjects and re.search(r"\b(?:them|they|it|data|neither|none)\b",
                                          _joined(toks)):
                subjects = [g for g in self.r.last_group if g not in self.r.decisions]
            for s in subjects:
                if s not in self.ev.exogenous:
                    self.ev.exogenous.add(s)
                    self.ev.notes.append(f"{s}: the text says the decisions do not affect it "
                                         f"(from: {_short(source)!r})")


def _body(toks: list[Tok], start: int, paren: bool) -> list[Tok]:
    """The expression after ``=``/``is``: to the closing parenthesis, or to a ``,``/``;`` at
    depth 0."""
    out, depth = [], 0
    toks = list(toks)
    while start < len(toks) and toks[start].text in (",", "that", "is", "i", "e"):
        start += 1
    for k, t in enumerate(toks[start:], start):
        if t.text in ("(", "{", "["):
            depth += 1
        elif t.text in (")", "}", "]"):
            if depth == 0:
                if paren:
                    break
                break
            depth -= 1
        elif depth == 0 and not paren and t.text in (",", ";", "which", "where", "while", "so",
                                                      "=", "to"):
            nxt = toks[k + 1].text if k + 1 < len(toks) else ""
            if not (t.text == "," and nxt in ("plus", "minus", "less", "times", "+", "-")):
                break
        out.append(t)
    return out


def _sum_words(toks: list[Tok]) -> bool:
    return bool({t.text for t in toks} & {"sum", "total", "adds", "added", "adding", "add",
                                          "plus", "+", "together"})


def _joined(toks: list[Tok]) -> str:
    return " ".join("@" if t.is_ment else t.text for t in toks)


def _joined_offsets(toks: list[Tok]) -> tuple[str, list[int]]:
    text, offsets = "", []
    for t in toks:
        offsets.append(len(text))
        text += ("@" if t.is_ment else t.text) + " "
    return text, offsets


def _index_at(offsets: list[int], pos: int) -> int:
    return next((k for k, o in enumerate(offsets) if o >= pos), len(offsets))


def _pair_families(effects: list[str], causes: list[str], reader: Reader) -> dict[str, list[str]]:
    """Effects and causes from two indexed families pair by index (``arc_1_2 <- theta_1_2``)
    instead of all with all; other causes go to every effect."""
    def split(name):
        m = re.match(r"([a-z]+)_(.+)$", name)
        return (m.group(1), m.group(2)) if m and m.group(1) in reader.families else (None, None)

    eff_fams = {split(e)[0] for e in effects} - {None}
    cause_by_index: dict[str, list[str]] = {}
    plain = []
    for c in causes:
        fam, idx = split(c)
        if fam is not None and fam not in eff_fams and len(reader.families[fam]) > 1 and \
                sum(1 for x in causes if split(x)[0] == fam) > 1:
            cause_by_index.setdefault(idx, []).append(c)
        else:
            plain.append(c)
    out = {}
    for e in effects:
        fam, idx = split(e)
        if fam is not None and idx in cause_by_index:
            out[e] = cause_by_index[idx] + plain
    return out


def read_description(description: str, decisions: list[str], records: list[str],
                     objective: str) -> TextEvidence:
    """Read ``description`` (module docstring); names are the problem's declared names."""
    reader = Reader(decisions, records, objective)
    sentences = [_spell_out(s, reader.known) for s in _sentences(description or "")]
    for s in sentences:
        reader.learn(s)
    st = Statements(reader)
    for s in sentences:
        st.unrecorded(s, s)
    for lat in reader.ev.latent:
        reader.signatures.setdefault(lat, [frozenset(name_tokens(lat))])
        readable_back = {"lead_time": "leadtime", "on_hand": "onhand",
                         "interarrival_time": "interarrival"}
        if lat in readable_back:
            reader.signatures[lat].append(frozenset({readable_back[lat]}))
    reader.resolve_symbols()
    for s in sentences:
        toks = reader.tokenize(s)
        for clause in _clauses(toks):
            st.minmax(clause, s)
            st.formulas(clause, s)
            st.independence(clause, s)
            st.dependencies(clause, s)
        listed = [n for n in _mentions(toks) if n not in decisions]
        if len(listed) >= 3 and not any(re.search(p, _joined(toks)) for p in EFFECT_FIRST
                                        + CAUSE_FIRST):
            reader.last_group = listed  # a listing: what "all of these" will refer to
    ev = reader.ev
    for lat in ev.latent:
        ev.latent[lat] = {n for n, ps in ev.parents.items() if lat in ps}
    return ev
