"""The job's driver (`simko train`, the controller) only holds Ray handles: importing it must not
load torch, DeepSpeed or vLLM, whose imports (seconds on 2 cores) would sit on the start-up's
critical path before Ray even starts. The actors import them in their own processes."""
from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
import services.control.controller, services.cli
heavy = sorted(m for m in ("torch", "deepspeed", "vllm", "transformers") if m in sys.modules)
print(",".join(heavy))
"""


def test_the_controller_imports_none_of_the_heavy_libraries():
    out = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "", f"the driver imported {out.stdout.strip()}"
