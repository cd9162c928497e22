"""FSDP2-sharded runs (two CPU ranks, gloo, torchrun): a checkpoint gathers the sharded weights and optimizer state
whole, a fresh sharded copy restored from it continues exactly, and the result folder holds whole weights that load
in one process; for LoRA, QLoRA (its 4-bit base stored as bf16 so that FSDP shards it) and full fine-tuning.
accelerate does not shard on CPU, so the worker shards with torch's fully_shard and drives the loop's own save,
result and restore functions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.methods import get_method
from core.models.loading import load_model
from core.runs.files import FINAL_DIR
from core.train_config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("method", ["lora", "qlora", "full"])
def test_a_sharded_run_resumes_exactly_and_its_result_is_whole(tiny_model_cache: Path, tmp_path: Path,
                                                                method: str) -> None:
    model_path = str(tiny_model_cache / "tiny-random-llava")
    env = dict(os.environ, PYTHONPATH=str(ROOT), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(ROOT / "tests/fsdp_worker.py"), model_path, method, str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for rank in (0, 1):
        result = json.loads((tmp_path / f"rank-{rank}.json").read_text())
        assert result["sharded"] and result["restored_at"] == 3
        assert result["resumed"] == result["went_on"]  # the same three losses, to the last bit, on each rank
        if method == "qlora":  # the 4-bit base is stored as bf16 (bnb_4bit_quant_storage) and sharded with the rest
            assert result["four_bit_layers"] > 0 and result["four_bit_sharded"]
            assert result["four_bit_storage"] == "torch.bfloat16"

    saved = torch.load(tmp_path / "checkpoints/step-00000003/training_state.pt", weights_only=False)
    assert saved["sharded"] and saved["weights"]
    # The result loads in one process, unsharded, with every trained tensor whole and equal to the checkpoint's.
    if method in ("lora", "qlora"):
        from peft import PeftModel

        loaded = PeftModel.from_pretrained(load_model(model_path), str(tmp_path / FINAL_DIR))
    else:
        loaded = load_model(str(tmp_path / FINAL_DIR))
    shapes_of = "lora" if method == "qlora" else method  # the adapters' shapes do not depend on the base's bits
    config = TrainConfig.from_dict({"run_name": "t", "method": shapes_of, "lora_r": 4, "lora_alpha": 8})
    fresh = dict(get_method(shapes_of).prepare(load_model(model_path), config).named_parameters())
    params = dict(loaded.named_parameters())
    for name, tensor in saved["weights"].items():
        assert tensor.shape == fresh[name].shape, name  # whole, not one rank's half
        assert torch.equal(params[name].detach(), tensor.to(params[name].dtype)), name
