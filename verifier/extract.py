"""Find the final committed answer in a model response (pure string functions, linear time).

    region   <- cut at a chat-template token (what follows is another turn); if the response has a
                non-empty part after its last </think>, only that part (the thinking is scratch work)
    marked   <- the last \\boxed{} (with the boxes just before it when only "and" / "," / "\\quad"
                separate them: several answers), else GSM8K "#### x", else the last "the (final)
                answer is x", else the last "Answer: x" / "Final Answer: x" / "Final: x" line
    lenient  <- when nothing is marked: the last LaTeX math span or plain number (math-verify's own
                fallback), so a correct final answer is never denied for lacking a box
    strict   <- marked answers only

The helpers scan with linear regexes and from the end: the answer lives in the tail, and 100k
character responses stay cheap.
"""
from __future__ import annotations

import re

from services.wire.verdicts import DEFAULT_EXTRACTION, Extraction

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*")
# "the answer is", "the final answer is", "final answer:", "the correct answer is" ...
ANSWER_IS_RE = re.compile(
    r"(?:the\s+)?(?:final\s+|correct\s+|right\s+)?answer\s*(?:is|will\s+be|would\s+be|should\s+be|=)\s*:?\s*",
    re.IGNORECASE,
)
# Multiple-choice answers also say "the correct choice is: ..." / "the best option is (C)".
CHOICE_IS_RE = re.compile(
    r"(?:the\s+)?(?:final\s+|correct\s+|right\s+|best\s+)?(?:answer|choice|option)\s*"
    r"(?:is|will\s+be|would\s+be|should\s+be|=)\s*:?\s*",
    re.IGNORECASE,
)
# "Answer: x", "**Final Answer:** x", "✅ Final Answer: x", "Final: x", "Answer $9$" at a line start
# or after a sentence ("... so we are done. Answer: 12").
ANSWER_LINE_RE = re.compile(
    r"(?:^|(?<=[.!?]\s))[^\w\n]{0,12}(?:(?:final\s+)?answer|final)\s*\**\s*"
    r"(?:[:：]|(?=\s*(?:\$|\\\[|\\\()))\s*\**\s*(.*?)\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_GSM8K_RE = re.compile(r"####\s*(.+?)\s*$", re.MULTILINE)
# A sentence ends at a newline, or at ". " / a final "." not inside a number ("3.5" keeps its point).
_SENTENCE_END_RE = re.compile(r"\n|\.(?=\s|$)")
# Chat-template tokens: a model that runs past its turn starts a new one ("... is 2/3. <|im_start|>user").
_TURN_END_RE = re.compile(r"<\|(?:im_start|im_end|endoftext|eot_id|end|user|assistant|start_header_id)\|>"
                          r"|</s>|<｜end▁of▁sentence｜>|<\|end_of_text\|>")
_THINK_END = "</think>"
# What may separate the boxes of one multi-part answer: "$\\boxed{7}$ and $\\boxed{8}$", "x=\\boxed{2} or x=\\boxed{3}".
_BOX_GAP_RE = re.compile(r"(?:\s|\$|,|;|&|\\[,;:! ]|\\q?quad|\\text\s*\{\s*(?:and|or|,)?\s*\}|\\\\|\band\b|\bor\b"
                         r"|\b[a-zA-Z](?:_\{?\w+\}?)?\s*=|\\\(|\\\))*")
_MAX_BOX_GAP = 60
# Inline math spans for the lenient fallback ($$..$$, \[..\], \(..\), $..$).
_MATH_SPAN_RE = re.compile(r"\$\$(.{1,2000}?)\$\$|\\\[(.{1,2000}?)\\\]|\\\((.{1,2000}?)\\\)"
                           r"|(?<!\\)\$((?:[^$\\\n]|\\.){1,300}?)\$", re.DOTALL)
_PLAIN_NUMBER_RE = re.compile(r"(?<![\w.])-?(?:\d{1,3}(?: \d{3})+(?![\d,.])|\d[\d,]*(?:\.\d+)?|\.\d+)"
                              r"(?:\s*/\s*\d+)?(?:\s*(?:%|percent\b))?")
_PROSE_WORD_RE = re.compile(r"(?<!\\)\b[A-Za-z]{3,}\b")
_FALLBACK_CHARS = 4_000
_TEXT_CMD_RE = re.compile(r"\\text\w*\s*\{[^{}]*\}")
_ASSIGNED_RE = re.compile(r"([A-Za-z](?:_\{?\w+\}?)?)\s*=")
_CONNECTOR_RE = re.compile(r"\s*(?:,|or|and|,\s*or|,\s*and)\s*")
_PLAIN_CHAIN_RE = re.compile(r"\b([A-Za-z])\s*=\s*-?\d+(?:\.\d+)?(?:\s*(?:,|or|and)\s*\1\s*=\s*-?\d+(?:\.\d+)?)+$")
_INLINE = r"(?:\$\$?(?:[^$\\]|\\.){1,500}\$?\$|\\\((?:(?!\\\)).){1,500}\\\))"  # "\$" is no delimiter
_MATH_LIST_RE = re.compile(_INLINE + r"(?:\s*(?:,|;|and|or|&)\s*" + _INLINE + ")*", re.DOTALL)
_INLINE_BODY_RE = re.compile(r"\$\$?((?:[^$\\]|\\.)+)\$?\$|\\\(((?:(?!\\\)).)+)\\\)", re.DOTALL)
_ABBREVIATION_RE = re.compile(r"\b(?:i\.e|e\.g|approx|vs|cf)\.", re.IGNORECASE)
# "3 (this checks out since ...)", "0.5, i.e. one half": an explanation after the answer.
_AFTERTHOUGHT_RE = re.compile(r"(?:\s+\((?=[A-Za-z]{3,}).*|,\s*(?:i\.e\.|e\.g\.|(?:that is|which|since|because)\b).*)$",
                              re.IGNORECASE | re.DOTALL)
# "$\frac{1}{36}$, approximately 0.028": the approximation is not the answer.
_APPROX_RE = re.compile(r"approx|about|roughly|around|nearly|≈|\\approx|~", re.IGNORECASE)


def _brace_pairs(text: str) -> dict[int, int]:
    """Position of each "{" -> position of its matching "}", in one linear pass."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            pairs[stack.pop()] = i
        i += 1
    return pairs


def _boxes(text: str) -> list[tuple[int, int, str]]:
    """(start, end, content) of every complete top-level box, in order (a box inside an earlier box
    is part of that one). Linear: braces are matched once for the whole text."""
    out: list[tuple[int, int, str]] = []
    pairs: dict[int, int] | None = None
    pos = 0
    for match in _BOX_RE.finditer(text):
        if match.start() < pos:
            continue
        end = match.end()
        if end < len(text) and text[end] == "{":
            pairs = _brace_pairs(text) if pairs is None else pairs
            close = pairs.get(end)
            if close is not None:
                out.append((match.start(), close + 1, text[end + 1:close].strip()))
                pos = close + 1
        elif match.group(0).endswith((" ", "\t")):  # "\boxed 5": TeX takes the next token
            token = re.match(r"[^\s$]+", text[end:])
            if token:
                out.append((match.start(), end + token.end(), token.group(0)))
                pos = end + token.end()
    return out


def last_boxed(text: str) -> str | None:
    """Content of the last complete `\\boxed{...}` / `\\fbox{...}` (or `\\boxed 5`)."""
    boxes = _boxes(text)
    return boxes[-1][2] if boxes else None


def boxed_answer(text: str) -> str | None:
    """The last box, joined with the boxes just before it when only connectors separate them."""
    boxes = _boxes(text)
    if not boxes:
        return None
    group = [boxes[-1]]
    for prev in reversed(boxes[:-1]):
        gap = text[prev[1] : group[0][0]]
        if len(gap) > _MAX_BOX_GAP or "\n\n" in gap or _BOX_GAP_RE.fullmatch(gap) is None:
            break
        group.insert(0, prev)
    parts: list[str] = []
    for _, _, content in group:
        if content not in parts:  # "\boxed{5} and \boxed{5}" is one answer
            parts.append(content)
    return ", ".join(parts)


def strip_wrappers(ans: str) -> str:
    ans = ans.strip()
    # Markdown bold/italics and math delimiters around the whole answer.
    for _ in range(4):
        before = ans
        ans = ans.strip().strip("*_`").strip()
        if ans.startswith("$$") and ans.endswith("$$") and len(ans) > 4:
            ans = ans[2:-2]
        elif ans.startswith("$") and ans.endswith("$") and len(ans) > 2:
            ans = ans[1:-1]
        elif ans.startswith("\\(") and ans.endswith("\\)"):
            ans = ans[2:-2]
        elif ans.startswith("\\[") and ans.endswith("\\]"):
            ans = ans[2:-2]
        if ans == before:
            break
    return ans.strip().rstrip(".;,:").strip()


def answer_region(response: str) -> str:
    """The part of a response that can hold its final answer (see the module docstring)."""
    cut = _TURN_END_RE.search(response)
    if cut is not None:
        response = response[: cut.start()]
    think = response.rfind(_THINK_END)
    if think != -1 and response[think + len(_THINK_END):].strip():
        return response[think + len(_THINK_END):]
    return response


def answer_is_span(text: str, marker: re.Pattern = ANSWER_IS_RE) -> str | None:
    """Text after the last "the answer is", up to the end of that sentence (or line). When the
    marker ends its line ("The answer is:"), the answer is the next non-empty line."""
    last = None
    for last in marker.finditer(text):
        pass
    if last is None:
        return None
    rest = text[last.end() :]
    if not rest.split("\n", 1)[0].strip(" :*"):
        return following_block(rest.split("\n", 1)[1] if "\n" in rest else "")
    # A "$...$" answer (or several: "$x=1$ or $x=2$") ends with its last span, whatever "." it holds.
    spans = _MATH_LIST_RE.match(rest)
    if spans:
        parts = [(a or b).strip() for a, b in _INLINE_BODY_RE.findall(spans.group(0)) if (a or b).strip()]
        return ", ".join(parts) if len(parts) > 1 else strip_wrappers(spans.group(0)) or None
    cut = _SENTENCE_END_RE.search(_ABBREVIATION_RE.sub(lambda m: "_" * len(m.group(0)), rest))
    span = rest[: cut.start()] if cut else rest
    span = _AFTERTHOUGHT_RE.sub("", span)
    span = strip_wrappers(span)
    return span or None


def answer_line(text: str) -> tuple[int, str] | None:
    """(position, content) of the last "Answer: x" line; content may be empty when the answer is
    on the following line ("### Final Answer:" then "**42**")."""
    last = None
    for last in ANSWER_LINE_RE.finditer(text):
        pass
    if last is None:
        return None
    content = strip_wrappers(last.group(1))
    if not content:
        content = following_block(text[last.end():]) or ""
    return last.start(), content


_LIST_ITEM_RE = re.compile(r"\s*(?:\d{1,3}[.)]|[-*•])\s+\S")


def following_block(text: str) -> str | None:
    """The answer written under its marker: a numbered / bulleted list (all its items), else the
    next non-empty line."""
    lines = [ln for ln in text.split("\n") if ln.strip()]
    if not lines:
        return None
    if _LIST_ITEM_RE.match(lines[0]):
        block = []
        for ln in lines:
            if not _LIST_ITEM_RE.match(ln):
                break
            block.append(ln.strip())
        return "\n".join(block)
    return strip_wrappers(lines[0]) or None


def trailing_list(text: str) -> str | None:
    """The numbered / bulleted list a response ends with, if any (items joined by newlines)."""
    lines = [ln for ln in text.rstrip().split("\n")]
    block: list[str] = []
    for ln in reversed(lines):
        if not _LIST_ITEM_RE.match(ln):
            break
        block.insert(0, ln.strip())
    return "\n".join(block) or None


def marked_answer(text: str) -> str | None:
    """The answer an explicit marker commits to (boxed > #### > "answer is" > "Answer:" line)."""
    boxed = strip_wrappers(boxed_answer(text) or "")
    if boxed:  # an empty \boxed{} commits to nothing: look for another marker
        return boxed
    gsm = list(_GSM8K_RE.finditer(text))
    if gsm:
        return strip_wrappers(gsm[-1].group(1)) or None
    span = answer_is_span(text)
    if span is not None:
        return span
    line = answer_line(text)
    if line is not None and line[1]:
        # "Final Answer: The largest $n$ is 34.": a sentence on the answer line; its last number
        # or formula is the answer (a word answer such as "Answer: Tuesday" stays as it is).
        if len(_PROSE_WORD_RE.findall(_TEXT_CMD_RE.sub(" ", line[1]))) >= 2:
            return last_expression(line[1]) or line[1]
        return line[1]
    return None


def last_expression(text: str) -> str | None:
    """The last LaTeX math span or plain number, whichever ends later (math-verify's fallback).
    A "$...$" span with prose words in it is two currency signs ("costs $4 and then $5"), not math."""
    text = text[-_FALLBACK_CHARS:]  # the answer is in the tail; this also bounds the span scan
    best: tuple[int, str] | None = None
    masked = list(text)
    spans: list[tuple[int, int, str]] = []
    for m in _MATH_SPAN_RE.finditer(text):
        body = next(g for g in m.groups() if g is not None).strip()
        if m.group(4) is not None and body[:1].isdigit() and _PROSE_WORD_RE.search(body):
            continue  # "$4 and then $": currency signs; its numbers stay for the plain scan
        masked[m.start():m.end()] = " " * (m.end() - m.start())
        if body:
            spans.append((m.start(), m.end(), body))
    if spans:
        best = (spans[-1][1], _chain(text, spans))
    plain = "".join(masked)
    number = None
    depth, depth_at, scanned = 0, 0, 0
    for candidate in _PLAIN_NUMBER_RE.finditer(plain):
        # A number inside braces of plain text ("2^{10}", a brace soup) is not a stated answer.
        segment = plain[scanned:candidate.start()]
        depth = max(0, depth + segment.count("{") - segment.count("}"))
        scanned = candidate.start()
        if depth == 0:
            number = candidate
    if number is not None and (best is None or (number.end() > best[0]
                                                and not _APPROX_RE.search(plain[best[0]:number.start()]))):
        chain = _PLAIN_CHAIN_RE.search(plain[:number.end()])
        best = (number.end(), chain.group(0).replace(" or ", ", ").replace(" and ", ", ") if chain
                else number.group(0).rstrip(","))
    return strip_wrappers(best[1]) or None if best else None


def _chain(text: str, spans: list[tuple[int, int, str]]) -> str:
    """The last span, with the spans before it that give other values of the same unknown:
    "$x = 2$ or $x = 3$" -> "x = 2, x = 3" (roots), but "$x = 2$ and $y = 3$" -> "y = 3"."""
    last = _ASSIGNED_RE.match(spans[-1][2])
    if last is None:
        return spans[-1][2]
    chain = [spans[-1]]
    for prev in reversed(spans[:-1]):
        same = _ASSIGNED_RE.match(prev[2])
        if not (same and same.group(1) == last.group(1) and _CONNECTOR_RE.fullmatch(text[prev[1]:chain[0][0]])):
            break
        chain.insert(0, prev)
    return ", ".join(body for _, _, body in chain)


def extract_math_answer(response: str, extraction: Extraction = DEFAULT_EXTRACTION) -> str | None:
    """The final answer string of a math response, or None when it commits to none."""
    region = answer_region(response)
    answer = marked_answer(region)
    if answer is not None:
        return answer
    if extraction == "strict":
        return None
    return last_expression(region)


def strip_gold(gold: str) -> str:
    """Gold answers arrive as "18", "$\\frac12$", "\\boxed{3}" or a GSM8K solution ending "#### 18"."""
    boxed = boxed_answer(gold)
    if boxed is not None:
        return strip_wrappers(boxed)
    gsm = list(_GSM8K_RE.finditer(gold))
    if gsm:
        return strip_wrappers(gsm[-1].group(1))
    return strip_wrappers(gold)
