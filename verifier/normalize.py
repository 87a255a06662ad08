"""Rewrite answer strings into LaTeX that math-verify parses correctly.

Each rule fixes a known math-verify miss (see its public issue list): scientific notation read as
6.7*e - 5, unicode math (x², √2, ½, full-width digits), number words, `\\textbf{(C)}` choices,
`\\varnothing`, repeating decimals `0.\\overline{3}`, `\\frac{x}{1}`. Rules are pure string rewrites,
linear in the input, applied to the extracted answer only (never to the whole response).
"""
from __future__ import annotations

import re
import unicodedata
from fractions import Fraction

_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁽⁾ⁿ", "0123456789+-()n")
_SUPERSCRIPT_RUN_RE = re.compile("[⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻⁽⁾ⁿ]+")
_SUBSCRIPTS = str.maketrans("₀₁₂₃₄₅₆₇₈₉", "0123456789")
_SUBSCRIPT_RUN_RE = re.compile("[₀₁₂₃₄₅₆₇₈₉]+")
_VULGAR = {
    "½": (1, 2), "⅓": (1, 3), "⅔": (2, 3), "¼": (1, 4), "¾": (3, 4), "⅕": (1, 5), "⅖": (2, 5),
    "⅗": (3, 5), "⅘": (4, 5), "⅙": (1, 6), "⅚": (5, 6), "⅐": (1, 7), "⅛": (1, 8), "⅜": (3, 8),
    "⅝": (5, 8), "⅞": (7, 8), "⅑": (1, 9), "⅒": (1, 10),
}
_VULGAR_RE = re.compile(r"(\d*)\s*([" + "".join(_VULGAR) + "])")
_SYMBOLS = {
    "π": r"\pi ", "∞": r"\infty ", "×": r"\times ", "·": r"\cdot ", "⋅": r"\cdot ", "÷": r"\div ",
    "−": "-", "–": "-", "≤": r"\le ", "≥": r"\ge ", "≠": r"\neq ", "∪": r"\cup ", "∩": r"\cap ",
    "∅": r"\emptyset ", "°": r"^\circ ", "θ": r"\theta ", "α": r"\alpha ", "β": r"\beta ",
    "±": r"\pm ", "∈": r"\in ", "→": r"\to ",
}
_SQRT_RE = re.compile(r"([√∛∜])\s*(\([^()]*\)|\{[^{}]*\}|\d+(?:\.\d+)?|[A-Za-z])")
_SCI_RE = re.compile(r"(?<![\w.\\{])(\d+(?:\.\d+)?)[eE]([+-]?\d+)(?![\w.])")
_OVERLINE_RE = re.compile(r"(-?)(\d*)\.(\d*)\\(?:overline|bar)\{(\d+)\}")
_FRAC_OVER_ONE_RE = re.compile(r"\\[dt]?frac\{([^{}]+)\}\{1\}")
_EMPTYSET_RE = re.compile(r"\\varnothing|\\O(?![A-Za-z])|\\\{\s*\\\}")
_TEXT_CMD_RE = re.compile(r"\\(?:textbf|textit|mathbf|mathrm|text|mbox|textrm|mathit|emph)\s*\{([^{}]*)\}")
_CHOICE_RE = re.compile(r"^\(?\s*([A-E])\s*\)?(?:[\s.:)]|$)")

_UNITS = {"zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
          "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
          "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
          "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
          "seventy": 70, "eighty": 80, "ninety": 90}
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000}
_FRACTION_WORDS = {"half": 2, "halves": 2, "third": 3, "thirds": 3, "quarter": 4, "quarters": 4,
                   "fourth": 4, "fourths": 4, "fifth": 5, "fifths": 5}


_SCALE_WORD_RE = re.compile(r"\b(?:hundred|thousand|million|billion|trillion|dozens?)\b", re.IGNORECASE)


def words_to_number(text: str) -> Fraction | None:
    """'twenty-one' -> 21, 'one hundred and five' -> 105, 'two thirds' -> 2/3; None if not a number."""
    tokens = [t for t in re.split(r"[\s-]+", text.strip().lower().rstrip(".")) if t and t != "and"]
    if not tokens or len(tokens) > 12:
        return None
    negative = tokens[0] in ("minus", "negative")
    if negative:
        tokens = tokens[1:]
    if len(tokens) == 2 and tokens[0] in _UNITS | {"a": 1} and tokens[1] in _FRACTION_WORDS:
        value = Fraction(_UNITS.get(tokens[0], 1), _FRACTION_WORDS[tokens[1]])
        return -value if negative else value
    total, current = 0, 0
    for tok in tokens:
        if tok in _UNITS:
            current += _UNITS[tok]
        elif tok == "hundred":
            current = max(current, 1) * 100
        elif tok in _SCALES:
            total += max(current, 1) * _SCALES[tok]
            current = 0
        else:
            return None
    value = Fraction(total + current)
    return -value if negative else value


