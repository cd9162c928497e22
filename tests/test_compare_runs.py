"""Comparing real tiny-model runs: the table against their metrics files, and A/B chat with two checkpoints,
loaded together when the estimator says they fit and one after another when not."""

from __future__ import annotations

from pathlib import Path

import pytest
from method_runs import single_thread, train_run

from core.datasets.records import SAMPLES_FILE, read_samples
from core.problems import ProblemsError
from core.runs.files import METRICS_FILE, read_metrics

QUICK = {"max_steps": 4, "batch_size": 2, "eval_steps": 2, "eval_max_rows": 4, "dataset": "split"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_model_cache: Path):
    """A LoRA and a LISA run of four steps on the sample dataset with an eval split, in one studio."""
    import shutil

    from core.datasets.catalog import SAMPLE_SOURCE
    from core.studio import Studio

    root = tmp_path_factory.mktemp("compare") / "studio"
    shutil.copytree(tiny_model_cache, root / "models")
    studio = Studio(root)
    studio.catalog.register(SAMPLE_SOURCE, "split", eval_ratio=0.25, seed=0)
    configs = tmp_path_factory.mktemp("configs")
    one_thread = single_thread()
    next(one_thread)
    try:
        lora = train_run(root, configs, method="lora", run_name="lora", **QUICK)
        lisa = train_run(root, configs, method="lisa", run_name="lisa", lisa_layers=1, **QUICK)
    finally:
        next(one_thread, None)
    yield studio, lora, lisa
    studio.close()


def test_table_matches_the_runs_metrics_files(trained) -> None:
    studio, lora, lisa = trained
    comparison = studio.compare_runs([lora.run.id, lisa.run.id])
    for run, row in zip((lora.run, lisa.run), comparison.summary.rows, strict=True):
        lines = read_metrics(Path(run.run_dir))
        train = [m for m in lines if "loss" in m]
        assert row["steps"] == train[-1]["step"] == 4
        assert row["final_loss"] == train[-1]["loss"]
        assert row["best_eval_loss"] == min(m["eval_loss"] for m in lines if "eval_loss" in m)
        assert row["peak_rss_gb"] == pytest.approx(max(m["mem_rss_mb"] for m in train) * 2**20 / 1e9)
        assert min(m["tokens_per_s"] for m in train) * 0.5 < row["tokens_per_s"]
        assert row["tokens_per_s"] < max(m["tokens_per_s"] for m in train) * 1.5
        assert row["trainable_params"] == run.params["all"]["trainable"] > 0
        assert row["result_bytes"] > 0
    lora_row, lisa_row = comparison.summary.rows
    assert lora_row["trainable_params"] < lisa_row["trainable_params"]  # LoRA trains far fewer parameters
    assert comparison.summary.best["result_bytes"] == {lora.run.id}  # an adapter is smaller than weights
    assert "method" in {d.field for d in comparison.diff} and Path(lora.run.run_dir, METRICS_FILE).is_file()


def question_and_image(trained) -> tuple[str, Path]:
    folder = trained[0].catalog.resolve_dir("split")
    sample = next(iter(read_samples(folder / SAMPLES_FILE)))
    return sample.messages[0].content.replace("<image>", "").strip(), folder / sample.images[0]


def test_two_checkpoints_fit_together_on_a_large_card_and_not_on_a_tiny_one(trained) -> None:
    studio, lora, lisa = trained
    choices = [f"run:{lora.run.id}", f"run:{lisa.run.id}"]
    plan = studio.comparisons.ab.plan
    large, tiny = plan(choices, card="80"), plan(choices, card="0.05")
    assert large.together and "fit together" in large.message
    assert not tiny.together and "one after another" in tiny.message
    assert tiny.needed_gb == pytest.approx(large.needed_gb) and tiny.needed_gb > 0


@pytest.mark.parametrize("card", ["80", "0.05"])
def test_both_checkpoints_answer_together_or_one_after_another(trained, card: str) -> None:
    studio, lora, lisa = trained
    question, image = question_and_image(trained)
    choices = [f"run:{lora.run.id}", f"run:{lisa.run.id}"]
    updates = [(list(u.answers), u.plan.together, list(u.active))
               for u in studio.ab_chat_stream(choices, question, image, max_new_tokens=6, card=card)]
    answers, together, _ = updates[-1]
    assert together == (card == "80")
    assert all(a.strip() for a in answers), answers
    if not together:  # the second model starts only once the first has finished
        first_done = next(i for i, (a, _, _) in enumerate(updates) if a[1])
        assert all(active != [0] for _, _, active in updates[first_done:])
        assert updates[first_done - 1][0][0] == answers[0]


