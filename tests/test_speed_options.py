"""Speed options: length-grouped batches (deterministic, every sample once, less padding), packing and chunked
cross-entropy giving the loss padding and the full logits give, the estimate following them, and their checks."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from jobs_helpers import fast_config

from core.memory import activations as act
from core.memory import estimate, inputs_from_train_config, read_architecture
from core.models.encoding import IGNORE_INDEX, EncodedSample
from core.train_config import TrainConfig
from jobs.batches import Collator, PackingCollator, batch_stream
from jobs.speedups import ChunkedLossModel, chunked_cross_entropy

CONFIGS = Path(__file__).resolve().parent / "fixtures/model_configs"
LLAMA = read_architecture(CONFIGS / "llama-2-7b.json")


def sample(length: int, rng: random.Random, vocab: int = 200) -> EncodedSample:
    ids = [rng.randrange(3, vocab) for _ in range(length)]
    labels = [IGNORE_INDEX] * (length // 2) + ids[length // 2:]
    return EncodedSample(ids, labels, [], False)


def test_length_grouping_is_seeded_covers_each_sample_once_and_pads_less() -> None:
    rng = random.Random(0)
    samples = [sample(rng.randrange(4, 200), rng) for _ in range(400)]

    def epoch(grouped: bool, seed: int = 3) -> list[list[int]]:
        ids = {id(s): i for i, s in enumerate(samples)}
        stream = batch_stream(samples, 4, seed, lambda b: [ids[id(s)] for s in b], group_by_length=grouped)
        return [next(stream) for _ in range(100)]

    grouped = epoch(True)
    assert grouped == epoch(True) and grouped != epoch(True, seed=4)  # fixed by the seed: a resume sees it again
    assert sorted(i for b in grouped for i in b) == list(range(400))  # one epoch: each sample once

    def padding(batches: list[list[int]]) -> int:
        return sum(max(len(samples[i].input_ids) for i in b) * len(b) - sum(len(samples[i].input_ids) for i in b)
                   for b in batches)

    assert padding(grouped) < padding(epoch(False)) / 4
    # Shared among two ranks, the stream is dealt out in turn: rank 0 gets the even micro-batches, rank 1 the odd.
    ids = {id(s): i for i, s in enumerate(samples)}
    ranks = [batch_stream(samples, 4, 3, lambda b: [ids[id(s)] for s in b], group_by_length=True, rank=r, world=2)
             for r in (0, 1)]
    assert [next(ranks[k % 2]) for k in range(10)] == grouped[:10]
    resumed = batch_stream(samples, 4, 3, lambda b: [ids[id(s)] for s in b], skip=6, group_by_length=True)
    assert next(resumed) == grouped[6]


@pytest.fixture(scope="module")
def tiny(tiny_model_cache: Path):
    from core.models.encoding import SampleEncoder
    from core.models.loading import load_model, load_processor

    path = str(tiny_model_cache / "tiny-random-llava")
    model = load_model(path)
    model.eval()
    return model, SampleEncoder(load_processor(path), 512)


def test_packed_batches_give_the_padded_loss(tiny) -> None:
    model, encoder = tiny
    rng = random.Random(1)
    batch = [sample(n, rng, model.config.text_config.vocab_size) for n in (9, 30, 17)]
    padded, packed = Collator(encoder)(batch), PackingCollator(encoder)(batch)
    assert packed["input_ids"].shape == (1, 56) and "attention_mask" not in packed
    assert packed["position_ids"][0, :12].tolist() == [*range(9), 0, 1, 2]
    with torch.no_grad():
        assert float(model(**packed).loss) == pytest.approx(float(model(**padded).loss), rel=1e-5)


def test_chunked_cross_entropy_matches_the_full_logits_loss_and_gradients(tiny) -> None:
    model, encoder = tiny
    rng = random.Random(2)
    batch = Collator(encoder)([sample(n, rng, model.config.text_config.vocab_size) for n in (40, 25)])
    full = model(**batch).loss
    chunked = ChunkedLossModel(model, chunk=7)(**batch).loss
    assert chunked.item() == pytest.approx(full.item(), rel=1e-5)
    head = model.get_output_embeddings().weight
    (g_full,) = torch.autograd.grad(full, head)
    (g_chunked,) = torch.autograd.grad(chunked, head)
    assert torch.allclose(g_full, g_chunked, atol=1e-6)
    hidden = torch.randn(1, 5, 8)
    assert float(chunked_cross_entropy(hidden, torch.full((1, 5), IGNORE_INDEX), torch.nn.Linear(8, 11))) == 0.0


def test_the_estimate_follows_chunked_loss_and_packing() -> None:
    def inputs(**changes: object):
        cfg = fast_config(max_length=8192, batch_size=2, gradient_checkpointing=True, precision="bf16", **changes)
        return inputs_from_train_config(cfg, LLAMA)

    def total(**changes: object) -> float:
        return estimate(inputs(**changes)).total_gb

    # 2 x 8192 tokens x 32,000 vocabulary x 12 bytes of fp32 logits and their gradients: 6.3 GB at full length,
    # one chunk of 1024 tokens when chunked; the peak then moves to one layer's backward pass.
    assert act.logits_and_loss(inputs()) == pytest.approx(6.29e9, rel=0.01)
    assert act.logits_and_loss(inputs(chunked_loss=True)) == pytest.approx(6.29e9 / 16, rel=0.01)
    plain = total()
    assert plain - total(chunked_loss=True) > 0.5
    packed = total(packing=True)
    # One boolean mask over the packed row, plus the allocator's 10% on top of what is allocated.
    assert packed - plain == pytest.approx(1.1 * (2 * 8192) ** 2 / 1e9, rel=0.02)
    assert total(packing=True, attention="eager") > packed  # eager attention over one row of both samples


def test_check_names_what_the_speed_and_scale_options_need() -> None:
    def problems(**values: object) -> dict[str, str]:
        config = TrainConfig(**{**fast_config().to_dict(), **values})
        return {p.field: p.message for p in config.validate(cuda_available=False)}

    assert "pip install deepspeed" in problems(strategy="deepspeed_zero3")["strategy"] or \
        "CUDA" in problems(strategy="deepspeed_zero3")["strategy"]
    assert "needs CUDA GPUs" in problems(strategy="fsdp")["strategy"]
    assert "liger-kernel" in problems(liger=True)["liger"]
    assert "flash-attn" in problems(attention="flash_attention_2")["attention"]
    assert "expected empty, a number" in problems(gpus="two")["gpus"]
    assert "need CUDA GPUs" in problems(gpus="0,1")["gpus"]
    assert "one process" in problems(gpus="2", method="lisa")["gpus"]
    assert "prompt" in problems(chunked_loss=True, method="prompt")["chunked_loss"]
    assert "gpus" not in problems(gpus="2") and "report_to" not in problems(report_to="tensorboard")


def test_a_steps_spent_graph_is_released_before_the_next_forward(data_dir: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The graph behind a micro-batch's loss keeps activations alive after backward (measured: about 200 MiB of
    peak RSS on SmolLM2-135M); the loop must drop it before the next forward, or every peak holds two."""
    import weakref

    from method_runs import train_run

    import jobs.loop as loop

    previous: list[weakref.ref] = []
    still_alive: list[int] = []
    load = loop.load_model

    def watched_load(*args: object, **kwargs: object) -> torch.nn.Module:
        model = load(*args, **kwargs)

        def before(_module: torch.nn.Module, _args: object) -> None:
            if torch.is_grad_enabled() and previous and previous[-1]() is not None:
                still_alive.append(len(previous))

        def after(_module: torch.nn.Module, _args: object, output: object) -> None:
            loss = getattr(output, "loss", None)
            if torch.is_grad_enabled() and loss is not None:
                previous.append(weakref.ref(loss))

        model.register_forward_pre_hook(before)
        model.register_forward_hook(after)
        return model

    monkeypatch.setattr(loop, "load_model", watched_load)
    train_run(data_dir, tmp_path, method="lora", max_steps=6, grad_accum=2)
    assert len(previous) == 12  # every micro-batch's forward was watched
    assert still_alive == [], f"the loss of micro-batches {still_alive} was alive when the next forward began"