def _repeating_decimal(m: re.Match) -> str:
    sign, whole, fixed, rep = m.group(1), m.group(2) or "0", m.group(3), m.group(4)
    # x = whole.fixed(rep)(rep)... = (whole fixed rep - whole fixed) / (10^len(fixed) (10^len(rep) - 1))
    num = int(whole + fixed + rep) - int(whole + fixed)
    value = Fraction(num, 10 ** len(fixed) * (10 ** len(rep) - 1))
    return f"{sign}\\frac{{{value.numerator}}}{{{value.denominator}}}"


def _vulgar(m: re.Match) -> str:
    a, b = _VULGAR[m.group(2)]
    whole = int(m.group(1)) if m.group(1) else 0
    return f"\\frac{{{whole * b + a}}}{{{b}}}"


def _sqrt(m: re.Match) -> str:
    arg = m.group(2)
    if arg[0] in "({":
        arg = arg[1:-1]
    root = {"√": "", "∛": "[3]", "∜": "[4]"}[m.group(1)]
    return f"\\sqrt{root}{{{arg}}}"


def unicode_to_latex(s: str) -> str:
    s = _SUPERSCRIPT_RUN_RE.sub(lambda m: "^{" + m.group(0).translate(_SUPERSCRIPTS) + "}", s)
    s = _SUBSCRIPT_RUN_RE.sub(lambda m: "_{" + m.group(0).translate(_SUBSCRIPTS) + "}", s)
    s = _VULGAR_RE.sub(_vulgar, s)
    s = _SQRT_RE.sub(_sqrt, s)
    for ch, rep in _SYMBOLS.items():
        s = s.replace(ch, rep)
    # NFKC folds full-width digits/letters/operators (１２ -> 12, ＋ -> +) after the rules above
    # handled the characters it would fold wrongly (x² -> x2, ½ -> 1⁄2).
    return unicodedata.normalize("NFKC", s)


def choice_letter(s: str) -> str | None:
    """'\\textbf{(C)}', '(C) 12', 'C', 'c)' -> 'C' (None when the string is not a choice)."""
    plain = _TEXT_CMD_RE.sub(r"\1", s).strip().strip("$ ")
    m = _CHOICE_RE.match(plain)
    if not m:
        return None
    rest = plain[m.end():].strip()
    # "C" alone, or "(C)" followed by the option's text/value; a bare "a" followed by text is prose.
    if rest and not plain.lstrip().startswith("("):
        return None
    return m.group(1).upper()


def plain_text(s: str) -> str:
    """Lower-cased words of a text answer: '\\text{Monday}.' -> 'monday'."""
    s = _TEXT_CMD_RE.sub(r"\1", s)
    s = re.sub(r"\\[,;!: ]|~", " ", s)
    s = re.sub(r"[^\w\s]", " ", s.lower())
    return " ".join(s.split())


def normalize_math(s: str) -> str:
    """LaTeX that math-verify reads as intended; see the module docstring for each rule."""
    s = unicode_to_latex(s)
    s = _EMPTYSET_RE.sub(r"\\emptyset", s)
    s = _OVERLINE_RE.sub(_repeating_decimal, s)
    s = _SCI_RE.sub(lambda m: f"{m.group(1)}\\times 10^{{{m.group(2)}}}", s)
    for _ in range(3):  # nested \frac{\frac{a}{1}}{1}
        s = _FRAC_OVER_ONE_RE.sub(r"(\1)", s)
    text = plain_text(s)
    if text and re.fullmatch(r"[a-z\s]+", text):
        value = words_to_number(text)
        if value is not None:
            s = str(value.numerator) if value.denominator == 1 else f"\\frac{{{value.numerator}}}{{{value.denominator}}}"
    # "18 dollars", "5 cm", "30 degrees": a trailing plain word after a number is a unit.
    m = re.fullmatch(r"(-?[\d.,]+(?:\\%|%)?)\s*([A-Za-z]{2,}(?:\s+[A-Za-z]+)?)\.?", s.strip())
    if m and m.group(2).lower() not in ("and", "or", "e", "i", "x", "pi") and not _SCALE_WORD_RE.search(m.group(2)):
        s = m.group(1)
    return s.strip()


# --- answer clean-up before comparison (each rule: a form math-verify misreads or rejects) --------

