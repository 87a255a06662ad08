"""`logic:synlogic/<task>`: SynLogic's tasks (github.com/MiniMax-AI/SynLogic), answers in the formats
its prompts ask for, golds in the shapes it stores them. Every checker parses; nothing is eval()'d.

    game_of_24      a ```python fenced expression; gold the puzzle's metadata as JSON
                    {"numbers": [...], "operators": ["+", "-", "*", "/"], "result": 24} ("target" too).
                    Exact Fractions: 4 / (1 - 5/6) is 24, as Python's float division is up to rounding
                    (SynLogic's own verifier compares the result with itself, so it accepts any value).
    cryptarithm     "The answer is 9567 + 1085 = 10652"; gold that equation (unique by construction)
    sudoku          a ```python tuple of 9 rows; gold {"solution": ..., "puzzle": ...} (SynLogic's
                    "answer" / "original_sudoku" too; 0 or X marks a blank). Any valid grid that keeps
                    the puzzle's givens counts, not only the stored solution.
    dyck_language   the completed bracket sequence; gold the full sequence. With the question, the
                    completion alone ("])") counts too (the question holds the prefix).
    web_of_lies     "The answer is **yes, no, yes**."; gold "yes, no, yes" (or 是/否)
    word_sorting    \\boxed{w1,w2,w3}; gold "w1, w2, w3"
    object_counting \\boxed{12}; gold "12"

Where the answer is found: an <answer> tag (SynLogic's R1-style training format), the task's own
format (code block, \\boxed{}), an explicit marker ("the answer is", "答案是", "Answer:"); with the
lenient policy also the response's last line.
"""
from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from fractions import Fraction

from services.wire.verdicts import Verdict
from verifier.context import Context
from verifier.extract import answer_region, last_boxed, strip_wrappers
from verifier.graders.expression import check_expression
from verifier.graders.logic import Hedged, committed_answer, last_answer_tag, parse_number

_FENCE_RE = re.compile(r"```[ \t]*[A-Za-z0-9_+-]*[ \t]*\n?(.*?)```", re.DOTALL)
_ZH_MARKER_RE = re.compile(r"(?:答案是|答案[:：]|答案为)[:：]?\s*")
_EQUATION_RE = re.compile(r"\d+(?:\s*[-+*×xX·−–]\s*\d+)+\s*=\s*-?\d+")
_GRID_ROW_RE = re.compile(r"[(\[]\s*([1-9](?:\s*,\s*[1-9]){8})\s*,?\s*[)\]]")
_PLAIN_ROW_RE = re.compile(r"^[\s|]*([1-9](?:[\s,|]*[1-9]){8})[\s|]*$", re.MULTILINE)
_TRUTH_RE = re.compile(r"\b(yes|no|true|false|truth|lies?|liar)\b|(是|否|真|假|谎)", re.IGNORECASE)
_BRACKETS = "()[]{}<>"
Grader = Callable[..., Verdict]


def _region(response: str) -> str:
    region = answer_region(response)
    tag = last_answer_tag(region)
    return tag[1] if tag is not None else region


def _marked(region: str) -> str | None:
    """The span an explicit marker commits to: "the answer is", "Answer:", \\boxed{}, "答案是"."""
    zh = None
    for zh in _ZH_MARKER_RE.finditer(region):
        pass
    if zh is not None:
        return strip_wrappers(re.split(r"[。\n]", region[zh.end():], maxsplit=1)[0]) or None
    return committed_answer(region, bare=False)


def _last_line(region: str) -> str | None:
    lines = [ln.strip() for ln in region.strip().split("\n") if ln.strip()]
    return lines[-1] if lines else None


def _span(response: str, ctx: Context, *, own: Callable[[str], str | None] | None = None) -> str | None:
    """The answer span: the task's own format, else a marker, else (lenient) the last line."""
    region = _region(response)
    found = own(region) if own else None
    if found is None:
        found = _marked(region)
    if found is None and ctx.extraction == "lenient":
        found = _last_line(region)
    return found


def _last_fence(region: str) -> str | None:
    blocks = [b.strip() for b in _FENCE_RE.findall(region) if b.strip()]
    return blocks[-1] if blocks else None


def _spec(gold: str) -> dict:
    spec = json.loads(gold)
    if not isinstance(spec, dict):
        raise ValueError("gold must be a JSON object")
    return spec