def test_ab_chat_names_what_is_missing(trained) -> None:
    studio, lora, _ = trained
    with pytest.raises(ProblemsError) as raised:
        list(studio.ab_chat_stream([f"run:{lora.run.id}"], "  "))
    assert {p.field for p in raised.value.problems} == {"models", "question"}
    choices = [value for _, value in studio.ab_chat_choices([lora.run.id])]
    assert choices[0] == f"run:{lora.run.id}" and choices[-1] == lora.run.model


def test_each_model_goes_on_in_its_own_conversation(trained, monkeypatch) -> None:
    from core.chat import ChatService

    studio, lora, lisa = trained
    question, image = question_and_image(trained)
    choices = [f"run:{lora.run.id}", f"run:{lisa.run.id}"]
    first = list(studio.ab_chat_stream(choices, question, image, max_new_tokens=6, card="80"))[-1]
    assert first.done and all(a.strip() for a in first.answers)

    asked: dict[str, tuple[list[tuple[str, str]], list[Path]]] = {}
    stream = ChatService.stream

    def spy(self, choice, messages, images, **kwargs):
        asked[choice] = ([(m.role, m.content) for m in messages], list(images))
        return stream(self, choice, messages, images, **kwargs)

    monkeypatch.setattr(ChatService, "stream", spy)
    earlier = [{"question": question, "image": str(image), "answers": list(first.answers)}]
    second = list(studio.ab_chat_stream(choices, "And the shape?", None, max_new_tokens=6, card="80",
                                        earlier=earlier))[-1]
    assert second.done and all(a.strip() for a in second.answers), second.errors
    for choice, answer in zip(choices, first.answers, strict=True):  # its own answer, never the other's
        assert asked[choice] == ([("user", f"<image>\n{question}"), ("assistant", answer),
                                  ("user", "And the shape?")], [image])

    with pytest.raises(ProblemsError, match="other models; start a new conversation"):
        list(studio.ab_chat_stream([*choices, lora.run.model], "Again?", earlier=earlier))


def test_a_model_that_failed_a_turn_goes_on_without_it() -> None:
    from core.compare.ab_chat import ABTurn, conversation

    turns = [ABTurn("What is it?", "/img/a.png", ["a cat", None]), ABTurn("And now?", "/img/b.png", ["a dog", "x"])]
    messages, images = conversation(turns, 1, "Colour?", None)
    assert [(m.role, m.content) for m in messages] == [("user", "<image>\nAnd now?"), ("assistant", "x"),
                                                       ("user", "Colour?")]
    assert images == [Path("/img/b.png")]
    messages, images = conversation(turns, 0, "Colour?", Path("/img/c.png"))
    assert [m.content for m in messages] == ["<image>\nWhat is it?", "a cat", "<image>\nAnd now?", "a dog",
                                             "<image>\nColour?"]
    assert images == [Path("/img/a.png"), Path("/img/b.png"), Path("/img/c.png")]


def test_models_load_one_at_a_time_so_no_load_unties_another(studio, monkeypatch) -> None:
    """transformers swaps PreTrainedModel.tie_weights out during from_pretrained; A/B chat's parallel loads must
    not overlap, or the swap can stick and every later tied model gets a random head."""
    import threading
    import time

    from transformers import AutoModelForImageTextToText, PreTrainedModel

    from core.models.loading import load_model

    real, original = AutoModelForImageTextToText.from_pretrained, PreTrainedModel.tie_weights
    inside, most = [0], [0]
    guard = threading.Lock()

    def spy(*args, **kwargs):
        with guard:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.3)  # long enough for the other threads to arrive, were they let in
        try:
            return real(*args, **kwargs)
        finally:
            with guard:
                inside[0] -= 1

    monkeypatch.setattr(AutoModelForImageTextToText, "from_pretrained", spy)
    path = str(studio.paths.models_dir / "tiny-random-llava")
    threads = [threading.Thread(target=load_model, args=(path,)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert most[0] == 1 and PreTrainedModel.tie_weights is original
