"""Find the final committed answer in a model response (pure string functions, linear time).

Math responses: last `\\boxed{}`/`\\fbox{}`, else GSM8K `#### x`, else the last "the (final) answer is x",
else the last "Answer: x" line. The helpers scan from the end: the answer lives in the tail, and a
backwards scan keeps 100k-character responses cheap.
"""
from __future__ import annotations

import re

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*")
# "the answer is", "the final answer is", "final answer:", "the correct answer is" ...
ANSWER_IS_RE = re.compile(
    r"(?:the\s+)?(?:final\s+|correct\s+)?answer\s*(?:is|will\s+be|would\s+be|should\s+be|=)\s*:?\s*",
    re.IGNORECASE,
)
# "Answer: x" at the start of a line or after a sentence ("... so we are done. Answer: 12").
_ANSWER_LINE_RE = re.compile(r"(?:^|(?<=[.!?]\s))[ \t>*_#]*(?:final\s+)?answer\s*[:：]\s*(.+?)\s*$",
                             re.IGNORECASE | re.MULTILINE)
_GSM8K_RE = re.compile(r"####\s*(.+?)\s*$", re.MULTILINE)
# A sentence ends at a newline, or at ". " / a final "." not inside a number ("3.5" keeps its point).
_SENTENCE_END_RE = re.compile(r"\n|\.(?=\s|$)")


def balanced_group(text: str, start: int, open_ch: str = "{", close_ch: str = "}") -> tuple[str, int] | None:
    """Content of the bracket group opening at text[start]; returns (content, index after it)."""
    if start >= len(text) or text[start] != open_ch:
        return None
    depth = 0
    i = start
    while i < len(text):
        ch = text[i]
        if ch == "\\":  # skip escaped characters such as \{ and \}
            i += 2
            continue
        if ch == open_ch:
            depth += 1
        elif ch == close_ch:
            depth -= 1
            if depth == 0:
                return text[start + 1 : i], i + 1
        i += 1
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last complete `\\boxed{...}` / `\\fbox{...}` (or `\\boxed 5`)."""
    for match in reversed(list(_BOX_RE.finditer(text))):
        end = match.end()
        group = balanced_group(text, end)
        if group is not None:
            return group[0].strip()
        # "\boxed 5": TeX takes the next token as the argument
        if match.group(0).endswith((" ", "\t")):
            token = re.match(r"[^\s$]+", text[end:])
            if token:
                return token.group(0)
    return None


def _strip_wrappers(ans: str) -> str:
    ans = ans.strip()
    # Markdown bold/italics and math delimiters around the whole answer.
    for _ in range(3):
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


def answer_is_span(text: str) -> str | None:
    """Text after the last "the answer is", up to the end of that sentence (or line)."""
    last = None
    for last in ANSWER_IS_RE.finditer(text):
        pass
    if last is None:
        return None
    rest = text[last.end() :]
    # A "$...$" answer may contain ". " only in pathological cases; cut at the sentence end.
    if rest.startswith("$"):
        close = rest.find("$", 2 if rest.startswith("$$") else 1)
        if close != -1:
            rest = rest[: close + (2 if rest.startswith("$$") else 1)]
    cut = _SENTENCE_END_RE.search(rest)
    span = rest[: cut.start()] if cut else rest
    span = _strip_wrappers(span)
    return span or None


def extract_math_answer(response: str) -> str | None:
    """The final answer string of a math response, or None when it commits to none."""
    boxed = last_boxed(response)
    if boxed is not None:
        return _strip_wrappers(boxed) or None
    gsm = list(_GSM8K_RE.finditer(response))
    if gsm:
        return _strip_wrappers(gsm[-1].group(1)) or None
    span = answer_is_span(response)
    if span is not None:
        return span
    lines = list(_ANSWER_LINE_RE.finditer(response))
    if lines:
        return _strip_wrappers(lines[-1].group(1)) or None
    # A bare short answer ("42", "$\frac{1}{2}$") is its own final answer.
    bare = _strip_wrappers(response)
    if bare and len(bare) <= 40 and "\n" not in bare and not re.search(r"[A-Za-z]{4,}", re.sub(r"\\[A-Za-z]+", "", bare)):
        return bare
    return None


def strip_gold(gold: str) -> str:
    """Gold answers arrive as "18", "$\\frac12$", "\\boxed{3}" or a GSM8K solution ending "#### 18"."""
    boxed = last_boxed(gold)
    if boxed is not None:
        return _strip_wrappers(boxed)
    gsm = list(_GSM8K_RE.finditer(gold))
    if gsm:
        return _strip_wrappers(gsm[-1].group(1))
    return _strip_wrappers(gold)
