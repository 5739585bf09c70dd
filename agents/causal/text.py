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

Why one file of this length: the reader is one pass over the description (mentions, then
formulas, then dependency phrases, then unrecorded quantities) whose steps share one table of
mentions; the name finder (``names.py``), the arithmetic in words (``arith.py``) and the
vocabulary (``lexicon.py``) already live apart.
"""

from __future__ import annotations

import re

from agents.causal.arith import has_arith, to_formula
from agents.causal.lexicon import (
    CAUSE_FIRST,
    DECISION_WORDS,
    EFFECT_FIRST,
    INDEPENDENT,
    NUMBER_WORDS,
    UNRECORDED_VERB,
    name_tokens,
    rewrite_phrases,
)
from agents.causal.names import (
    BREAK_WORDS,
    LIST_FILLER,
    Reader,
    TextEvidence,
    Tok,
    latent_name,
    short,
    trailing_np,
)
from simopt.replicas.expr import parse_formula


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


# a colon after these words introduces operands, not a new statement ("whichever is smaller: A
# or B")
_COLON_KEEPS = {"smaller", "larger", "greater", "lesser", "less", "more", "minimum", "maximum",
                "follows", "sum", "total"}


def _clauses(toks: list[Tok]) -> list[list[Tok]]:
    """Split at ``;`` and at a ``:`` that starts a list ("Records: ...")."""
    out, cur, depth = [], [], 0
    for t in toks:
        depth += t.text in ("(", "{", "[")
        depth -= t.text in (")", "}", "]")
        if depth <= 0 and t.kind == "op" and t.text in (";", ":") and not (
                t.text == ":" and cur and cur[-1].text in _COLON_KEEPS):
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
        elif t.text == "(" or t.text in LIST_FILLER or (collective and t.text == ")"):
            pass
        elif collective and t.kind == "word" and slack < 4 and t.text not in BREAK_WORDS:
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
        elif t.text in (",", "and", "or", "nor") or t.text in LIST_FILLER:
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
            self.ev.notes.append(f"{y} = {formula} (from: {short(source)!r})")
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
            elif has_arith(body[:12]) and _mentions(body[:12]) and y not in self.r.decisions:
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
            for m in re.finditer(UNRECORDED_VERB, clause):
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
                    phrases.append(trailing_np(before.rstrip(" (").lower()) or "")
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
                                     f"(from: {short(source)!r})")
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
                                         f"(from: {short(source)!r})")


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
