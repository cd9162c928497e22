"""Bottleneck adapters: two per decoder layer, near-identity start, a real run, small saved files Chat reloads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from method_runs import check_learned, fixed_batch, single_thread, tiny_path, train_run

from core.methods import get_method
from core.methods.bottleneck import MANIFEST_FILE, WEIGHTS_FILE
from core.models.loading import load_model
from core.models.parts import count_parameters, decoder_layers
from core.train_config import TrainConfig


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    yield from single_thread()


def test_two_adapters_per_layer_start_near_identity(data_dir: Path) -> None:
    _, batch = fixed_batch(data_dir, rows=2)
    base = load_model(tiny_path(data_dir)).eval()
    with torch.no_grad():
        before = base(**batch).logits
    layers, hidden, size = len(decoder_layers(base)), base.config.text_config.hidden_size, 4
    model = get_method("adapter").prepare(base, TrainConfig(method="adapter", adapter_size=size))
    counts = count_parameters(model)
    # Per adapter: down (d·m + m) and up (m·d + d); one after attention and one after the MLP of each layer.
    assert counts["adapter"]["trainable"] == 2 * layers * (2 * hidden * size + size + hidden)
    assert counts["all"]["trainable"] == counts["adapter"]["trainable"]
    with torch.no_grad():
        after = model(**batch).logits
    assert torch.allclose(before, after, atol=1e-2)
    assert not torch.equal(before, after)  # the adapters are in the forward pass


def test_adapter_run_learns_and_saves_small_files_chat_loads(data_dir: Path, tmp_path: Path) -> None:
    trained = train_run(data_dir, tmp_path, method="adapter", adapter_size=8)
    final = Path(trained.run.artefact_dir)
    manifest = json.loads((final / MANIFEST_FILE).read_text())
    assert manifest["size"] == 8 and manifest["adapters"] == 4 and (final / WEIGHTS_FILE).is_file()
    assert not (final / "model.safetensors").exists()  # the frozen base is not copied
    assert trained.run.params["adapter"]["trainable"] == trained.run.params["all"]["trainable"] > 0
    check_learned(data_dir, trained, min_drop=0.2)