def game_of_24(response: str, gold: str, ctx: Context = Context()) -> Verdict:
    try:
        spec = _spec(gold)
        numbers = Counter(int(n) for n in spec["numbers"])
        target = Fraction(str(spec.get("result", spec.get("target", 24))))
        operators = frozenset(spec.get("operators", "+-*/"))
    except (ValueError, KeyError, TypeError) as err:
        return Verdict.failed("error", None, f"gold must be JSON {{'numbers': [...], 'result': N}}: {err}")

    def own(region: str) -> str | None:
        block = _last_fence(region)
        return _last_line(block) if block else None

    span = _span(response, ctx, own=own)
    if span is None:
        return Verdict.failed("no_answer")
    return check_expression(span, numbers, target, operators=operators)


def _equation(text: str) -> str | None:
    found = _EQUATION_RE.findall(text)
    return found[-1] if found else None


def _canonical_equation(eq: str) -> str:
    eq = re.sub(r"[×xX·]", "*", eq).replace("−", "-").replace("–", "-")
    return re.sub(r"\s+", "", eq)


def cryptarithm(response: str, gold: str, ctx: Context = Context()) -> Verdict:
    expected = gold
    if gold.lstrip().startswith("{"):
        try:
            expected = str(_spec(gold)["answer"])
        except (ValueError, KeyError, TypeError) as err:
            return Verdict.failed("error", None, f"gold must be an equation or JSON with 'answer': {err}")
    if _equation(expected) is None:
        return Verdict.failed("error", None, f"gold {gold[:80]!r} is not a digit equation")
    region = _region(response)
    marked = _marked(region)
    equation = _equation(marked) if marked else None
    if equation is None and ctx.extraction == "lenient":
        equation = _equation(region)
    if equation is None:
        return Verdict.failed("no_answer", marked)
    return Verdict.graded(_canonical_equation(equation) == _canonical_equation(_equation(expected)), equation)


def _grid(text: str) -> list[list[int]] | None:
    rows = _GRID_ROW_RE.findall(text)
    if len(rows) < 9:
        rows = _PLAIN_ROW_RE.findall(text)
    if len(rows) < 9:
        return None
    return [[int(d) for d in re.findall(r"[1-9]", row)] for row in rows[-9:]]


def _cells(value) -> list[list[int]] | None:
    """A stored grid with 0 for blanks (0, "X", "x", ".", "_"): a list of 9 rows (lists, or strings
    like "53XX7XXXX"), its tuple text "((5,3,0,...),...)", or 9 lines of 9 characters."""
    if isinstance(value, str):
        rows = re.findall(r"[(\[]([^()\[\]]*)[)\]]", value)
        value = ([re.findall(r"[0-9Xx._]", row) for row in rows] if len(rows) == 9
                 else re.findall(r"^\s*([0-9Xx._]{9})\s*$", value, re.MULTILINE))
    if not isinstance(value, list) or len(value) != 9:
        return None
    out = []
    for row in value:
        if isinstance(row, str):
            row = list(row)
        if not isinstance(row, (list, tuple)) or len(row) != 9:
            return None
        out.append([int(v) if str(v).isdigit() else 0 for v in row])
    return out


def _question_puzzle(question: str | None) -> list[list[int]] | None:
    """SynLogic's prompts print the puzzle as 9 lines of digits and X."""
    if not question:
        return None
    rows = re.findall(r"^\s*([0-9Xx._]{9})\s*$", question, re.MULTILINE)
    return _cells(rows[:9]) if len(rows) >= 9 else None


def _valid(grid: list[list[int]]) -> bool:
    full = set(range(1, 10))
    rows = all(set(r) == full for r in grid)
    cols = all({grid[r][c] for r in range(9)} == full for c in range(9))
    boxes = all({grid[r][c] for r in range(br, br + 3) for c in range(bc, bc + 3)} == full
                for br in (0, 3, 6) for bc in (0, 3, 6))
    return rows and cols and boxes


