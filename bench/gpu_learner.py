"""The learner on a GPU, on a real-shape twin: tokens/s and peak GPU memory of a DeepSpeed update,
hidden-state token statistics (the default) against the full-logits path, in bf16.

For whoever has a CUDA machine at hand; nothing in the project depends on it. Needs torch,
transformers, pydantic, psutil and DeepSpeed (no vLLM, no Ray, no network). A machine without
DeepSpeed can take it as a wheel made here (pure Python, its ops are not compiled: the learner
uses torch's AdamW):

    .venv/bin/pip wheel --no-deps -w runs/gpu-wheels deepspeed==$(.venv/bin/python -c \\
        'import importlib.metadata as m; print(m.version("deepspeed"))') hjson py-cpuinfo ninja msgpack
    # on the GPU machine, in the repository root:
    pip install --no-index --no-deps runs/gpu-wheels/*.whl
    python bench/gpu_learner.py --out runs/gpu-learner            # qwen2.5-0.5b twin, 2 layers, bf16
    python bench/gpu_learner.py --like qwen2.5-1.5b --layers 4 --response-len 1024

It builds the twin (services/models/twins.py: the real vocabulary, hidden size and heads, random
weights, `--layers` layers), then runs bench/learner_update.py --compare token_stats, each path in
its own process (its own allocator peak), and prints one JSON object: the device's name, the
twin, per path tokens/s and torch.cuda.max_memory_allocated, and the ratios hidden / logits. With
--record it appends a markdown section (for docs/real_shapes.md). `--device-check cpu` runs the
same thing on the CPU with a tiny batch: how this script is tested where there is no GPU.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

NEEDED = ("torch", "transformers", "pydantic", "psutil", "deepspeed")


def missing_modules() -> list[str]:
    return [name for name in NEEDED if importlib.util.find_spec(name) is None]


def build(args) -> Path:
    from services.models.twins import build_twin

    out = Path(args.out) / f"twin-{args.like}-{args.layers}l"
    if not (out / "config.json").is_file():
        summary = build_twin(args.like, out, layers=args.layers)
        print(f"[gpu_learner] built {summary}", file=sys.stderr)
    return out


def run(args, model_dir: Path) -> dict:
    argv = [sys.executable, str(REPO / "bench" / "learner_update.py"), "--model", str(model_dir),
            "--compare", "token_stats", "--precision", args.precision, "--zero-stage", str(args.zero_stage),
            "--groups", str(args.groups), "--n", str(args.n), "--prompt-len", str(args.prompt_len),
            "--response-len", str(args.response_len), "--micro-batch-tokens", str(args.micro_batch_tokens),
            "--updates", str(args.updates)]
    started = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, cwd=REPO)
    if out.returncode != 0:
        raise SystemExit(f"bench/learner_update.py failed (exit {out.returncode}):\n{out.stderr[-4000:]}")
    result = json.loads(out.stdout)
    result["wall_s"] = round(time.perf_counter() - started, 1)
    return result


def markdown(result: dict, command: str) -> str:
    rows = []
    for path in ("logits", "hidden"):
        r = result["results"][path]
        rows.append(f"| {path} | {r['tokens_per_s']} | {r.get('peak_cuda_mib', '-')} | "
                    f"{r.get('peak_cuda_reserved_mib', '-')} | {r['loss']} |")
    model = result["model"]
    return "\n".join([
        f"### Learner on {result['device']} ({time.strftime('%Y-%m-%d')})", "",
        f"`{command}`: twin of vocabulary {model['vocab_size']}, hidden {model['hidden_size']}, "
        f"{model['num_hidden_layers']} layers; {result['config']['precision']}, ZeRO-{result['config']['zero_stage']}.",
        "", "| token statistics | tokens/s | peak allocated (MiB) | peak reserved (MiB) | loss |", "|---|---|---|---|---|",
        *rows, "",
        f"hidden / logits: tokens/s {result['hidden_over_logits_tokens_per_s']}x, "
        f"peak GPU memory {result.get('hidden_over_logits_peak_cuda', '-')}x.", ""])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--like", default="qwen2.5-0.5b", help="the twin (services/models/twins.py)")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    ap.add_argument("--zero-stage", type=int, default=1, help="bf16 needs >= 1 (learner.config)")
    ap.add_argument("--groups", type=int, default=4)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--response-len", type=int, default=512)
    ap.add_argument("--micro-batch-tokens", type=int, default=16384)
    ap.add_argument("--updates", type=int, default=3)
    ap.add_argument("--out", default="runs/gpu-learner", help="the twin and the results (git-ignored runs/)")
    ap.add_argument("--record", metavar="MARKDOWN", help="append the result as a markdown section to this file")
    ap.add_argument("--device-check", choices=["cuda", "cpu"], default="cuda",
                    help="cpu: run on the CPU with a tiny batch and fp32 (the script's own test)")
    args = ap.parse_args()
    missing = missing_modules()
    if missing:
        raise SystemExit(f"missing Python modules: {', '.join(missing)} (see this script's docstring for "
                         "bringing DeepSpeed as a wheel)")
    import torch

    if args.device_check == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device visible to torch; --device-check cpu runs the CPU smoke check")
    if args.device_check == "cpu":
        args.precision, args.zero_stage = "fp32", 0
        args.groups, args.n, args.prompt_len, args.response_len, args.updates = 1, 2, 8, 16, 1
        args.micro_batch_tokens = 256
    Path(args.out).mkdir(parents=True, exist_ok=True)
    result = run(args, build(args))
    result["twin"] = args.like
    if args.device_check == "cuda" and result["device"] == "cpu":
        raise SystemExit("the learner ran on the CPU although CUDA is visible: DeepSpeed's accelerator "
                         "detection failed (DS_ACCELERATOR=cuda forces it)")
    (Path(args.out) / "result.json").write_text(json.dumps(result, indent=2))
    if args.record:
        with open(args.record, "a") as f:
            f.write("\n" + markdown(result, "python bench/gpu_learner.py " + " ".join(sys.argv[1:])))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
