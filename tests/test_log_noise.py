"""Quiet logs: no warning about a package the studio leaves out on purpose, and library noise kept out of the tail."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from core.runs.log_noise import quiet_tail

ROOT = Path(__file__).resolve().parents[1]
FOUR_BIT_FORWARD = """
import sys
if sys.argv[1] == "quiet":
    from core.runs.log_noise import silence_library_noise
    silence_library_noise()
import importlib
import bitsandbytes as bnb, bitsandbytes.functional as F, torch
layer = bnb.nn.Linear4bit(64, 64, compute_dtype=torch.float32, quant_type="nf4")
layer.load_state_dict(torch.nn.Linear(64, 64).state_dict())
layer = layer.to("cpu")
layer(torch.randn(2, 64))
if not F.has_avx512bf16():
    # bitsandbytes asks for `kernels` only on CPUs with AVX512-BF16, when its CPU ops load: load them again as if
    # this CPU had it, so the message comes on any machine (no forward after it: those kernels are not for this CPU).
    F.has_avx512bf16 = lambda: True
    importlib.reload(importlib.import_module("bitsandbytes.backends.cpu.ops"))
print("forward done")
"""


def run_forward(mode: str) -> str:
    done = subprocess.run([sys.executable, "-c", FOUR_BIT_FORWARD, mode], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert "forward done" in done.stdout, done.stderr
    return done.stdout + done.stderr


def test_a_4bit_forward_says_nothing_about_kernels_once_silenced() -> None:
    assert "pip install kernels" in run_forward("loud")  # what every QLoRA log started with
    assert "kernels" not in run_forward("quiet")


def test_the_tail_leaves_library_noise_out_and_keeps_the_runs_own_lines() -> None:
    log = ("Loading weights:   0%|   | 0/64\rLoading weights: 100%|###| 64/64\n"
           "parameters: {'all': 10}\n"
           "/x/bitsandbytes/optim/optimizer.py:509: UserWarning: Paged optimizers are not supported on CPU. Falling\n"
           '  state["state1"] = self.get_state_buffer(p, dtype=torch.float32)\n'
           "/x/transformers/modeling_utils.py:3312: FutureWarning: `is_gradient_checkpointing` is deprecated\n"
           "  warnings.warn(\n"
           "completed after 3 steps\n")
    assert quiet_tail(log) == "parameters: {'all': 10}\ncompleted after 3 steps\n"
