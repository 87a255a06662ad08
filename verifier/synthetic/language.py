"""BBH-style symbol and word tasks: dyck languages, word sorting, object counting."""
from __future__ import annotations

import random

from verifier.synthetic.base import Problem, boxed, check_count

# ---------------------------------------------------------------- dyck languages
_PAIRS = {"(": ")", "[": "]", "<": ">", "{": "}"}


def dyck_problems(count: int, *, seed: int, length: int = 6, brackets: str = "([<") -> list[Problem]:
    """Close an open bracket sequence of `length` symbols. Braces are left out by default so the
    answer fits inside \\boxed{} unescaped."""
    check_count(count, length=length)
    if not brackets or set(brackets) - set(_PAIRS):
        raise ValueError(f"brackets must be opening brackets from {sorted(_PAIRS)}")
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        seq: list[str] = []
        stack: list[str] = []
        while len(seq) < length or not stack:
            if stack and len(seq) < length and rng.random() < 0.4:
                seq.append(_PAIRS[stack.pop()])
            elif len(seq) < length:
                stack.append(rng.choice(brackets))
                seq.append(stack[-1])
            else:  # the prefix closed itself at the end: open one more so there is something to close
                stack.append(rng.choice(brackets))
                seq.append(stack[-1])
        closing = " ".join(_PAIRS[b] for b in reversed(stack))
        open_now = " ".join(stack)
        out.append(Problem(prompt=f"Close the sequence: {' '.join(seq)}", answer=closing, task="logic:dyck",
                           solution=f"Open: {open_now}. The answer is {boxed(closing)}."))
    return out


# ---------------------------------------------------------------- word sorting
WORDS = ("apple", "bird", "cat", "dog", "egg", "fish", "goat", "hat", "ink", "jam", "kite", "lamp", "moon",
         "nut", "owl", "pig", "queen", "rat", "sun", "tree", "urn", "van", "wolf", "yak", "zoo", "ant",
         "bee", "cow", "duck", "elk", "fox", "gem", "hen", "ice", "jet", "key", "leaf", "map", "net", "oak")


def word_sort_problems(count: int, *, seed: int, words: int = 4) -> list[Problem]:
    """Sort `words` distinct words alphabetically."""
    check_count(count, words=words)
    if words > len(WORDS):
        raise ValueError(f"words must be <= {len(WORDS)}")
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        chosen = rng.sample(WORDS, words)
        answer = " ".join(sorted(chosen))
        out.append(Problem(prompt=f"Sort alphabetically: {' '.join(chosen)}", answer=answer,
                           task="logic:word_sort", solution=f"The answer is {boxed(answer)}."))
    return out


# ---------------------------------------------------------------- object counting
CATEGORIES = {
    "fruit": ("apple", "banana", "plum", "peach", "grape", "orange"),
    "animal": ("cat", "dog", "goat", "cow", "pig", "duck"),
    "instrument": ("drum", "flute", "piano", "violin", "trumpet", "harp"),
}
_COUNT_WORDS = ("a", "two", "three", "four", "five")


def _say(name: str, n: int) -> str:
    if n > 1:
        return f"{_COUNT_WORDS[n - 1]} {name}s"
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def object_count_problems(count: int, *, seed: int, items: int = 3, max_each: int = 3,
                          distractors: int = 1) -> list[Problem]:
    """"I have a plum, two cats and three drums. How many animals do I have?" `items` of the asked
    category (each 1..max_each, said in words) plus `distractors` items of other categories."""
    check_count(count, items=items, max_each=max_each)
    if max_each > len(_COUNT_WORDS) or distractors < 0:
        raise ValueError(f"max_each must be <= {len(_COUNT_WORDS)}, distractors >= 0")
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        asked = rng.choice(sorted(CATEGORIES))
        others = [c for c in sorted(CATEGORIES) if c != asked]
        picks = [(name, rng.randint(1, max_each), True) for name in rng.sample(CATEGORIES[asked], items)]
        pool = [name for c in others for name in CATEGORIES[c]]
        picks += [(name, rng.randint(1, max_each), False) for name in rng.sample(pool, min(distractors, len(pool)))]
        rng.shuffle(picks)
        said = [_say(name, n) for name, n, _ in picks]
        counted = [n for _, n, keep in picks if keep]
        total = sum(counted)
        prompt = f"I have {', '.join(said[:-1])} and {said[-1]}. How many {asked}s do I have?"
        out.append(Problem(prompt=prompt, answer=str(total), task="logic:object_count",
                           solution=f"{' + '.join(map(str, counted))} = {total}. The answer is {boxed(str(total))}."))
    return out
