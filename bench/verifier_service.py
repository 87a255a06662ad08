"""Benchmark the verifier: HTTP service vs math-verify called directly in-process, same items.

    python bench/verifier_service.py [--items 400] [--workers 2] [--hostile-frac 0.01]

Prints one JSON object: throughput (items/s) and p50/p99 latency of the service (a real uvicorn
process with its grader pool), the same for plain math-verify (parse + verify, in-process, its own
signal timeouts) on the same items, and accuracy of both on the labelled sets (the 76 cases of
tests/verifier/accuracy_cases.py, and per family the tuned and held-apart parts of
tests/verifier/cases/). The item mix is fixed (same seed, same cases), so runs before and after a
change compare. math-verify runs in a child process with a wall-clock cap, because hostile items
can hang it in C code where its signal.alarm cannot interrupt; the JSON then says which item it
hung on.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.verifier.accuracy_cases import CASES, accuracy, mathverify_alone, ours  # noqa: E402
from tests.verifier import labelled  # noqa: E402
from services.wire.verifier_client import VerifierClient  # noqa: E402

HOSTILE = [  # half caught by the pre-filter, half only by the deadline
    {"task": "math", "response": "\\boxed{10^{10^{10}}}", "gold": "3"},
    {"task": "math", "response": "\\boxed{(x+1)^{2000}-(x-1)^{2000}}", "gold": "(x+2)^{2000}"},
    {"task": "math", "response": "\\boxed{1000000!}", "gold": "3"},
    {"task": "math", "response": "\\boxed{" + "{" * 15 + "x" + "}" * 15 + "}", "gold": "x"},
]
LOGIC = [
    {"task": "logic:date_understanding", "response": "Let's think step by step... So the answer is (B).", "gold": "(B)"},
    {"task": "logic:navigate", "response": "Step 1 ... So the answer is No.", "gold": "Yes"},
    {"task": "logic:word_sorting", "response": "So the answer is apple banana cherry.", "gold": "apple banana cherry"},
    {"task": "logic:countdown", "response": "<answer>(8 - 2) * 4</answer>", "gold": '{"numbers":[8,2,4],"target":24}'},
]


def make_items(n: int, hostile_frac: float, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    math_items = [{"task": "math", "response": c.response, "gold": c.gold} for c in CASES]
    n_hostile = max(1, round(n * hostile_frac))
    easy = [rng.choice(math_items) if rng.random() < 0.8 else rng.choice(LOGIC) for _ in range(n - n_hostile)]
    # Padding the reasoning makes responses realistically long (~2-4k characters).
    easy = [dict(it, response="We reason carefully. " * rng.randint(50, 200) + it["response"]) for it in easy]
    items = easy + [HOSTILE[i % len(HOSTILE)] for i in range(n_hostile)]
    rng.shuffle(items)
    return items


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


async def bench_service(url: str, items: list[dict], batch: int, concurrency: int) -> dict:
    client = VerifierClient(url, max_batch=batch, timeout_s=120, deadline_s=600)
    batches = [items[i : i + batch] for i in range(0, len(items), batch)]
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    sem = asyncio.Semaphore(concurrency)

    async def run(b: list[dict]) -> None:
        async with sem:
            t = time.perf_counter()
            verdicts = await client.verify(b)
            latencies.append(time.perf_counter() - t)
            for v in verdicts:
                statuses[v.status] = statuses.get(v.status, 0) + 1

    started = time.perf_counter()
    await asyncio.gather(*(run(b) for b in batches))
    wall = time.perf_counter() - started
    # Per-item latency: single-item requests, one at a time, on easy items.
    single: list[float] = []
    for it in [it for it in items if it not in HOSTILE][:100]:
        t = time.perf_counter()
        await client.verify([it])
        single.append(time.perf_counter() - t)
    await client.aclose()
    return {
        "items_per_s": round(len(items) / wall, 1), "wall_s": round(wall, 2), "batch": batch,
        "concurrent_requests": concurrency, "request_p50_ms": round(1000 * pct(latencies, 0.5), 1),
        "request_p99_ms": round(1000 * pct(latencies, 0.99), 1),
        "single_item_p50_ms": round(1000 * pct(single, 0.5), 1), "single_item_p99_ms": round(1000 * pct(single, 0.99), 1),
        "statuses": statuses,
    }


def _mathverify_child(items_path: str, out_path: str) -> None:
    """Child process: plain math-verify on every item, one JSON line of latency per item."""
    from math_verify import parse, verify

    items = json.loads(Path(items_path).read_text())
    with open(out_path, "w") as out:
        for it in items:
            t = time.perf_counter()
            gold = it["gold"] if "$" in it["gold"] else f"${it['gold']}$"
            verify(parse(gold), parse(it["response"]))  # defaults: 5 s signal timeouts
            out.write(json.dumps({"s": time.perf_counter() - t}) + "\n")
            out.flush()


def bench_mathverify(items: list[dict], cap_s: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        items_path, out_path = os.path.join(tmp, "items.json"), os.path.join(tmp, "lat.jsonl")
        Path(items_path).write_text(json.dumps(items))
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, __file__, "--mathverify-child", items_path, out_path])
        try:
            proc.wait(timeout=cap_s)
            hung = False
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            hung = True
        wall = time.perf_counter() - started
        lat = [json.loads(line)["s"] for line in Path(out_path).read_text().splitlines()] if os.path.exists(out_path) else []
    result = {
        "items_per_s": round(len(lat) / sum(lat), 1) if lat else 0.0, "completed": len(lat),
        "item_p50_ms": round(1000 * pct(lat, 0.5), 1), "item_p99_ms": round(1000 * pct(lat, 0.99), 1),
        "wall_s_incl_startup": round(wall, 2), "hung": hung,
    }
    if hung:
        stuck = items[len(lat)]
        result["hung_on"] = {"task": stuck["task"], "response": stuck["response"][-60:], "after_s": cap_s}
        # A realistic throughput figure must count the stall: items finished per wall second.
        result["items_per_wall_s"] = round(len(lat) / wall, 1)
    return result


def start_service(port: int, workers: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "verifier.service", "--host", "127.0.0.1", "--port", str(port),
                             "--workers", str(workers)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("verifier service did not start")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=400)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--hostile-frac", type=float, default=0.01)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--mathverify-cap-s", type=float, default=120)
    ap.add_argument("--port", type=int, default=18765)
    ap.add_argument("--mathverify-child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.mathverify_child:
        _mathverify_child(*args.mathverify_child)
        return
    items = make_items(args.items, args.hostile_frac)
    proc = start_service(args.port, args.workers)
    try:
        service = asyncio.run(bench_service(f"http://127.0.0.1:{args.port}", items, args.batch, args.concurrency))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    baseline = bench_mathverify(items, args.mathverify_cap_s)
    ours_acc, _ = accuracy(ours)
    mv_acc, _ = accuracy(mathverify_alone)
    print(json.dumps({
        "items": len(items), "hostile": sum(it in HOSTILE for it in items), "cpu_count": os.cpu_count(),
        "service": dict(service, grader_workers=args.workers),
        "math_verify_in_process": baseline,
        "service_vs_math_verify": round(service["items_per_s"] / max(baseline["items_per_s"], 1e-9), 2),
        "accuracy_labelled_set": {"cases": len(CASES), "ours": round(ours_acc, 4), "math_verify": round(mv_acc, 4)},
        "accuracy_by_family": labelled_sets(),
    }, indent=2))


def labelled_sets() -> dict:
    out = {}
    for name in ("tune", "heldout"):
        rows = {}
        for family, cases in sorted(labelled.by_family(labelled.load(name)).items()):
            row = {"cases": len(cases), "ours": round(labelled.accuracy(cases, labelled.ours)[0], 4)}
            if family == "math":
                row["math_verify"] = round(labelled.accuracy(cases, lambda c: bool(c.math_verify))[0], 4)
            rows[family] = row
        out[name] = rows
    return out


if __name__ == "__main__":
    main()
