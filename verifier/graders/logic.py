"""`logic:<task>` graders: the final committed answer of a BBH-style response, typed by answer kind.

    region    <- extract.answer_region(response)       (chat-token tail cut, text after </think>)
    span      <- the latest of: "the answer/choice is ...", an "Answer: ..." / "Final: ..." line, a
                 \\boxed{}, an <answer> tag (a later revision wins: "...is False.\\nFinal: True" is True)
    lenient   <- no marker: the last sentences, parsed by the kind ("So the sentence is plausible.",
                 "So I have 7 vegetables.", a numbered list of sorted words)
    value     <- the kind's parser: span (+ the question, when the item carries it) -> canonical value

A hedged answer ("(A) or (D)", "yes or no") is graded wrong; a negated option ("not (A); it is (C)")
does not count. With the question, an option written out as text ("Eli finished last") maps back to
its letter, and a completed Dyck sequence is cut to the part the question asked for.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from fractions import Fraction

from services.wire.verdicts import Verdict
from verifier.context import Context
from verifier.extract import (ANSWER_LINE_RE, CHOICE_IS_RE, answer_is_span, answer_region, following_block,
                              last_boxed, strip_wrappers, trailing_list)
from verifier.graders.options import Question, read_question
from verifier.normalize import plain_text, words_to_number

_BOX_START_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_PAREN_LETTER_RE = re.compile(r"\(([A-Za-z])\)")
# "not (A)", "isn't (B)", "rather than (C)", "(B), not (A)": options the answer rules out.
_NEGATED_RE = re.compile(r"\b(?:not|isn'?t|rather\s+than|instead\s+of|except|never)\s+(?:option\s+|choice\s+)?"
                         r"\(?[A-Za-z]\)(?![\w(])", re.IGNORECASE)
_LEAD_LETTER_RE = re.compile(r"^(?:(?:option|choice)\s+)?([A-Z])(?:[).:,]|$)")
_WORD_LETTER_RE = re.compile(r"^(?:option|choice)\s+([a-z])\b", re.IGNORECASE)
_BARE_LETTERS_OR_RE = re.compile(r"\b([A-Z])\b\s*(?:or|/|and)\s*\(?([A-Z])\b")
_NUMBER_RE = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")
_LIST_MARK_RE = re.compile(r"(?m)^\s*(?:\d{1,3}[.)]|[-*•])\s+")
_SENTENCE_RE = re.compile(r"[^.!?\n]+[.!?]?")
_BRACKETS = set("()[]{}<>")
_FALLBACK_SENTENCES = 3


class Hedged(ValueError):
    """The answer commits to more than one option."""


def committed_answer(response: str, *, bare: bool = True) -> str | None:
    """The latest explicitly marked answer span in the response, or None. With `bare`, a response
    that is nothing but a short answer ("(B)", "Yes") commits to it (the lenient policy)."""
    candidates: list[tuple[int, str]] = []
    last_is = None
    for last_is in CHOICE_IS_RE.finditer(response):
        pass
    if last_is is not None:
        span = answer_is_span(response[last_is.start():], CHOICE_IS_RE)
        if span:
            candidates.append((last_is.start(), span))
    lines = list(ANSWER_LINE_RE.finditer(response))
    if lines:
        content = strip_wrappers(lines[-1].group(1)) or following_block(response[lines[-1].end():])
        if content:
            candidates.append((lines[-1].start(), content))
    boxes = list(_BOX_START_RE.finditer(response))
    if boxes:
        boxed = last_boxed(response[boxes[-1].start():])
        if boxed:
            candidates.append((boxes[-1].start(), boxed))
    tag = last_answer_tag(response)
    if tag is not None:
        candidates.append(tag)
    if candidates:
        return max(candidates)[1].strip() or None
    if not bare:
        return None
    short = response.strip().strip("*_").rstrip(".").strip()
    # A response that is nothing but a short answer ("(B)", "Yes") commits to it; a short sentence
    # of prose does not.
    return short if short and len(short) <= 60 and "\n" not in short and len(short.split()) <= 6 else None


def last_answer_tag(text: str) -> tuple[int, str] | None:
    """(position, content) of the last <answer>...</answer> (found from the end: linear)."""
    low = text.lower()
    close = low.rfind("</answer>")
    start = low.rfind("<answer>", 0, close) if close != -1 else -1
    if start == -1:
        return None
    return start, text[start + len("<answer>"):close].strip()


def _last_sentences(region: str) -> list[str]:
    """Candidate answer statements of an unmarked response, last first: its closing list, if any,
    then its last few sentences."""
    out = []
    block = trailing_list(region)
    if block:
        out.append(block)
    sentences = [s.strip() for s in _SENTENCE_RE.findall(region[-2000:]) if s.strip()]
    return out + sentences[::-1][:_FALLBACK_SENTENCES]


# --- answer kinds: (span, question) -> canonical value (raise Hedged; None when absent) ---------

def parse_choice(span: str, q: Question) -> str | None:
    span = _NEGATED_RE.sub(" ", span)
    letters = {m.upper() for m in _PAREN_LETTER_RE.findall(span)}
    bare_or = _BARE_LETTERS_OR_RE.search(span)
    if bare_or:
        letters |= {bare_or.group(1), bare_or.group(2)}
    if len(letters) > 1:
        raise Hedged(f"more than one option: {sorted(letters)}")
    if letters:
        return letters.pop()
    stripped = span.strip().strip("*_[]`'\"").strip()
    m = _LEAD_LETTER_RE.match(stripped) or _WORD_LETTER_RE.match(stripped)
    if m:
        return m.group(1).upper()
    if re.fullmatch(r"[a-zA-Z][.)]?", stripped):  # "c" alone; "a" inside prose is an article
        return stripped[0].upper()
    return q.option_for(span)


def _one_of(words: tuple[str, ...], aliases: dict[str, str] | None = None) -> Callable[[str, Question], str | None]:
    aliases = aliases or {}

    def parse(span: str, q: Question) -> str | None:
        text = f" {plain_text(span)} "
        for phrase, canonical in aliases.items():  # multi-word aliases first ("not plausible")
            text = text.replace(f" {phrase} ", f" {canonical} ")
        found = {w for w in text.split() if w in words}
        if len(found) > 1:
            raise Hedged(f"both {' and '.join(sorted(found))}")
        return found.pop() if found else None

    return parse


_TRUTH = {"does not tell the truth": "no", "doesn t tell the truth": "no", "do not tell the truth": "no",
          "is not telling the truth": "no", "not truthful": "no", "is lying": "no", "lies": "no", "liar": "no",
          "tells the truth": "yes", "is telling the truth": "yes", "truthful": "yes"}
# navigate: "we do not return to the starting point" answers No.
_START = {f"{neg} {verb} the starting point": "no" for neg in ("not", "never") for verb in
          ("return to", "back at", "back to", "at", "end up at")}
_START.update({f"{verb} the starting point": "yes" for verb in ("return to", "back at", "back to", "end up at")})
parse_yes_no = _one_of(("yes", "no"), {"not plausible": "no", "implausible": "no", "plausible": "yes",
                                       **_TRUTH, **_START})
_true_false = _one_of(("true", "false"))


def parse_true_false(span: str, q: Question | None = None) -> str | None:
    try:
        return _true_false(span, q)
    except Hedged:
        # "not ( True ) and ( True ) is False": a statement of the expression, then its value.
        tail = re.split(r"\bis\b|=|evaluates\s+to", span)[-1]
        if tail == span:
            raise
        return _true_false(tail, q)
parse_validity = _one_of(("valid", "invalid"), {"not invalid": "valid", "isn t invalid": "valid",
                                                "not valid": "invalid", "isn t valid": "invalid"})


def parse_number(span: str, q: Question | None = None) -> Fraction | None:
    span = span.replace("−", "-")
    if "=" in span:  # "2 + 3 = 5": the value after the last "="
        span = span.rsplit("=", 1)[1]
    values = {Fraction(n.replace(",", "")) for n in _NUMBER_RE.findall(span)}
    if len(values) > 1:
        raise Hedged(f"more than one number: {sorted(map(str, values))}")
    if values:
        return values.pop()
    return words_to_number(plain_text(span))


def parse_words(span: str, q: Question | None = None) -> tuple[str, ...] | None:
    words = [w for w in plain_text(_LIST_MARK_RE.sub(" ", span)).split() if not w.isdigit()]
    if q is not None and q.words:  # the question's list: words of the surrounding prose drop out
        words = [w for w in words if w in q.words]
    return tuple(words) or None


def parse_dyck(span: str, q: Question | None = None) -> str | None:
    closing = "".join(ch for ch in span if ch in _BRACKETS)
    if q is not None and q.dyck_input and closing.startswith(q.dyck_input) and len(closing) > len(q.dyck_input):
        closing = closing[len(q.dyck_input):]  # the whole completed sequence: keep what was asked for
    return closing or None


_CLOSER = {"(": ")", "[": "]", "{": "}", "<": ">"}


def dyck_completion(prefix: str) -> str | None:
    """The closing brackets that complete `prefix` (None if it closes a bracket it never opened)."""
    stack: list[str] = []
    for ch in prefix:
        if ch in _CLOSER:
            stack.append(_CLOSER[ch])
        elif not stack or stack.pop() != ch:
            return None
    return "".join(reversed(stack))


def _same_dyck(value: str, expected: str) -> bool:
    """The whole completed sequence against the completion: it must end with the completion, and
    the completion must be exactly what its own prefix needs (the question's input)."""
    return value == expected or (len(value) > len(expected) and value.endswith(expected)
                                 and dyck_completion(value[:-len(expected)]) == expected)


def parse_text(span: str, q: Question | None = None) -> str | None:
    return plain_text(span) or None


KINDS: dict[str, Callable[[str, Question], object]] = {
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


def grade_final_answer(kind: str, response: str, gold: str, ctx: Context = Context()) -> Verdict:
    parse = KINDS[kind]
    q = read_question(ctx.question)
    region = answer_region(response)
    span = committed_answer(region, bare=ctx.extraction == "lenient")
    value = None
    if span is not None:
        try:
            value = parse(span, q)
        except Hedged as hedge:
            return Verdict.graded(False, span, f"hedged: {hedge}")
    if value is None and ctx.extraction == "lenient":
        for sentence in _last_sentences(region):
            try:
                value = parse(sentence, q)
            except Hedged:
                continue  # a sentence naming both ("yes or no") is not a commitment; look further up
            if value is not None:
                span = sentence
                break
    if value is None:
        return Verdict.failed("no_answer", span, f"no {kind} answer in the response" if span else None)
    try:
        expected = parse(gold, q)
    except Hedged as hedge:
        return Verdict.failed("error", span, f"gold answer {gold!r} is ambiguous: {hedge}")
    if expected is None:
        return Verdict.failed("error", span, f"gold answer {gold!r} is not a {kind} answer")
    if kind == "dyck":
        return Verdict.graded(_same_dyck(value, expected), span)
    return Verdict.graded(value == expected, span)


def final_answer_grader(kind: str) -> Callable[..., Verdict]:
    """A (response, gold, ctx) grader for one answer kind; generated tasks register these too."""
    if kind not in KINDS:
        raise ValueError(f"unknown answer kind {kind!r}; valid: {sorted(KINDS)}")
    return lambda response, gold, ctx=Context(): grade_final_answer(kind, response, gold, ctx)


def grade_generic(response: str, gold: str, ctx: Context = Context()) -> Verdict:
    return grade_final_answer(infer_kind(gold), response, gold, ctx)


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
