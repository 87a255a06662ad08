"""`logic:<task>` graders: the final committed answer of a BBH-style response, typed by answer kind.

The committed answer is the latest of: "the answer is ...", an "Answer: ..." line, a `\\boxed{}`,
an `<answer>...</answer>` tag
(a later revision wins over an earlier statement). A hedged answer ("(A) or (D)", "yes or no")
is graded wrong. Each answer kind is a pure parser from that span to a canonical value.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from fractions import Fraction

from verifier.extract import ANSWER_IS_RE, answer_is_span, last_boxed
from verifier.normalize import plain_text, words_to_number
from services.wire.verdicts import Verdict

# "Answer: x" at the start of a line or after a sentence ("... so we are done. Answer: 12").
_ANSWER_LINE_RE = re.compile(r"(?:^|(?<=[.!?]\s))[ \t>*_#]*(?:final\s+)?answer\s*[:：]\s*(.+?)\s*$",
                             re.IGNORECASE | re.MULTILINE)
_BOX_START_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_ANSWER_TAG_RE = re.compile(r"<answer>(.*?)</answer>", re.IGNORECASE | re.DOTALL)
_PAREN_LETTER_RE = re.compile(r"\(([A-Z])\)")
_LEAD_LETTER_RE = re.compile(r"^(?:(?:option|choice)\s+)?([A-Z])(?:[).:,]|$)", re.IGNORECASE)
_BARE_LETTERS_OR_RE = re.compile(r"\b([A-Z])\b\s*(?:or|/|and)\s*\(?([A-Z])\b")
_NUMBER_RE = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
_BRACKETS = set("()[]{}<>")


class Hedged(ValueError):
    """The answer commits to more than one option."""


def committed_answer(response: str) -> str | None:
    """The latest committed answer span in the response, or None."""
    candidates: list[tuple[int, str]] = []
    last_is = None
    for last_is in ANSWER_IS_RE.finditer(response):
        pass
    if last_is is not None:
        span = answer_is_span(response[last_is.start():])
        if span:
            candidates.append((last_is.start(), span))
    lines = list(_ANSWER_LINE_RE.finditer(response))
    if lines:
        candidates.append((lines[-1].start(), lines[-1].group(1).strip().strip("*_").rstrip(".")))
    boxes = list(_BOX_START_RE.finditer(response))
    if boxes:
        boxed = last_boxed(response[boxes[-1].start():])
        if boxed:
            candidates.append((boxes[-1].start(), boxed))
    tags = list(_ANSWER_TAG_RE.finditer(response))
    if tags:
        candidates.append((tags[-1].start(), tags[-1].group(1).strip()))
    if candidates:
        return max(candidates)[1].strip() or None
    bare = response.strip().strip("*_").rstrip(".").strip()
    # A response that is nothing but a short answer ("(B)", "Yes") commits to it; a short sentence
    # of prose does not.
    return bare if bare and len(bare) <= 60 and "\n" not in bare and len(bare.split()) <= 6 else None


# --- answer kinds: span -> canonical value (raise Hedged, return None when absent) -------------

def parse_choice(span: str) -> str | None:
    letters = set(_PAREN_LETTER_RE.findall(span))
    bare_or = _BARE_LETTERS_OR_RE.search(span)
    if bare_or:
        letters |= {bare_or.group(1), bare_or.group(2)}
    if len(letters) > 1:
        raise Hedged(f"more than one option: {sorted(letters)}")
    if letters:
        return letters.pop()
    m = _LEAD_LETTER_RE.match(span.strip().strip("*_[]"))
    return m.group(1).upper() if m else None


def _one_of(words: tuple[str, ...], aliases: dict[str, str] | None = None) -> Callable[[str], str | None]:
    aliases = aliases or {}

    def parse(span: str) -> str | None:
        text = plain_text(span)
        for phrase, canonical in aliases.items():  # multi-word aliases first ("not plausible")
            text = text.replace(phrase, canonical)
        found = {w for w in text.split() if w in words}
        if len(found) > 1:
            raise Hedged(f"both {' and '.join(sorted(found))}")
        return found.pop() if found else None

    return parse


parse_yes_no = _one_of(("yes", "no"), {"not plausible": "no", "implausible": "no", "plausible": "yes"})
parse_true_false = _one_of(("true", "false"))
parse_validity = _one_of(("valid", "invalid"))


def parse_number(span: str) -> Fraction | None:
    if "=" in span:  # "2 + 3 = 5": the value after the last "="
        span = span.rsplit("=", 1)[1]
    values = {Fraction(n.replace(",", "")) for n in _NUMBER_RE.findall(span)}
    if len(values) > 1:
        raise Hedged(f"more than one number: {sorted(map(str, values))}")
    if values:
        return values.pop()
    return words_to_number(plain_text(span))


def parse_words(span: str) -> tuple[str, ...] | None:
    words = tuple(plain_text(span).split())
    return words or None


def parse_dyck(span: str) -> str | None:
    closing = "".join(ch for ch in span if ch in _BRACKETS)
    return closing or None


def parse_text(span: str) -> str | None:
    return plain_text(span) or None


KINDS: dict[str, Callable[[str], object]] = {
    "choice": parse_choice,
    "yes_no": parse_yes_no,
    "true_false": parse_true_false,
    "validity": parse_validity,
    "number": parse_number,
    "words": parse_words,
    "dyck": parse_dyck,
    "text": parse_text,
}


def infer_kind(gold: str) -> str:
    """Answer kind of a generic `logic` item, read off its gold answer."""
    g = gold.strip()
    if re.fullmatch(r"\(?[A-Z]\)?", g):
        return "choice"
    low = g.lower().rstrip(".")
    if low in ("yes", "no"):
        return "yes_no"
    if low in ("true", "false"):
        return "true_false"
    if low in ("valid", "invalid"):
        return "validity"
    if _NUMBER_RE.fullmatch(g):
        return "number"
    if g and all(ch in _BRACKETS or ch.isspace() for ch in g):
        return "dyck"
    return "text"


def grade_final_answer(kind: str, response: str, gold: str) -> Verdict:
    parse = KINDS[kind]
    span = committed_answer(response)
    if span is None:
        return Verdict.failed("no_answer")
    try:
        value = parse(span)
    except Hedged as hedge:
        return Verdict.graded(False, span, f"hedged: {hedge}")
    if value is None:
        return Verdict.failed("no_answer", span, f"no {kind} answer in the committed span")
    try:
        expected = parse(gold)
    except Hedged as hedge:
        return Verdict.failed("error", span, f"gold answer {gold!r} is ambiguous: {hedge}")
    if expected is None:
        return Verdict.failed("error", span, f"gold answer {gold!r} is not a {kind} answer")
    return Verdict.graded(value == expected, span)


def final_answer_grader(kind: str) -> Callable[[str, str], Verdict]:
    """A (response, gold) grader for one answer kind; generated tasks register these too."""
    if kind not in KINDS:
        raise ValueError(f"unknown answer kind {kind!r}; valid: {sorted(KINDS)}")
    return lambda response, gold: grade_final_answer(kind, response, gold)


def grade_generic(response: str, gold: str) -> Verdict:
    return grade_final_answer(infer_kind(gold), response, gold)


# The 27 BIG-Bench Hard subsets and the kind of answer each expects.
BBH_KINDS: dict[str, str] = {
    "boolean_expressions": "true_false",
    "causal_judgement": "yes_no",
    "date_understanding": "choice",
    "disambiguation_qa": "choice",
    "dyck_languages": "dyck",
    "formal_fallacies": "validity",
    "geometric_shapes": "choice",
    "hyperbaton": "choice",
    "logical_deduction_five_objects": "choice",
    "logical_deduction_seven_objects": "choice",
    "logical_deduction_three_objects": "choice",
    "movie_recommendation": "choice",
    "multistep_arithmetic_two": "number",
    "navigate": "yes_no",
    "object_counting": "number",
    "penguins_in_a_table": "choice",
    "reasoning_about_colored_objects": "choice",
    "ruin_names": "choice",
    "salient_translation_error_detection": "choice",
    "snarks": "choice",
    "sports_understanding": "yes_no",
    "temporal_sequences": "choice",
    "tracking_shuffled_objects_five_objects": "choice",
    "tracking_shuffled_objects_seven_objects": "choice",
    "tracking_shuffled_objects_three_objects": "choice",
    "web_of_lies": "yes_no",
    "word_sorting": "words",
}
