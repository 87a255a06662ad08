"""Pure graders `(response, gold) -> Verdict`, one module per answer family:

    math.py        math answers over math-verify, with our extraction, normalisation and guards
    logic.py       final-answer extraction for BBH-style tasks (choices, yes/no, valid/invalid, ...)
    expression.py  arithmetic-expression answers (countdown, game of 24), parsed, never eval()'d

verifier.tasks maps task names to these; none of them has a deadline of its own (the pool does).
"""