_COLOR_RE = re.compile(r"\\(?:textcolor|color)\s*\{[^{}]*\}")
# "\textbf{(C)}\ 17", "\text{(B) } 6", "(E) 40": an AMC choice label in front of the value.
_CHOICE_LABEL_RE = re.compile(r"^\s*(?:\\text(?:bf|rm)?\s*\{\s*\(?\s*[A-E]\s*\)?\s*\}|\(\s*[A-E]\s*\))"
                              r"(?:\\[ ,;!:]|~|\s)*")
_RELATION_RE = [
    (re.compile(r">="), r"\\geq "), (re.compile(r"<="), r"\\leq "), (re.compile(r"!="), r"\\neq "),
    (re.compile(r"\\geqslant(?![A-Za-z])"), r"\\geq "), (re.compile(r"\\leqslant(?![A-Za-z])"), r"\\leq "),
    (re.compile(r"\\gt(?![A-Za-z])"), ">"), (re.compile(r"\\lt(?![A-Za-z])"), "<"),
    (re.compile(r"\\ne(?![A-Za-z])"), r"\\neq "),
]
# Matrices: array / bmatrix / plain matrix forms become pmatrix (\left[ ... \right] around an array too).
_ARRAY_OPEN_RE = re.compile(r"(?:\\left\s*[\[(]\s*)?\\begin\{(?:array|bmatrix|Bmatrix|matrix|smallmatrix)\}(?:\s*\{[^{}]*\})?")
_ARRAY_CLOSE_RE = re.compile(r"\\end\{(?:array|bmatrix|Bmatrix|matrix|smallmatrix)\}(?:\s*\\right\s*[\])])?")
# An odd root of a negative number is real: sympy's principal root of -8 is 1 + sqrt(3) i, not -2.
_ODD_ROOT_RE = re.compile(r"\\sqrt\s*\[\s*(\d*[13579])\s*\]\s*\{\s*-\s*([^{}+\-]+)\}")
_OPENERS, _CLOSERS = "({", ")}"
_TRIG_RE = re.compile(r"\\(?:sin|cos|tan|cot|sec|csc)(?![A-Za-z])")
_DEGREES_RE = re.compile(r"(\d+(?:\.\d+)?)\s*\^\s*\{?\s*\\circ\s*\}?")
_APPROX_TAIL_RE = re.compile(r"\s*(?:\\approx|≈|\\sim).*$", re.DOTALL)


def strip_choice_label(s: str) -> str:
    """'\\textbf{(C)}\\ 17' -> '17'; a bare label stays (it is the answer itself)."""
    m = _CHOICE_LABEL_RE.match(s)
    return s[m.end():].strip() if m and s[m.end():].strip() else s


def unwrap_groups(s: str) -> str:
    """Drop brackets that directly wrap another bracket group: '((((7))))' -> '(7)', '{{{x}}}' -> '{x}'.
    Linear (one stack pass); nesting like this is free of meaning, but costs sympy exponential time."""
    stack: list[int] = []
    match: dict[int, int] = {}
    i = 0
    while i < len(s):
        ch = s[i]
        if ch == "\\":
            i += 2  # \{ \} \left( are not grouping brackets here
            continue
        if ch in _OPENERS:
            stack.append(i)
        elif ch in _CLOSERS and stack and _OPENERS.index(s[stack[-1]]) == _CLOSERS.index(ch):
            match[stack.pop()] = i
        i += 1
    drop = set()
    for start, end in match.items():
        if match.get(start + 1) == end - 1:
            drop.update((start + 1, end - 1))
    if s.startswith("{") and match.get(0) == len(s) - 1:
        drop.update((0, len(s) - 1))  # braces around the whole answer group nothing
    return "".join(ch for k, ch in enumerate(s) if k not in drop) if drop else s


def clean_answer(s: str) -> str:
    """Presentation-only rewrites, safe for any answer: colour, redundant brackets, relations spelled
    in ASCII or as \\lt / \\ne, matrix environments, real odd roots."""
    s = _COLOR_RE.sub("", s)
    s = _APPROX_TAIL_RE.sub("", s)  # "\frac{1}{36} \approx 0.028": the exact part is the answer
    s = s.replace("\\displaystyle", "").replace("\\left.", "").replace("\\right.", "")
    for pattern, repl in _RELATION_RE:
        s = pattern.sub(repl, s)
    s = _ARRAY_OPEN_RE.sub(r"\\begin{pmatrix}", s)
    s = _ARRAY_CLOSE_RE.sub(r"\\end{pmatrix}", s)
    s = _ODD_ROOT_RE.sub(r"-\\sqrt[\1]{\2}", s)
    if _TRIG_RE.search(s):  # sin(30^\circ): sympy's trigonometry is in radians
        s = _DEGREES_RE.sub(r"\\frac{\1\\pi}{180}", s)
    return unwrap_groups(s.strip()).strip()
