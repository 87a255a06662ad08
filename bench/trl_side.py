"""The TRL side of bench/e2e_vs_trl.py: TRL's GRPOTrainer on the embedded job, in one process.

Run by the python of the bench's own virtual environment (.cache/bench-trl-venv: torch CPU, trl,
transformers; never a dependency of the project), never by hand:

    .cache/bench-trl-venv/bin/python bench/trl_side.py --settings SETTINGS.json --out DIR

SETTINGS.json (written by e2e_vs_trl.py from our JobSpec) names the model directory, the prompts
file (rendered prompts, gold answers and tasks, in our feeder's order) and the hyper-parameters.
The reward is our verifier called in-process (`verifier.verify`, imported from the repository via
sys.path; the only code of ours this process imports). Writes DIR/steps.jsonl, one row per
optimizer step: 'time' (wall clock), reward, and the seconds spent in generation, reward, the rest
of scoring, the loss forward and the remainder (backward + optimizer step).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--settings", required=True, help="JSON written by bench/e2e_vs_trl.py")
    ap.add_argument("--out", required=True, help="directory for steps.jsonl and the trainer's output")
    args = ap.parse_args()
    s = json.loads(Path(args.settings).read_text())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    import torch

    torch.set_num_threads(s["torch_threads"])
    sys.path.insert(0, s["repo"])
    from verifier import verify  # our verifier, in-process (math in its bounded grader process)

    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    rows = [json.loads(line) for line in Path(s["prompts_file"]).read_text().splitlines() if line]
    dataset = Dataset.from_list(rows)  # columns: prompt (rendered with our template), gold, task
    timers: dict[str, float] = defaultdict(float)

    def reward(prompts, completions, gold, task, **_):
        return [verify(t, c, g, question=p, extraction=s["extraction"]).reward
                for p, c, g, t in zip(prompts, completions, gold, task)]

    def timed(name, fn):
        def wrapper(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                timers[name] += time.perf_counter() - t0
        return wrapper

    class Timed(GRPOTrainer):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            for name, method in (("generate_s", "_generate"), ("reward_s", "_calculate_rewards"),
                                 ("generate_and_score_s", "_generate_and_score_completions"),
                                 ("loss_forward_s", "compute_loss")):
                setattr(self, method, timed(name, getattr(self, method)))

    steps_file = (out / "steps.jsonl").open("w")

    class Record(TrainerCallback):
        last = None

        def on_step_begin(self, targs, state, control, **kw):
            self.began = time.perf_counter()

        def on_step_end(self, targs, state, control, **kw):
            step_s = time.perf_counter() - self.began
            self.last = {"step": state.global_step, "time": time.time(), "step_s": step_s, **timers,
                         "backward_optimizer_s": step_s - timers["generate_and_score_s"] - timers["loss_forward_s"]}
            timers.clear()

        def on_log(self, targs, state, control, logs=None, **kw):
            if self.last is not None and logs and "reward" in logs:  # logging_steps=1: right after the step
                self.last.update({k: v for k, v in logs.items() if isinstance(v, (int, float))})
                steps_file.write(json.dumps(self.last) + "\n")
                steps_file.flush()
                self.last = None

    config = GRPOConfig(
        output_dir=str(out / "trainer"), max_steps=s["steps"], seed=s["seed"], use_cpu=True, bf16=False, fp16=False,
        per_device_train_batch_size=s["n"] * s["batch_prompts"], gradient_accumulation_steps=1,
        num_generations=s["n"], max_completion_length=s["max_tokens"], temperature=s["temperature"],
        top_p=s["top_p"], top_k=0, use_vllm=False, shuffle_dataset=False,
        learning_rate=s["lr"], lr_scheduler_type="constant", warmup_steps=0, weight_decay=s["weight_decay"],
        adam_beta1=s["betas"][0], adam_beta2=s["betas"][1], adam_epsilon=s["adam_eps"], max_grad_norm=s["grad_clip"],
        beta=0.0, num_iterations=s["ppo_epochs"], epsilon=s["clip_low"], epsilon_high=s["clip_high"],
        loss_type="dapo", scale_rewards="group",  # dapo = token mean over the batch, like our token-mean
        logging_steps=1, save_strategy="no", report_to="none", disable_tqdm=True, dataloader_num_workers=0)
    tokenizer = AutoTokenizer.from_pretrained(s["model"])
    model = AutoModelForCausalLM.from_pretrained(s["model"], dtype=torch.float32)
    trainer = Timed(model=model, reward_funcs=reward, args=config, train_dataset=dataset, processing_class=tokenizer,
                    callbacks=[Record()])
    trainer.train()
    steps_file.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
