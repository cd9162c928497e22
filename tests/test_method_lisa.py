"""LISA: layers re-sampled every K steps, embeddings and head always train, optimizer state stays bounded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from method_runs import check_learned, fixed_batch, single_thread, tiny_path, train_run

from core.methods import get_method
from core.methods.lisa import lisa_state
from core.models.loading import load_model
from core.models.parts import decoder_layers
from core.train_config import TrainConfig
from jobs.optimizers import build_optimizer


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    yield from single_thread()


@pytest.mark.parametrize("optimizer", ["adamw_torch", "adamw_8bit"])
def test_resampling_every_k_steps_releases_optimizer_state(data_dir: Path, optimizer: str) -> None:
    config = TrainConfig(method="lisa", lisa_layers=1, lisa_interval=3, learning_rate=5e-3, seed=3,
                         optimizer=optimizer)
    method = get_method("lisa")
    model = method.prepare(load_model(tiny_path(data_dir)), config)
    _, batch = fixed_batch(data_dir, rows=4)
    optimizer_ = build_optimizer(config, method.optimizer_groups(model, config))
    layers = [list(layer.parameters()) for _, layer in decoder_layers(model)]
    always = [p for n, p in model.named_parameters() if n.endswith(("embed_tokens.weight", "lm_head.weight"))]
    layer_ids = [{id(p) for p in layer} for layer in layers]

    state_counts, active_per_step, losses = [], [], []
    for step in range(12):
        method.on_step_start(step, model, optimizer_)
        active = [i for i, layer in enumerate(layers) if all(p.requires_grad for p in layer)]
        frozen = [i for i in range(len(layers)) if i not in active]
        assert len(active) == 1 and all(not p.requires_grad for i in frozen for p in layers[i])
        assert all(p.requires_grad for p in always)  # embeddings and head always train
        loss = model(**batch).loss
        loss.backward()
        optimizer_.step()
        optimizer_.zero_grad(set_to_none=True)
        losses.append(loss.item())
        active_per_step.append(active[0])
        # State exists only for what trains now: the frozen layers gave theirs back.
        with_state = {id(p) for p, s in optimizer_.state.items() if s}
        assert not with_state & set().union(*(layer_ids[i] for i in frozen))
        assert with_state >= layer_ids[active[0]]
        state_counts.append(sum(1 for s in optimizer_.state.values() for v in s.values() if hasattr(v, "numel")))

    history = lisa_state(model).history
    assert [step for step, _ in history] == [0, 3, 6, 9]  # re-sampled every K steps, never in between
    for step, chosen in history:
        assert active_per_step[step:step + 3] == chosen * 3
    assert len(set(active_per_step)) == 2  # both layers were trained over the run...
    assert len(set(state_counts)) == 1  # ...yet the optimizer holds state for one layer's worth throughout
    assert losses[-1] < losses[0]


def test_lisa_run_learns_and_saves_weights_chat_loads(data_dir: Path, tmp_path: Path) -> None:
    trained = train_run(data_dir, tmp_path, method="lisa", lisa_layers=1, lisa_interval=5, learning_rate=2e-3)
    params = trained.run.params
    model = load_model(tiny_path(data_dir))
    layer = sum(p.numel() for p in decoder_layers(model)[0][1].parameters())
    outside_layers = params["language"]["total"] - 2 * layer  # embeddings and the final norm
    assert params["language"]["trainable"] == outside_layers + layer  # γ = 1 layer at a time
    assert params["head"]["trainable"] == params["head"]["total"] and params["vision"]["trainable"] == 0
    assert (Path(trained.run.artefact_dir) / "model.safetensors").is_file()
    check_learned(data_dir, trained, min_drop=1.0)