def sudoku(response: str, gold: str, ctx: Context = Context()) -> Verdict:
    try:
        spec = _spec(gold) if gold.lstrip().startswith("{") else {"solution": gold}
    except ValueError as err:
        return Verdict.failed("error", None, f"gold must be JSON {{'solution', 'puzzle'}}: {err}")
    solution = _cells(spec.get("solution", spec.get("answer", spec.get("complete_sudoku"))))
    puzzle = _cells(spec.get("puzzle", spec.get("original_sudoku"))) or _question_puzzle(ctx.question)
    if solution is None and puzzle is None:
        return Verdict.failed("error", None, "gold has neither a 9x9 solution nor a 9x9 puzzle")
    region = _region(response)
    block = _last_fence(region) or _marked(region)
    grid = _grid(block) if block else None
    if grid is None and ctx.extraction == "lenient":
        grid = _grid(region)
    if grid is None:
        return Verdict.failed("no_answer", None, "no 9x9 grid of digits 1-9 in the response")
    shown = "(" + ",".join("(" + ",".join(map(str, r)) + ")" for r in grid) + ")"
    if puzzle is None:  # only the stored solution to go by
        return Verdict.graded(grid == solution, shown)
    if not _valid(grid):
        return Verdict.graded(False, shown, "not a valid sudoku grid")
    keeps = all(puzzle[r][c] in (0, grid[r][c]) for r in range(9) for c in range(9))
    return Verdict.graded(keeps, shown, None if keeps else "changes a given of the puzzle")


def _brackets(text: str) -> str:
    return "".join(ch for ch in text if ch in _BRACKETS)


def dyck_language(response: str, gold: str, ctx: Context = Context()) -> Verdict:
    expected = gold
    if gold.lstrip().startswith("{"):
        try:
            spec = _spec(gold)
            expected = str(spec.get("full_sequence", spec.get("answer")))
        except (ValueError, TypeError) as err:
            return Verdict.failed("error", None, f"gold must be a bracket sequence: {err}")
    expected = _brackets(expected)
    span = _span(response, ctx)
    answer = _brackets(span) if span else ""
    if not answer:
        return Verdict.failed("no_answer", span)
    if answer == expected:
        return Verdict.graded(True, answer)
    if ctx.question:  # the question holds the prefix: the completion alone is an answer too
        # The puzzle's sequence is the first line made of brackets only (an example format follows).
        lines = [_brackets(ln) for ln in ctx.question.split("\n") if ln.strip() and not ln.strip().strip(_BRACKETS)]
        if lines and lines[0] + answer == expected:
            return Verdict.graded(True, answer)
    return Verdict.graded(False, answer)


def _truth_values(text: str) -> list[bool]:
    out = []
    for en, zh in _TRUTH_RE.findall(text):
        word = (en or zh).lower()
        out.append(word in ("yes", "true", "truth", "是", "真"))
    return out


def web_of_lies(response: str, gold: str, ctx: Context = Context()) -> Verdict:
    expected = _truth_values(gold)
    if not expected:
        return Verdict.failed("error", None, f"gold {gold[:80]!r} holds no yes/no values")

    def own(region: str) -> str | None:
        marked = _marked(region)
        if marked is None and ctx.extraction == "lenient":
            last = _last_line(region) or ""
            bold = re.findall(r"\*\*([^*]+)\*\*", last)
            return bold[-1] if bold else None
        return marked

    span = _span(response, ctx, own=own)
    values = _truth_values(span) if span else []
    if not values:
        return Verdict.failed("no_answer", span)
    return Verdict.graded(values == expected, span)


def _word_list(text: str) -> list[str]:
    text = text.replace("，", ",")
    parts = text.split(",") if "," in text else text.split()
    return [p.strip().strip(".*`'\"").lower() for p in parts if p.strip().strip(".*`'\"")]


def word_sorting(response: str, gold: str, ctx: Context = Context()) -> Verdict:
    span = _span(response, ctx, own=last_boxed)
    if not span:
        return Verdict.failed("no_answer", span)
    return Verdict.graded(_word_list(span) == _word_list(gold), span)


def object_counting(response: str, gold: str, ctx: Context = Context()) -> Verdict:
    try:
        expected = parse_number(gold)
    except Hedged:
        expected = None
    if expected is None:
        return Verdict.failed("error", None, f"gold {gold[:80]!r} is not a number")
    span = _span(response, ctx, own=last_boxed)
    try:
        value = parse_number(span) if span else None
    except Hedged as hedge:
        return Verdict.graded(False, span, f"hedged: {hedge}")
    if value is None:
        return Verdict.failed("no_answer", span)
    return Verdict.graded(value == expected, span)


GRADERS: dict[str, Grader] = {
    "game_of_24": game_of_24,
    "cryptarithm": cryptarithm,
    "sudoku": sudoku,
    "dyck_language": dyck_language,
    "web_of_lies": web_of_lies,
    "word_sorting": word_sorting,
    "object_counting": object_counting,
}
