"""Names in a description: tokens, mentions of the problem's quantities, symbols, aliases.

:class:`Reader` turns a sentence into tokens where every mention of a declared quantity is one
token naming it: identifiers as written, spelled out ("order quantity"), an indexed family
(``arc_i_j``, ``demand_p``), a plural several names share ("both levels", "the costs"), a symbol
the text defines ("Demand D", "let x = order_quantity", "S = s + gap"), or a descriptive phrase
matched by canonical words (:mod:`agents.causal.lexicon`) against a name or an alias the text
defines ("the backlog (avg_backlog)"). :func:`latent_name` names an unrecorded quantity after
the noun of the phrase that mentions it. :class:`TextEvidence` is what the reader collects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from agents.causal.lexicon import (
    DECISION_WORDS,
    GENERIC,
    NUMBER_WORDS,
    STOPWORDS,
    canon,
    name_tokens,
    rewrite_phrases,
)


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
            self.notes.append(f"{node} <- {', '.join(sorted(new))} (from: {short(source)!r})")


def short(text: str, n: int = 90) -> str:
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
LIST_FILLER = {"the", "a", "an", "each", "all", "both", "also", "again", "are", "is", "jointly",
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
                self._alias(m.group(2), trailing_np(m.group(1)))
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
            prev = toks[k - 1] if k > 0 else None
            if t.text == "times" and prev is not None and prev.kind == "word" and \
                    prev.text not in NUMBER_WORDS and prev.text not in BREAK_WORDS and \
                    not (nxt is not None and (nxt.kind in ("num", "ment", "sym")
                                              or nxt.text in NUMBER_WORDS
                                              or nxt.text in ("the", "(", "a"))):
                toks[k] = Tok("time", "word")
        out: list[Tok] = []
        i = 0
        while i < len(toks):
            t = toks[i]
            if t.kind != "word" or t.text in STOPWORDS or t.text in BREAK_WORDS or t.text == "NOT":
                out.append(t)
                i += 1
                continue
            found, best = None, -1.0
            for span in range(1, 7):
                window = toks[i : i + span]
                last = window[-1] if len(window) == span else None
                if last is None or last.kind != "word" or last.text in BREAK_WORDS \
                        or last.text == "NOT":
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
BREAK_WORDS = {"and", "or", "nor", "less", "plus", "minus", "times", "than", "is", "are", "was",
          "were", "be", "been", "has", "have", "had", "whichever", "which", "that", "who", "when",
          "if", "then", "so", "but", "because", "while", "whose", "where", "over", "divided_by",
          "except", "without", "together"}


def trailing_np(phrase: str) -> str | None:
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
