"""`simko make-tiny-model`: the embedded default's warm-started tiny reasoner, reproducibly.

    synthetic suite (seeded) -> tokenizer (byte-level BPE trained on it) -> random Qwen2 ->
    supervised warm start on worked solutions, several different valid ones per multi-path problem
    -> pass@1 / pass@8 measured with vLLM + the verifier; token entropy and the mass on ranks 2-3

The SFT budget is deliberately small: the point is a policy whose pass@1 is low but non-zero and
whose pass@K is clearly higher, so RL has a signal and pass@K has room to move. Countdown problems
are warm-started on `paths_per_problem` solutions drawn from all their valid derivations
(verifier/synthetic/paths.py), so the model keeps several solution paths and its forking tokens
carry probability mass for SimKO to act on (measured: warm_start.json "token_profile"). The
shipped copy lives in models/tiny-reasoner/ (services.models resolves `builtin:tiny` to it).
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

# Prompts of the synthetic suite are rendered "Q: ...\nA:" and solutions start with a space.
TEMPLATE = "Q: {prompt}\nA:"
MAX_TOKENS = 48


@dataclass(frozen=True)
class TinyRecipe:
    seed: int = 0
    hidden: int = 256
    layers: int = 4
    heads: int = 4
    kv_heads: int = 2
    vocab_size: int = 512
    sft_problems: int = 20000
    paths_per_problem: int = 4  # distinct worked solutions per multi-path problem in the SFT data
    sft_steps: int = 400
    batch_size: int = 32
    lr: float = 2e-3
    eval_problems: int = 200
    eval_n: int = 8


def sft_pairs(recipe: TinyRecipe) -> list[tuple[str, str]]:
    """(prompt, response) pairs: every problem once with its solution, and multi-path problems with up
    to `paths_per_problem` distinct solutions drawn (seeded) from all their valid ones."""
    import random

    from services.data import render_prompt
    from verifier.synthetic import generate_mix
    from verifier.synthetic.paths import worked_solutions

    rng = random.Random(recipe.seed + 303)
    pairs = []
    for p in generate_mix(recipe.sft_problems, seed=recipe.seed + 101):
        prompt = render_prompt(TEMPLATE, p.prompt)
        others = [s for s in worked_solutions(p) if s != p.solution]
        extra = rng.sample(others, min(len(others), recipe.paths_per_problem - 1))
        pairs += [(prompt, " " + s) for s in [p.solution, *extra]]
    return pairs


def build(out_dir: str | Path, recipe: TinyRecipe = TinyRecipe(), *, log=print) -> dict:
    """Build, warm-start and measure the tiny model in `out_dir`; returns the measured numbers
    (also written to out_dir/warm_start.json)."""
    import torch

    from services.embedded.sft import supervised_warm_start
    from services.models.tiny import build_tiny_model

    out = Path(out_dir)
    pairs = sft_pairs(recipe)
    corpus = [p + r for p, r in pairs[:4000]]
    build_tiny_model(out, vocab_size=recipe.vocab_size, hidden=recipe.hidden, layers=recipe.layers,
                     heads=recipe.heads, kv_heads=recipe.kv_heads, head_dim=recipe.hidden // recipe.heads,
                     seed=recipe.seed, corpus=corpus, max_position_embeddings=512, init_std=0.02)
    # One thread: on a shared 2-core machine OpenMP spin-waiting makes 2 threads many times slower.
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    losses = supervised_warm_start(out, pairs, steps=recipe.sft_steps, batch_size=recipe.batch_size, lr=recipe.lr,
                                   seed=recipe.seed, log_every=50)
    sft_s = time.perf_counter() - t0
    log(f"SFT {recipe.sft_steps} steps in {sft_s:.0f}s; loss every 50 steps: {[round(x, 3) for x in losses]}")
    measured = measure(out, recipe)
    measured["token_profile"] = profile(out, recipe)
    log(f"token profile: {json.dumps(measured['token_profile'])}")
    result = {"recipe": asdict(recipe), "sft_seconds": round(sft_s, 1), "sft_losses": losses, **measured}
    (out / "warm_start.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def measure(model_dir: str | Path, recipe: TinyRecipe = TinyRecipe()) -> dict:
    """pass@1 and pass@n on fresh train-distribution problems, through vLLM and the verifier."""
    from rollout.config import RolloutSection
    from rollout.engine import Engine
    from services.data import Example
    from services.evaluation.sampling import local_grader, count_correct, per_task_tables, table_of
    from verifier.synthetic import generate_mix

    problems = generate_mix(recipe.eval_problems, seed=recipe.seed + 202)
    examples = [Example(id=f"m-{i}", prompt=p.prompt, answer=p.answer, task=p.task) for i, p in enumerate(problems)]
    sampling = RolloutSection(n=recipe.eval_n, max_tokens=MAX_TOKENS, max_model_len=512, kv_cache_bytes=256 << 20)
    engine = Engine(str(model_dir), sampling, seed=recipe.seed)
    try:
        counts = count_correct(engine, examples, template=TEMPLATE, n=recipe.eval_n, grade=local_grader(),
                               seed=recipe.seed)
    finally:
        engine.shutdown()
    ks = [k for k in (1, 2, 4, 8, 16) if k <= recipe.eval_n]
    return {"pass_at_k": table_of(counts, ks), "per_task": per_task_tables(counts, ks),
            "mean_tokens": sum(c.mean_tokens for c in counts) / len(counts)}


def profile(model_dir: str | Path, recipe: TinyRecipe = TinyRecipe()) -> dict:
    """Token entropy and the probability mass of ranks 2-3 (all tokens, and forking tokens) on the
    same fresh problems measure() uses, 4 samples each (services/embedded/token_profile.py)."""
    import torch

    from services.data import render_prompt
    from services.embedded.token_profile import sample_profile
    from verifier.synthetic import generate_mix

    torch.set_num_threads(1)
    problems = generate_mix(recipe.eval_problems, seed=recipe.seed + 202)
    prompts = [render_prompt(TEMPLATE, p.prompt) for p in problems]
    return {name: round(value, 4) if isinstance(value, float) else value
            for name, value in sample_profile(model_dir, prompts, n=4, max_new_tokens=MAX_TOKENS,
                                              seed=recipe.seed).items()}
